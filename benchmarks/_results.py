"""Write one benchmark's section of ``benchmarks/RESULTS.md`` without touching the others.

Each benchmark owns the text between ``<!-- begin NAME -->`` and ``<!-- end NAME -->``;
running it again replaces only that section.
"""

import platform
import re
from datetime import date
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = (
    "# Benchmark results\n\n"
    "Written by the scripts in this folder (`python benchmarks/<script>.py`). Each script\n"
    "times sktransfer against a baseline in the same run and quotes medians and ratios,\n"
    "because the machines are shared and absolute numbers drift.\n"
)


def machine_line():
    """One line that says where the numbers come from."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return (
        f"{date.today().isoformat()}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, {device}, torch {torch.__version__}"
    )


def write_section(name, markdown):
    """Replace (or append) the section ``name`` of RESULTS.md with ``markdown``."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    RESULTS.write_text(text)
    print(markdown)
