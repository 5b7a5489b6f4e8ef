"""Adam's step on a CPU: one tensor at a time (PyTorch's default there), foreach, fused.

Every fine-tuning step ends with an optimiser step over the trainable parameters; on a CPU
PyTorch's default Adam updates them one tensor at a time. sktransfer asks for the fused
implementation (:func:`sktransfer._core.device.fused_adam`). Measured: the median seconds
of an AdamW step over every parameter of the bundled networks (all-MiniLM-L6-v2, 23M;
EfficientNet-Lite0, 3.4M), each way in turn, and the largest difference of the updated
weights from the default's after 5 steps. Run: ``python benchmarks/bench_optimizer.py``.
"""

import argparse
import statistics
import time

import torch

from sktransfer import load_backbone

from _results import machine_line, write_section

WAYS = {"one tensor at a time (default)": {"foreach": False}, "foreach": {"foreach": True}}
WAYS["fused (sktransfer)"] = {"fused": True}


def step_times(net, repeats):
    """Median seconds of a step, and the largest weight difference from the default."""
    torch.manual_seed(0)
    grads = [torch.randn_like(p) * 1e-3 for p in net.parameters()]
    start_state = [p.detach().clone() for p in net.parameters()]
    seconds, weights = {}, {}
    for way, options in WAYS.items():
        params = [p.detach().clone().requires_grad_(True) for p in start_state]
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad
        optimizer = torch.optim.AdamW(params, lr=1e-3, **options)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            optimizer.step()
            times.append(time.perf_counter() - start)
        seconds[way] = statistics.median(times)
        weights[way] = params
    base = weights["one tensor at a time (default)"]
    diffs = {
        way: max(float((a - b).abs().max()) for a, b in zip(params, base, strict=True))
        for way, params in weights.items()
    }
    return seconds, diffs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    lines = [
        "| network | parameters | way | seconds per step | vs default | max weight difference |",
        "|---|---|---|---|---|---|",
    ]
    for spec in ("all-MiniLM-L6-v2", "efficientnet_lite0"):
        net = load_backbone(spec).net
        n = sum(p.numel() for p in net.parameters()) / 1e6
        seconds, diffs = step_times(net, args.repeats)
        base = seconds["one tensor at a time (default)"]
        for way in WAYS:
            lines.append(
                f"| {spec} | {n:.1f}M | {way} | {seconds[way]:.3f} | "
                f"{base / seconds[way]:.1f}x | {diffs[way]:.1e} |"
            )
    table = "\n".join(lines)
    write_section(
        "optimizer",
        f"""## Adam's step on a CPU (`bench_optimizer.py`)

{machine_line()}. Median seconds of {args.repeats} AdamW steps over every parameter, each
way from the same weights and gradients; the weights compared after the {args.repeats} steps.

{table}
""",
    )


if __name__ == "__main__":
    main()
