"""Helpers shared by the event, monitor and dump-notice tests."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from conftest import need_tool

PROGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "progs")


def build_hints_pass(out_dir) -> str:
    """progs/hints_pass.c built with clang -g -target bpf: the object's path."""
    clang = need_tool("clang")
    obj = os.path.join(str(out_dir), "hints_pass.o")
    r = subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-c", os.path.join(PROGS, "hints_pass.c"),
                        "-o", obj], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"clang failed:\n{r.stderr}")
    return obj


def collect(source, until, limit: float = 10.0) -> list:
    """Events from an EventSource until `until(events)` holds or `limit` seconds pass
    (a bound for a broken build, not a timing assertion)."""
    events: list = []
    deadline = time.monotonic() + limit
    while not until(events) and time.monotonic() < deadline:
        events.extend(source.wait(0.2))
    return events
