"""SIGTERM and SIGINT stop dump and monitor even when stdout's reader has stopped
reading (a paused pager, `| sleep`): a write blocked on the full pipe is dropped after
a grace second, and the command detaches its program and exits 0, as asked, instead of
holding the device (dump's program would keep taking its packets from the stack)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import sh
from test_dump import _cmd, _env, send_udp, xdp_attached

pytestmark = pytest.mark.privileged


def _pipe_filled_by(cmd, fill):
    """Start cmd with stdout a pipe nobody reads, and run fill() until the pipe is full
    (cmd blocked writing it); the read end stays open, as a stopped reader's does."""
    r, w = os.pipe()
    p = subprocess.Popen(cmd, stdout=w, stderr=subprocess.PIPE, text=True, env=_env())
    os.close(w)
    os.set_blocking(r, False)
    deadline = time.monotonic() + 60     # a bound for a broken build, not a timing assertion
    while time.monotonic() < deadline and p.poll() is None and not _blocked_writing(p.pid):
        fill()
    return p, r


def _blocked_writing(pid: int) -> bool:
    """Whether a thread of `pid` sleeps in a pipe write (dump writes from a thread of its
    own; the kernel names the wait pipe_write, anon_pipe_write or pipe_wait_writable)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                if "pipe_w" in f.read():
                    return True
        except OSError:
            pass
    return False


def _signal_blocked(p, r, signum) -> str:
    """Send `signum` to p, blocked writing its stdout (`ip netns exec` execs the
    command: the pid is its own); its stderr once it exited."""
    try:
        assert _blocked_writing(p.pid), p.pid
        p.send_signal(signum)
        return p.communicate(timeout=30)[1]
    finally:
        if p.poll() is None:
            p.kill()
        os.close(r)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_dump_stops_and_detaches_with_stdout_unread(veth, signum):
    veth.run_peer("sysctl", "-qw", f"net.ipv6.conf.{veth.peer}.disable_ipv6=1")
    p, r = _pipe_filled_by(_cmd(veth.ns, "-d", veth.dev, "-q", "0", "--match", "udp", "-j"),
                           lambda: send_udp(veth, 500) if xdp_attached(veth) else time.sleep(0.05))
    err = _signal_blocked(p, r, signum)
    assert p.returncode == 0, err
    assert "stdout was not being read; what was left to write was dropped" in err
    assert " packets, " in err            # the summary, on stderr
    assert not xdp_attached(veth)


def test_monitor_stops_with_stdout_unread(veth):
    cmd = ["ip", "netns", "exec", veth.ns, sys.executable, "-m", "xdphints_cli", "monitor", "-j"]
    names = iter(range(10**6))

    def churn():
        n = next(names)
        sh("ip", "-n", veth.ns, "link", "add", f"xm{n}", "type", "veth", "peer", "name", f"xn{n}")
        sh("ip", "-n", veth.ns, "link", "del", f"xm{n}")

    p, r = _pipe_filled_by(cmd, churn)
    err = _signal_blocked(p, r, signal.SIGTERM)
    assert p.returncode == 0, err
    assert "stdout was not being read" in err
