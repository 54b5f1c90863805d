#!/usr/bin/env python3
"""Benchmark the BTF engine against bpftool on the running kernel's BTF.

Prints medians over repeated runs:
  - bpftool btf dump file /sys/kernel/btf/vmlinux format c   (subprocess, wall)
  - parse(vmlinux) into the type model                        (in-process)
  - the same plus building every type object                  (in-process, for scale)
  - kfunc id fast path for the three XDP metadata kfuncs      (target < 30 ms)
  - `xdphints btf --kernel --struct sk_buff`, end to end       (subprocess, wall)
  - the same beside `pahole -C sk_buff` (Debian package dwarves), the two run
    alternately so drift in the machine's load hits both; once with the vmlinux
    index cache warm (the usual case: btf/index_cache.py), once cold (an empty cache
    directory each run: the first run after a new kernel)
Targets: full parse within 5x of bpftool's C dump; kfunc lookup under 30 ms;
the CLI's --struct sk_buff within 3x of bpftool's C dump and within 1.5x of pahole -C.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from xdphints_cli.btf import kfuncs, reader  # noqa: E402

VMLINUX = "/sys/kernel/btf/vmlinux"


def paired_median_time(base, ours, runs: int):
    """Medians of two callables run alternately."""
    a, b = [], []
    for _ in range(runs):
        for fn, out in ((base, a), (ours, b)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    if not os.path.exists(VMLINUX):
        print(f"{VMLINUX} missing", file=sys.stderr)
        return 1
    with open(VMLINUX, "rb") as f:
        blob = f.read()
    runs = int(os.environ.get("BENCH_RUNS", "7"))
    rows = []

    bpftool = shutil.which("bpftool")
    t_bpftool = None
    if bpftool:
        def dump():
            subprocess.run([bpftool, "btf", "dump", "file", VMLINUX, "format", "c"],
                           stdout=subprocess.DEVNULL, check=True)
        t_bpftool = median_time(dump, runs)
        rows.append(("bpftool btf dump ... format c", t_bpftool, None))
    else:
        print("bpftool not found: no reference figure", file=sys.stderr)

    t_parse = median_time(lambda: reader.parse(blob), runs)
    rows.append(("parse(vmlinux) (validated, lazy types)", t_parse, t_bpftool))

    def parse_all():
        spec = reader.parse(blob)
        for _ in spec.types:
            pass
    t_all = median_time(parse_all, max(3, runs // 2))
    rows.append(("parse + build every type object", t_all, t_bpftool))

    t_kf = median_time(lambda: kfuncs.xdp_metadata_kfunc_ids(blob), runs)
    rows.append(("kfunc ids (3 XDP metadata kfuncs)", t_kf, None))

    def read_and_kfuncs():
        with open(VMLINUX, "rb") as f:
            kfuncs.xdp_metadata_kfunc_ids(f.read())
    t_kf_read = median_time(read_and_kfuncs, runs)
    rows.append(("kfunc ids incl. reading vmlinux", t_kf_read, None))

    # End to end: a fresh `python3 -m xdphints_cli btf --kernel --struct sk_buff`
    # (interpreter start, imports, vmlinux parse, lookup, table) next to bpftool's C dump.
    repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    cli_env = dict(os.environ, PYTHONPATH=repo, NO_COLOR="1")

    def cli_struct():
        subprocess.run([sys.executable, "-m", "xdphints_cli", "btf", "--kernel", "--struct", "sk_buff"],
                       stdout=subprocess.DEVNULL, check=True, env=cli_env, cwd=repo)
    cli_struct()                                  # the index cache is warm from here on
    t_cli = median_time(cli_struct, runs)
    rows.append(("xdphints btf --kernel --struct sk_buff", t_cli, t_bpftool))

    pahole = shutil.which("pahole")
    paired = []
    if pahole:
        def pahole_struct():
            subprocess.run([pahole, "-C", "sk_buff"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True)

        def cold_struct():
            with tempfile.TemporaryDirectory() as d:
                subprocess.run([sys.executable, "-m", "xdphints_cli", "btf", "--kernel", "--struct",
                                "sk_buff"], stdout=subprocess.DEVNULL, check=True,
                               env=dict(cli_env, XDG_CACHE_HOME=d), cwd=repo)

        for label, ours in (("warm index cache", cli_struct), ("cold index cache", cold_struct)):
            t_p, t_o = paired_median_time(pahole_struct, ours, runs)
            paired.append((label, t_p, t_o))
    else:
        print("pahole not found (Debian package dwarves): no pahole figure", file=sys.stderr)

    print(f"median of {runs} runs, {len(blob)} bytes of vmlinux BTF")
    for label, t, ref in rows:
        ratio = f"  ({t / ref:.2f}x bpftool)" if ref else ""
        print(f"  {label:<42} {t * 1000:9.1f} ms{ratio}")
    ok = True
    if t_bpftool is not None:
        ok &= t_parse <= 5 * t_bpftool
        print(f"target parse <= 5x bpftool: {'met' if t_parse <= 5 * t_bpftool else 'MISSED'}")
        ok &= t_cli <= 3 * t_bpftool
        print(f"target CLI --struct sk_buff <= 3x bpftool: {'met' if t_cli <= 3 * t_bpftool else 'MISSED'}")
    print(f"target kfunc lookup < 30 ms: {'met' if t_kf < 0.030 else 'MISSED'}")
    ok &= t_kf < 0.030
    for label, t_p, t_o in paired:
        print(f"  pahole -C sk_buff {t_p * 1000:7.1f} ms | xdphints btf --kernel --struct sk_buff "
              f"({label}) {t_o * 1000:7.1f} ms: {t_o / t_p:.2f}x pahole")
    if paired:
        ratio = paired[0][2] / paired[0][1]
        ok &= ratio <= 1.5
        print(f"target CLI --struct sk_buff <= 1.5x pahole -C (warm cache): "
              f"{'met' if ratio <= 1.5 else 'MISSED'}")
    print("load " + " ".join(open("/proc/loadavg").read().split()[:3]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
