"""Start-up: show and check import pyroute2's netlink classes only, never its heavy
families (xdphints_cli/netlink/pyroute2_nla.py), and text without colour never
imports rich. Timing is measured by bench/bench_cli.py, not here."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO_ROOT
from xdphints_cli.netlink.pyroute2_nla import HEAVY

PROBE = """
import sys
from xdphints_cli.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
print('MODULES=' + ','.join(sorted(sys.modules)), file=sys.stderr)
"""


def _modules(argv, ns: str = "", env=None, path=REPO_ROOT) -> set:
    cmd = [sys.executable, "-c", PROBE.format(argv=argv)]
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=path, NO_COLOR="1", **(env or {})))
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("MODULES="), res.stderr
    return set(last[len("MODULES="):].split(","))


def _heavy(mods: set) -> list:
    return sorted(m for m in mods if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.privileged
def test_show_and_check_import_no_heavy_pyroute2_module(veth):
    for argv in (["show", veth.dev, "-j"], ["show", veth.dev], ["check", "-d", veth.dev],
                 ["check", "-d", veth.dev, "-j"]):
        mods = _modules(argv, ns=veth.ns)
        assert "pyroute2.netlink" in mods, argv          # the probe saw the real work
        assert _heavy(mods) == [], argv
        # text without colour is written without rich
        assert not any(m.split(".")[0] == "rich" for m in mods), argv


def _run(code: str, path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=path))


def test_stand_in_becomes_the_real_package_on_first_use():
    """Another user of pyroute2 in the same process gets the whole package."""
    res = _run("""
        import sys
        from xdphints_cli.netlink import pyroute2_nla, rtnl
        assert 'pyroute2.ndb' not in sys.modules
        from pyroute2 import IPRoute, NDB
        import pyroute2, pyroute2.netlink
        assert pyroute2.netlink.nla is rtnl.nla
        assert type(pyroute2) is type(sys)
        print(IPRoute.__name__, NDB.__name__)
    """, REPO_ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["IPRoute", "NDB"]


def test_pyroute2_already_imported_is_used_as_it_is():
    res = _run("""
        import pyroute2, pyroute2.netlink
        from xdphints_cli.netlink import pyroute2_nla
        assert pyroute2_nla.netlink is pyroute2.netlink and pyroute2_nla.nla is pyroute2.netlink.nla
        print('ok')
    """, REPO_ROOT)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_other_layout_falls_back_to_the_plain_import(tmp_path):
    """A pyroute2 whose netlink module needs the package __init__ to have run: the
    light import fails, is undone, and the plain import is used."""
    pkg = tmp_path / "pyroute2"
    (pkg / "netlink").mkdir(parents=True)
    (pkg / "__init__.py").write_text("INITIALISED = True\n")
    (pkg / "netlink" / "__init__.py").write_text(textwrap.dedent("""
        import pyroute2
        if not getattr(pyroute2, '__dict__', {}).get('INITIALISED'):
            raise ImportError('package __init__ did not run')
        NLA_F_NESTED = 1 << 15
        class nlmsg_base: pass
        class nla(nlmsg_base): pass
        class nlmsg(nlmsg_base): pass
        class genlmsg(nlmsg): pass
        class ctrlmsg(genlmsg): pass
    """))
    res = _run("""
        import sys
        from xdphints_cli.netlink import pyroute2_nla
        import pyroute2
        assert pyroute2.INITIALISED and type(pyroute2) is type(sys)
        assert pyroute2_nla.nla.__module__ == 'pyroute2.netlink'
        print('fallback', pyroute2.__file__)
    """, f"{tmp_path}{os.pathsep}{REPO_ROOT}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["fallback", str(pkg / "__init__.py")]
