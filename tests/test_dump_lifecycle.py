"""dump when the world changes under it: the device goes away, goes down or changes
its MTU, or the reader of its output leaves (`| head`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT, sh
from test_dump import _cmd, _env, finish, send_udp, start_dump, xdp_attached

pytestmark = pytest.mark.privileged


def test_device_deleted_ends_a_count_dump_with_exit_5(veth):
    p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--count", "100", "-j")
    send_udp(veth, 3)
    time.sleep(0.3)
    gone_at = time.monotonic()
    sh("ip", "netns", "del", veth.peer_ns)           # the peer goes, and with it xh0
    rc, out, err = finish(p, timeout=10)
    took = time.monotonic() - gone_at
    assert rc == 5, err
    lines = err.splitlines()
    assert lines[-1] == ("xdphints: error: xh0 went away (deleted, or moved to another network "
                         "namespace) during the capture")
    assert any(line.startswith("xdphints: 3 packets") for line in lines), err
    assert "Traceback" not in err
    *packets, error = [json.loads(line) for line in out.splitlines()]
    assert len(packets) == 3 and error["exit-code"] == 5      # -j: the error as JSON too
    assert took < 5, took        # a generous bound only against "never": polls are 100 ms


def test_link_down_and_mtu_change_keep_capturing(veth):
    p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--count", "3", "-j")
    veth.run("ip", "link", "set", veth.dev, "mtu", "1400")
    # the device itself down and up (a carrier change of the peer's would reach
    # rtnetlink only through the kernel's rate-limited linkwatch)
    for _ in range(2):
        veth.run("ip", "link", "set", veth.dev, "down")
        time.sleep(0.3)
        veth.run("ip", "link", "set", veth.dev, "up")
    time.sleep(0.5)
    send_udp(veth, 3)
    rc, out, err = finish(p)
    assert rc == 0, err
    assert len(out.splitlines()) == 3
    assert err.count("xh0 changed its MTU from 1500 to 1400; still capturing") == 1, err
    assert err.count("xh0 is down (or lost its carrier)") == 1, err


@pytest.mark.parametrize("fmt", [["-j"], []])
def test_output_closed_early_stops_at_once(veth, fmt, tmp_path):
    """Like tcpdump | head: dump stops as soon as the reader leaves, detaches, prints
    no traceback or error, and exits 141 (as a command SIGPIPE ended)."""
    veth.run_peer("sysctl", "-qw", f"net.ipv6.conf.{veth.peer}.disable_ipv6=1")
    cmd = " ".join(_cmd(veth.ns, "-d", veth.dev, "--queue", "0", *fmt))
    errfile = tmp_path / "stderr"
    p = subprocess.Popen(["bash", "-c", f"{cmd} 2>$ERR | head -1; echo ${{PIPESTATUS[0]}}"],
                         stdout=subprocess.PIPE, text=True, env=dict(_env(), ERR=str(errfile)))
    while not xdp_attached(veth):
        assert p.poll() is None
        time.sleep(0.05)
    send_udp(veth, 2000)          # one batch; nothing comes after it
    out, _ = p.communicate(timeout=10)
    first, status = out.splitlines()
    err = errfile.read_text()
    assert status == "141", err
    assert err.splitlines()[1:] == [], err            # the start line only: no error
    assert first.startswith('{"time"' if fmt else "")
    assert not xdp_attached(veth)


def test_output_closed_early_no_traceback_for_other_commands(capfd):
    for args in (["btf", "--kernel", "--all"], ["btf", "--kernel", "--all", "-j"], ["show"]):
        r = subprocess.run(["bash", "-c", " ".join([sys.executable, "-m", "xdphints_cli", *args])
                            + " | head -c 1 >/dev/null; echo ${PIPESTATUS[0]}"],
                           capture_output=True, text=True, env=_env(), cwd=REPO_ROOT)
        assert r.stderr == "", (args, r.stderr)
        assert r.stdout.strip() in ("0", "141"), (args, r.stdout)


# --- capabilities: what dump really needs on this kernel --------------------------------

def _with_caps(pair, caps: str, *args):
    """dump as root holding only `caps` (e.g. "+bpf,+net_admin"), like a service
    given AmbientCapabilities."""
    keep = "-all" + ("," + caps if caps else "")
    cmd = ["ip", "netns", "exec", pair.ns, "setpriv", f"--inh-caps={keep}",
           f"--ambient-caps={keep}", f"--bounding-set={keep}", sys.executable, "-m",
           "xdphints_cli", "dump", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())


def test_dump_with_exactly_the_documented_capabilities(veth):
    veth.run_peer("sysctl", "-qw", f"net.ipv6.conf.{veth.peer}.disable_ipv6=1")
    p = _with_caps(veth, "+bpf,+net_admin,+net_raw", "-d", veth.dev, "--queue", "0", "-c", "3",
                   "-j")
    while not xdp_attached(veth):
        assert p.poll() is None, p.communicate()
        time.sleep(0.05)
    send_udp(veth, 3)
    rc, out, err = finish(p)
    assert rc == 0, err
    assert len(out.splitlines()) == 3
    assert "no CAP_IPC_LOCK" in err          # the UMEM was sized to RLIMIT_MEMLOCK


@pytest.mark.parametrize("caps,lacking", [("+bpf", "CAP_NET_ADMIN, CAP_NET_RAW"),
                                          ("+net_admin,+net_raw", "CAP_BPF"),
                                          ("", "CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW")])
def test_dump_names_every_missing_capability(veth, caps, lacking):
    rc, out, err = finish(_with_caps(veth, caps, "-d", veth.dev, "--queue", "0", "-c", "1"))
    assert rc == 4, err
    assert err.strip().endswith(f"; missing: {lacking} (run as root)"), err
    assert not xdp_attached(veth)


def test_attached_needs_cap_sys_admin_too(veth):
    rc, out, err = finish(_with_caps(veth, "+bpf,+net_admin,+net_raw", "-d", veth.dev,
                                     "--queue", "0", "--attached"))
    assert rc == 4 and "missing: CAP_SYS_ADMIN" in err, err
