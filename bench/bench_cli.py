#!/usr/bin/env python3
"""Start-up cost of the CLI: `xdphints --help`, `xdphints show DEV --json` and
`xdphints check -d DEV`.

Each beside its peer measured in the same run, the two commands alternated so drift
in the machine's load hits both: --help beside `python3 -c "import click"`, show and
check beside `python3 -c "import pyroute2"` (what a tool built on pyroute2 pays before
it does anything). Medians over BENCH_RUNS runs. show and check run on a veth pair in
a throwaway network namespace (needs root). Targets: --help within 1.5x of importing
click; show --json and check each under 0.75x of importing pyroute2.
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


def _once(cmd, ok=(0,)) -> float:
    t = time.perf_counter()
    # cwd: `python3 -m` puts the working directory first on sys.path
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, env=ENV, cwd=ROOT).returncode
    elapsed = time.perf_counter() - t
    if rc not in ok:
        raise SystemExit(f"{' '.join(cmd)}: exit {rc}")
    return elapsed


def paired_medians_ms(base, ours, ok=(0,)):
    """Medians of two commands run alternately, so drift in the machine's load hits both.
    `ok`: the exit codes `ours` may give (check answers with its exit code)."""
    a, b = [], []
    for _ in range(RUNS):
        a.append(_once(base))
        b.append(_once(ours, ok))
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
        pyroute2_ms2, check_ms = paired_medians_ms(netns + [PY, "-c", "import pyroute2"],
                                                   netns + [PY, "-m", "xdphints_cli", "check", "-d", "xb0"],
                                                   ok=(0, 3, 6))
    finally:
        subprocess.run(["ip", "netns", "del", ns])
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print(f"runs per figure: {RUNS} (medians; each pair run alternately); load {load}")
    print(f"python3 -c 'import click'      {click_ms:7.1f} ms")
    print(f"xdphints --help                {help_ms:7.1f} ms   ratio {help_ms / click_ms:.2f}x (target <= 1.5x)")
    print(f"python3 -c 'import pyroute2'   {pyroute2_ms:7.1f} ms")
    print(f"xdphints show xb0 --json       {show_ms:7.1f} ms   ratio {show_ms / pyroute2_ms:.2f}x (target < 0.75x)")
    print(f"python3 -c 'import pyroute2'   {pyroute2_ms2:7.1f} ms")
    print(f"xdphints check -d xb0          {check_ms:7.1f} ms   ratio {check_ms / pyroute2_ms2:.2f}x (target < 0.75x)")


if __name__ == "__main__":
    main()
