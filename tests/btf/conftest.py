"""Fixtures for the BTF engine tests: vmlinux BTF, bpftool's view of it, tool checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from conftest import need_tool
from xdphints_cli.btf import sources

PROGS = os.path.join(os.path.dirname(__file__), "progs")


@pytest.fixture(scope="session")
def vmlinux():
    if not os.path.exists(sources.VMLINUX):
        pytest.skip("kernel has no /sys/kernel/btf/vmlinux")
    return sources.kernel()


@pytest.fixture(scope="session")
def bpftool_vmlinux():
    """bpftool's raw JSON dump of vmlinux, by type id (run once: it takes a while)."""
    bpftool = need_tool("bpftool")
    if not os.path.exists(sources.VMLINUX):
        pytest.skip("kernel has no /sys/kernel/btf/vmlinux")
    out = subprocess.run([bpftool, "-j", "btf", "dump", "file", sources.VMLINUX],
                         check=True, capture_output=True).stdout
    return {t["id"]: t for t in json.loads(out)["types"]}


def build_bpf(src: str, out_dir, *extra_args: str, stem: str = "") -> str:
    """Compile tests/btf/progs/`src` with clang (and `extra_args`) into `out_dir`;
    the .o path (named `stem`.o when given)."""
    clang = need_tool("clang")
    obj = os.path.join(str(out_dir), (stem or os.path.splitext(src)[0]) + ".o")
    r = subprocess.run([clang, "-O2", "-g", *extra_args, "-target", "bpf", "-c",
                        os.path.join(PROGS, src), "-o", obj], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"clang failed:\n{r.stderr}")
    return obj


@pytest.fixture
def hints_object(tmp_path) -> str:
    return build_bpf("xdp_hints_example.c", tmp_path)


class Hang(BaseException):
    """Not an Exception, so code under test that turns every Exception from a
    third-party parser into its own error cannot swallow it."""


@pytest.fixture
def hang_guard():
    """hang_guard(seconds): a SIGALRM that turns a hang into a failure instead of a
    stuck test run; nothing here measures time."""
    def on_alarm(signum, frame):
        raise Hang("the parser did not return (infinite loop?)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        yield lambda seconds: signal.alarm(seconds)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
