#!/usr/bin/env python3
"""Benchmark the BTF engine against bpftool on the running kernel's BTF.

Prints medians over repeated runs:
  - bpftool btf dump file /sys/kernel/btf/vmlinux format c   (subprocess, wall)
  - parse(vmlinux) into the type model                        (in-process)
  - the same plus building every type object                  (in-process, for scale)
  - kfunc id fast path for the three XDP metadata kfuncs      (target < 30 ms)
  - `xdphints btf --kernel --struct sk_buff`, end to end       (subprocess, wall)
  - the same beside `pahole -C sk_buff` (Debian package dwarves), the two run
    alternately so drift in the machine's load hits both
  - `xdphints btf --kernel --all --format c` (a whole vmlinux.h) beside bpftool's
    C dump, run alternately; the ratio of the medians
The CLI is run three ways (cli_variants): the source tree as the tests run it (here
without .pyc files when PYTHONDONTWRITEBYTECODE is set), a byte-compiled copy of the
package (what an install has), and, when BENCH_XDPHINTS names one, an installed
command (e.g. /opt/xdphints/bin/xdphints from install.sh). Each interpreter's own
start-up, with and without site, is printed beside them: a development interpreter's
site-packages may run .pth hooks that an install's venv does not.
Targets: full parse within 5x of bpftool's C dump; kfunc lookup under 30 ms;
the CLI's --struct sk_buff within 3x of bpftool's C dump and within 1.5x of pahole -C
(judged on the installed command if given, else on the compiled copy). The whole
vmlinux.h has no target: it is printed for the record (Python walking 120k types
against libbpf's C).
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

    # End to end: a fresh `xdphints btf --kernel --struct sk_buff` (interpreter start,
    # imports, vmlinux lookup, table) next to bpftool's C dump and, alternately, pahole -C.
    variants = cli_variants()
    ours_main = variants[-1]                      # installed if given, else the compiled copy
    t_cli = median_time(lambda: run_cli(ours_main), runs)
    rows.append((f"xdphints btf --kernel --struct sk_buff ({ours_main.name})", t_cli, t_bpftool))

    pahole = shutil.which("pahole")
    paired = []
    if pahole:
        def pahole_struct():
            subprocess.run([pahole, "-C", "sk_buff"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True)

        for v in variants:
            t_p, t_o = paired_median_time(pahole_struct, lambda: run_cli(v), runs)
            paired.append((v, t_p, t_o))
    else:
        print("pahole not found (Debian package dwarves): no pahole figure", file=sys.stderr)

    header = None
    if bpftool:
        def bpftool_header():
            subprocess.run([bpftool, "btf", "dump", "file", VMLINUX, "format", "c"],
                           stdout=subprocess.DEVNULL, check=True)
        header = paired_median_time(bpftool_header, lambda: run_cli(ours_main, args=HEADER_ARGS),
                                    max(3, runs // 2))

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
    print("xdphints btf --kernel --struct sk_buff beside pahole -C sk_buff, run alternately:")
    for v in variants:
        print(f"  {v.name}: {v.describe}")
        print(f"    interpreter alone: `-c pass` {v.start_ms:.1f} ms, `-S -c pass` {v.bare_ms:.1f} ms"
              " (the difference is site: .pth files of its site-packages)")
    for v, t_p, t_o in paired:
        print(f"  {v.name:<9}: pahole {t_p * 1000:6.1f} ms | xdphints {t_o * 1000:6.1f} ms"
              f" | {t_o / t_p:.2f}x pahole")
    judged = [(t_p, t_o) for v, t_p, t_o in paired if v is ours_main]
    if judged:
        ratio = judged[0][1] / judged[0][0]
        ok &= ratio <= 1.5
        print(f"target CLI --struct sk_buff <= 1.5x pahole -C ({ours_main.name}): "
              f"{ratio:.2f}x {'met' if ratio <= 1.5 else 'MISSED'}")
    if header:
        t_b, t_o = header
        print(f"xdphints btf --kernel --all --format c ({ours_main.name}) beside bpftool btf dump ... "
              f"format c, run alternately: bpftool {t_b * 1000:.1f} ms | xdphints {t_o * 1000:.1f} ms"
              f" | {t_o / t_b:.2f}x bpftool")
    print("load " + " ".join(open("/proc/loadavg").read().split()[:3]))
    for v in variants:
        v.cleanup()
    return 0 if ok else 1


class Variant:
    """One way of running the CLI: its command words, environment and working directory."""

    def __init__(self, name: str, describe: str, cmd, env, cwd, python: str, cleanup=lambda: None):
        self.name, self.describe, self.cmd, self.env, self.cwd = name, describe, cmd, env, cwd
        self._cleanup = cleanup
        self.start_ms = 1000 * median_time(lambda: _quiet([python, "-c", "pass"]), 5)
        self.bare_ms = 1000 * median_time(lambda: _quiet([python, "-S", "-c", "pass"]), 5)
        run_cli(self)                                              # page cache warm from here on

    def cleanup(self) -> None:
        self._cleanup()


def _quiet(cmd) -> None:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)


STRUCT_ARGS = ["btf", "--kernel", "--struct", "sk_buff"]
HEADER_ARGS = ["btf", "--kernel", "--all", "--format", "c"]


def run_cli(v: Variant, args=STRUCT_ARGS) -> None:
    subprocess.run(v.cmd + args, stdout=subprocess.DEVNULL, check=True, env=v.env, cwd=v.cwd)


def cli_variants() -> list:
    """The source tree as the tests run it; a byte-compiled copy of it, as an install has
    .pyc files; and an installed command when BENCH_XDPHINTS names one (install.sh makes
    /opt/xdphints/bin/xdphints: a venv of the system python, no editable-install hooks)."""
    repo = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    env = dict(os.environ, NO_COLOR="1")
    env.pop("PYTHONPATH", None)
    no_pyc = env.get("PYTHONDONTWRITEBYTECODE")
    out = [Variant("tree", f"{sys.executable} -m xdphints_cli, PYTHONPATH={repo}"
                   + (" (PYTHONDONTWRITEBYTECODE is set here: no .pyc is written, so every run"
                      " compiles the modules it imports from source)" if no_pyc else ""),
                   [sys.executable, "-m", "xdphints_cli"], dict(env, PYTHONPATH=repo), repo, sys.executable)]

    copy = tempfile.mkdtemp(prefix="bench-btf-pkg-")
    shutil.copytree(os.path.join(repo, "xdphints_cli"), os.path.join(copy, "xdphints_cli"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", copy], check=True)
    out.append(Variant("compiled", f"{sys.executable} -m xdphints_cli from a copy of the package"
                       f" byte-compiled with compileall ({copy}; .pyc are read even with"
                       " PYTHONDONTWRITEBYTECODE set)",
                       [sys.executable, "-m", "xdphints_cli"], dict(env, PYTHONPATH=copy), copy,
                       sys.executable, cleanup=lambda: shutil.rmtree(copy, ignore_errors=True)))

    installed = os.environ.get("BENCH_XDPHINTS")
    if installed:
        python = os.path.join(os.path.dirname(installed), "python3")
        out.append(Variant("installed", f"{installed} (BENCH_XDPHINTS; its interpreter {python})",
                           [installed], env, "/", python if os.path.exists(python) else sys.executable))
    return out


if __name__ == "__main__":
    sys.exit(main())
