#!/usr/bin/env python3
"""Start-up cost of the CLI: `xdphints --help` and `xdphints show DEV --json`.

Each beside `python3 -c "import click"` and `python3 -c "import pyroute2"` measured
in the same run; medians over repeated runs. `show` runs on a veth pair in a
throwaway network namespace (needs root). Targets: --help within 1.5x of importing
click; show --json within 1.4x of importing pyroute2.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

RUNS = int(os.environ.get("BENCH_RUNS", "21"))
PY = sys.executable
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, NO_COLOR="1")


def _once(cmd) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - t


def paired_medians_ms(base, ours):
    """Medians of two commands run alternately, so drift in the machine's load hits both."""
    a, b = [], []
    for _ in range(RUNS):
        a.append(_once(base))
        b.append(_once(ours))
    return statistics.median(a) * 1000, statistics.median(b) * 1000


def main() -> None:
    ns = f"xdph-bench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", "xb0", "type", "veth", "peer", "name", "xb1"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "xb0", "up"], check=True)
        netns = ["ip", "netns", "exec", ns]
        click_ms, help_ms = paired_medians_ms([PY, "-c", "import click"],
                                              [PY, "-m", "xdphints_cli", "--help"])
        pyroute2_ms, show_ms = paired_medians_ms(netns + [PY, "-c", "import pyroute2"],
                                                 netns + [PY, "-m", "xdphints_cli", "show", "xb0", "--json"])
    finally:
        subprocess.run(["ip", "netns", "del", ns])
    print(f"runs per figure: {RUNS} (medians; each pair run alternately)")
    print(f"python3 -c 'import click'      {click_ms:7.1f} ms")
    print(f"xdphints --help                {help_ms:7.1f} ms   ratio {help_ms / click_ms:.2f}x (target <= 1.5x)")
    print(f"python3 -c 'import pyroute2'   {pyroute2_ms:7.1f} ms")
    print(f"xdphints show xb0 --json       {show_ms:7.1f} ms   ratio {show_ms / pyroute2_ms:.2f}x (target <= 1.4x)")


if __name__ == "__main__":
    main()
