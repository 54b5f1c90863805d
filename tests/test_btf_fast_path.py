"""`btf --kernel --struct NAME` without click (cli/entry.py): taken only for that exact
form, and the same output, errors and exit codes as the click command on the same words.
Timing is measured by bench/bench_btf.py, not here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from xdphints_cli.btf import sources
from xdphints_cli.cli.entry import kernel_type_form

pytestmark = pytest.mark.skipif(not os.path.exists(sources.VMLINUX), reason="kernel has no vmlinux BTF")

RUN = """
import sys
from xdphints_cli.cli.{module} import main
try:
    main({argv!r})
finally:
    if {modules!r}:
        print('MODULES=' + ','.join(sorted(sys.modules)), file=sys.stderr)
"""

# taken without click
FAST = [
    ["btf", "--kernel", "--struct", "sk_buff"],
    ["btf", "--struct=sk_buff", "--kernel", "-j"],
    ["btf", "--kernel", "--struct", "struct sk_buff", "-p"],
    ["btf", "-j", "--kernel", "--struct", "xdp_md", "--format", "c", "--offsets", "--no-color"],
    ["btf", "--kernel", "--struct", "xdp_md", "--format=c"],
    ["btf", "--kernel", "--struct", "u32"],                     # a typedef: written as C
    ["btf", "--kernel", "--struct", "u32", "--json"],
    ["btf", "--kernel", "--struct", "enum xdp_action"],
    ["btf", "--kernel", "--struct", "xdp_buff", "--format", "table"],
    ["btf", "--kernel", "--struct", "sk_buf"],                  # not found, with suggestions (5)
    ["btf", "--kernel", "--struct", "sk_buf", "-j"],
    ["btf", "--kernel", "--struct", "union sk_buff"],           # not found as that kind
]
# handed to click: other forms, and every usage error
CLICK = [
    ["btf", "--kernel", "--struct", "sk_buff", "--offsets"],    # needs --format c (2)
    ["btf", "--kernel", "--struct", "sk_buff", "--format", "C"],
    ["btf", "--kernel", "--struct", "sk_buff", "--format"],
    ["btf", "--kernel", "--struct"],
    ["btf", "--kernel", "--struct", ""],
    ["btf", "--kernel", "--struct", "-j"],                      # click takes -j as the NAME
    ["btf", "--kernel", "--struct", "sk_buff", "-j", "-j"],
    ["btf", "--kernel", "--struct", "sk_buff", "-jp"],
    ["btf", "--kernel", "--struct", "sk_buff", "--all"],        # conflicting modes (2)
    ["btf", "--kernel", "--struct", "sk_buff", "--module", "x"],  # two sources (2)
    ["btf", "--kernel", "--struct", "sk_buff", "--struct", "xdp_md"],
    ["btf", "--kernel", "--struct", "sk_buff", "extra"],
    ["btf", "--kernel", "--struct", "sk_buff", "--"],
    ["btf", "--kernel", "--struct", "sk_buff", "--debug"],
    ["btf", "--kernel", "--struct", "sk_buff", "--bogus"],
    ["btf", "--kernel", "--struct", "sk_buff", "-h"],
    ["btf", "--struct", "sk_buff"],
    ["btf", "--kernel"],
    ["-j", "btf", "--kernel", "--struct", "sk_buff"],
    ["bt", "--kernel", "--struct", "sk_buff"],
]


def _run(module: str, argv, env, modules: bool = False) -> subprocess.CompletedProcess:
    code = RUN.format(module=module, argv=argv, modules=modules)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=env, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def env():
    return dict(os.environ, PYTHONPATH=REPO_ROOT, NO_COLOR="1")


def test_which_words_take_the_path_without_click():
    for argv in FAST:
        assert kernel_type_form(argv, {}) is not None, argv
        assert kernel_type_form(argv, {"_XDPHINTS_COMPLETE": "bash_complete"}) is None, argv
    for argv in CLICK:
        assert kernel_type_form(argv, {}) is None, argv
    assert kernel_type_form(FAST[0], {"_XDPHINTS_COMPLETE": ""}) is not None


@pytest.mark.parametrize("argv", FAST + CLICK, ids=" ".join)
def test_same_output_errors_and_exit_code_as_click(env, argv):
    fast = _run("entry", argv, env)
    slow = _run("main", argv, env)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)
    assert "Traceback" not in fast.stderr
    if argv in FAST:
        assert fast.returncode in (0, 5) and (fast.stdout or fast.stderr)


def _modules(res: subprocess.CompletedProcess) -> set:
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("MODULES="), res.stderr
    return set(last[len("MODULES="):].split(","))


def test_no_click_imported(env):
    argv = ["btf", "--kernel", "--struct", "sk_buff"]
    res = _run("entry", argv, env, modules=True)
    assert res.returncode == 0, res.stderr
    mods = _modules(res)
    assert "xdphints_cli.btf.spec" in mods              # the probe saw the real work
    heavy = sorted(m for m in mods if m.split(".")[0] in ("click", "rich", "dataclasses", "pyroute2"))
    assert heavy == []
    # the probe can see click: the click path imports it
    other = _run("entry", argv + ["--offsets"], env, modules=True)
    assert other.returncode == 2 and "click" in _modules(other)
