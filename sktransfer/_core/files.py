"""Atomic file writes: the file appears whole, or not at all.

Two context managers, one rule. :func:`atomic_write` yields an open file object (for code
that writes bytes or text itself); :func:`atomic_path` yields a temporary *path* (for writers
that want a filename: ``DataFrame.to_parquet``, ``numpy.savez``, a download). Either way the
data goes to a hidden temporary file in the target's folder, which replaces the target
(:func:`os.replace`) only when the ``with`` block ends without an exception. On any exception,
``KeyboardInterrupt`` included, the temporary file is removed and the exception propagates;
an existing target is left as it was.

Also, for both:

- A missing folder is a :class:`FileNotFoundError` naming the path the caller gave (not the
  temporary name); a target that is an existing folder is an :class:`IsADirectoryError`
  naming it; both are raised before anything is written.
- The final file's permissions follow the umask (``0o666 & ~umask``, as ``open`` gives), not
  the ``0o600`` of :func:`tempfile.mkstemp`.
- A target that is a symbolic link is written through: the link's target is replaced and the
  link is kept.
"""

import contextlib
import errno
import os
import secrets
import stat

__all__ = ["atomic_path", "atomic_write"]


def _resolve(path):
    """Return the real file to replace, refusing a folder and a missing parent folder."""
    given = os.fspath(path)
    target = os.path.realpath(given)  # through symlinks: replace the link's target
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, "Cannot write a file over a folder", given)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            errno.ENOENT,
            f"Cannot write there: the folder {os.path.dirname(given) or '.'!r} does not exist",
            given,
        )
    return given, target


def _reserve(given, target):
    """Create an empty hidden file next to ``target``; return its path and descriptor."""
    folder, name = os.path.split(target)
    suffix = os.path.splitext(name)[1]  # kept last: numpy.save appends ".npy" otherwise
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.partial{suffix}")
        try:
            # 0o666 and the kernel applies the umask, like open(path, "w") would.
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:  # name the path the caller gave, not the temporary one
            raise type(exc)(exc.errno, exc.strerror, given) from None
    raise FileExistsError(errno.EEXIST, "No free temporary name next to the file", given)


def _remove(tmp):
    with contextlib.suppress(FileNotFoundError):
        os.remove(tmp)


def _replace(tmp, target, given):
    try:
        os.replace(tmp, target)
    except IsADirectoryError:  # a folder appeared at the target while writing
        raise IsADirectoryError(errno.EISDIR, "Cannot write a file over a folder", given) from None


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_kwargs):
    """Open ``path`` for writing so that it is replaced whole, or not at all.

    Parameters
    ----------
    path : str or path-like
        The file to write. A symbolic link is written through (its target is replaced, the
        link kept).
    mode : {"wb", "w"}, default="wb"
        Binary or text.
    **open_kwargs
        Passed to :func:`open` (``encoding``, ``newline``, ...).

    Yields
    ------
    file : file object
        Open on a hidden temporary file in the target's folder. When the block ends without
        an exception the file is flushed, synced to disk and renamed over ``path``; on any
        exception it is removed and ``path`` is left as it was.

    Raises
    ------
    FileNotFoundError
        The folder of ``path`` does not exist.
    IsADirectoryError
        ``path`` is a folder.

    See Also
    --------
    atomic_path : The same for writers that take a file name.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> with atomic_write(path, "w", encoding="utf-8") as f:
    ...     _ = f.write("all or nothing")
    >>> open(path, encoding="utf-8").read()
    'all or nothing'
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w'; got {mode!r}.")
    given, target = _resolve(path)
    tmp, fd = _reserve(given, target)
    try:
        try:
            file = open(fd, mode, **open_kwargs)
        except BaseException:
            os.close(fd)
            raise
        with file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        _replace(tmp, target, given)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path):
    """Give a writer a temporary file name that replaces ``path`` when it succeeds.

    For writers that want a file name rather than a file object (``DataFrame.to_parquet``,
    ``DataFrame.to_csv``, ``numpy.savez``, a download function).

    Parameters
    ----------
    path : str or path-like
        The file to write. A symbolic link is written through (its target is replaced, the
        link kept).

    Yields
    ------
    tmp : str
        A hidden, empty, already-created file in the target's folder whose name ends with
        the target's extension (so that writers choosing a format by extension, or
        appending one, write exactly there). Write it (overwriting or replacing it). When
        the block ends without an exception it is renamed over ``path``; on any exception
        it is removed and ``path`` is left as it was.

    Raises
    ------
    FileNotFoundError
        The folder of ``path`` does not exist, or the writer removed the temporary file
        without writing it again.
    IsADirectoryError
        ``path`` is a folder.

    See Also
    --------
    atomic_write : The same with an open file object.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> with atomic_path(path) as tmp:
    ...     np.save(tmp, np.arange(3))
    >>> np.load(path).tolist()
    [0, 1, 2]
    """
    given, target = _resolve(path)
    tmp, fd = _reserve(given, target)
    try:
        wanted = stat.S_IMODE(os.fstat(fd).st_mode)  # 0o666 & ~umask
        os.close(fd)
        yield tmp
        try:
            if stat.S_IMODE(os.stat(tmp).st_mode) != wanted:  # the writer made its own file
                os.chmod(tmp, wanted)
        except FileNotFoundError:
            raise FileNotFoundError(
                errno.ENOENT, "The writer left no file to move into place", given
            ) from None
        _replace(tmp, target, given)
    except BaseException:
        _remove(tmp)
        raise
