"""The memory this process may still take, and the check a method makes before a dense matrix.

KMM and OTMapping hold matrices of one float64 per pair of rows: a method estimates its
peak from the sizes of the domains and calls :func:`require_memory` before it allocates,
so that a fit too large for the machine fails at once, with the size and what to do
instead, rather than after minutes of swapping or with a bare ``MemoryError``.
"""

import os

try:
    import resource
except ImportError:  # not on Windows
    resource = None

GB = 1e9

_CGROUP_FILES = (
    # (limit, usage, the memory.stat entry of reclaimable page cache): cgroup v2, then v1
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "inactive_file"),
    (
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        "total_inactive_file",
    ),
)


def _read_number(path):
    """Read the integer in the file at ``path``; None if it is missing, unreadable or ``max``."""
    try:
        with open(path) as file:
            return int(file.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_entry(path, name):
    """Read the number after ``name`` in a file of ``name value`` (or ``name: value kB``) lines.

    None when the file or the entry is missing.
    """
    try:
        with open(path) as file:
            for line in file:
                fields = line.replace(":", " ").split()
                if len(fields) >= 2 and fields[0] == name:
                    return int(fields[1]) * (1024 if fields[2:3] == ["kB"] else 1)
    except (OSError, ValueError):
        pass
    return None


def _system_available():
    """``MemAvailable`` of ``/proc/meminfo``; else the physical memory (None if unknown)."""
    available = _read_entry("/proc/meminfo", "MemAvailable")
    if available is not None:
        return available
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _cgroup_headroom():
    """Return what the cgroup's memory limit leaves (page cache counts as free), or None."""
    for limit_file, usage_file, cache_entry in _CGROUP_FILES:
        limit, usage = _read_number(limit_file), _read_number(usage_file)
        if limit is None or usage is None or limit >= 2**60:  # 2**60 and above: no limit
            continue
        cache = _read_entry(os.path.join(os.path.dirname(limit_file), "memory.stat"), cache_entry)
        return limit - usage + (cache or 0)
    return None


def _address_space_headroom():
    """Return what ``ulimit -v`` (``RLIMIT_AS``) leaves this process; None if there is no limit."""
    if resource is None:
        return None
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY or limit < 0:
        return None
    used = _read_entry("/proc/self/status", "VmSize")
    return None if used is None else limit - used


def available_memory():
    """Bytes this process can still allocate, by the tightest known limit; None if unknown.

    The least of the system's available memory (``MemAvailable``, or the physical memory
    where there is no ``/proc/meminfo``), what a cgroup's memory limit leaves, and what
    ``ulimit -v`` leaves.
    """
    known = [
        headroom
        for headroom in (_system_available(), _cgroup_headroom(), _address_space_headroom())
        if headroom is not None
    ]
    return max(min(known), 0) if known else None


def require_memory(needed, what, advice):
    """Raise a ``MemoryError`` when ``needed`` bytes exceed :func:`available_memory`.

    ``what`` says what needs the memory (``"KMM with 50000 source rows"``); ``advice``, a
    sentence, what to do instead. Nothing is checked where the memory available is unknown.
    """
    available = available_memory()
    if available is not None and needed > available:
        raise MemoryError(
            f"{what} needs about {needed / GB:.3g} GB of memory, but only "
            f"{available / GB:.3g} GB is available. {advice}"
        )
