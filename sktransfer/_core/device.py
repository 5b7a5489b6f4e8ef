"""Torch plumbing shared by the estimators: device choice, seeding, mixed precision."""

import torch
from torch.torch_version import TorchVersion


def resolve_device(device):
    """Turn ``"auto"`` into ``"cuda"`` when a GPU is present, else ``"cpu"``.

    Any other value must name a device torch knows (``"cpu"``, ``"cuda"``, ``"cuda:1"``,
    ``"mps"``); asking for CUDA on a machine without it is an error, not a silent fallback.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}."
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but CUDA is not available here.")
    return resolved


def seed_everything(random_state):
    """Seed torch from a scikit-learn ``random_state`` (None leaves torch as it is)."""
    from sklearn.utils import check_random_state

    if random_state is None:
        return None
    seed = int(check_random_state(random_state).randint(0, 2**31 - 1))
    torch.manual_seed(seed)
    return seed


def device_available(device):
    """Whether ``device`` can be used here (a model saved on a GPU may load on a CPU)."""
    try:
        resolve_device(device)
    except ValueError:
        return False
    return True


def fallback_device(device):
    """Resolve ``device``, or the CPU when it is not available here (a model loaded elsewhere)."""
    return resolve_device(device if device_available(device) else "cpu")


def use_amp(device):
    """Whether to run in bfloat16 mixed precision: on CUDA devices that support it natively.

    Older GPUs (before Ampere) would emulate bfloat16 slowly; they run in float32.
    """
    if torch.device(device).type != "cuda":
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.4 has no emulation and no argument
        return torch.cuda.is_bf16_supported()


def fused_adam(device):
    """Whether Adam's fused implementation runs on ``device``: every update in one kernel.

    On 2 CPU cores a step over MiniLM's 23M parameters takes 0.015 s fused, against 0.11 s
    one tensor at a time (``benchmarks/bench_optimizer.py``); CUDA has it too. Elsewhere:
    the default, as on PyTorch before 2.4, which has no fused step on a CPU.
    """
    kind = torch.device(device).type
    return kind == "cuda" or (kind == "cpu" and TorchVersion(torch.__version__) >= (2, 4))
