"""XDP and TCX links on a veth inside throwaway namespaces."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys

import pytest

from xdphints_cli.scenario.veth_demo import vlan_push_program

from xdphints_cli.process import netns
from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.info import link_fd_by_id, link_info, next_ids
from xdphints_cli.bpf.insn import R0, XDP_PASS, exit_, mov64_imm
from xdphints_cli.bpf.link import DeviceBusyError, TcxLink, XdpLink
from xdphints_cli.bpf.prog import Program
from xdphints_cli.errors import KernelError, NotFoundError

pytestmark = pytest.mark.privileged

PASS = [mov64_imm(R0, XDP_PASS), exit_()]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def xdp_line(pair) -> str:
    return pair.run("ip", "-d", "link", "show", "dev", pair.dev).stdout


def test_attach_shows_and_detaches_on_close(veth):
    ifindex = veth.ifindex()
    with netns.inside(veth.ns):
        prog = Program.load(PASS, name="xh_link")
        link = XdpLink.attach(prog.fd, ifindex)
    with prog, link:
        pid = prog.info().id
        out = xdp_line(veth)
        assert f"prog/xdp id {pid}" in out and "xh_link" in out
        li = link.info()
        assert li.type == sc.BPF_LINK_TYPE_XDP and li.type_name == "xdp"
        assert li.prog_id == pid and li.ifindex == ifindex
        assert li.id in set(next_ids("link"))
        with link_fd_by_id(li.id) as fd:
            assert link_info(fd.fd) == li
    assert "prog/xdp" not in xdp_line(veth)


def test_second_attach_is_busy(veth):
    ifindex = veth.ifindex()
    with netns.inside(veth.ns):
        with Program.load(PASS) as prog, XdpLink.attach(prog.fd, ifindex):
            with pytest.raises(DeviceBusyError) as ei:
                XdpLink.attach(prog.fd, ifindex)
    e = ei.value
    assert isinstance(e, KernelError) and e.errno == errno.EBUSY and e.ifindex == ifindex
    assert "EBUSY" in str(e)


def test_attach_to_missing_device(veth):
    with netns.inside(veth.ns), Program.load(PASS) as prog:
        with pytest.raises(NotFoundError, match="no device with ifindex 999999") as ei:
            XdpLink.attach(prog.fd, 999999)
    assert ei.value.exit_code == 5


def test_link_detach_keeps_fd(veth):
    ifindex = veth.ifindex()
    with netns.inside(veth.ns), Program.load(PASS) as prog, \
            XdpLink.attach(prog.fd, ifindex) as link:
        link.detach()
        assert "prog/xdp" not in xdp_line(veth)
        assert not link.closed


CHILD = """
import sys, time
from xdphints_cli.process import netns
from xdphints_cli.bpf.prog import Program
from xdphints_cli.bpf.link import XdpLink
from xdphints_cli.bpf.insn import mov64_imm, exit_
ns, ifindex = sys.argv[1], int(sys.argv[2])
with netns.inside(ns):
    prog = Program.load([mov64_imm(0, 2), exit_()], name="xh_child")
    link = XdpLink.attach(prog.fd, ifindex)
print("ready", flush=True)
time.sleep(600)
"""


def test_killed_process_leaves_nothing_attached(veth):
    ifindex = veth.ifindex()
    child = subprocess.Popen([sys.executable, "-c", CHILD, veth.ns, str(ifindex)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=REPO))
    try:
        line = child.stdout.readline()
        assert line.strip() == "ready", child.stderr.read() if child.poll() is not None else line
        assert "xh_child" in xdp_line(veth)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
    assert "prog/xdp" not in xdp_line(veth)


def test_tcx_egress_attach(veth):
    with netns.inside(veth.peer_ns):
        peer_ifindex = socket.if_nametoindex(veth.peer)
        with Program.load(vlan_push_program(0x8100, 5 << 13 | 100), prog_type=sc.BPF_PROG_TYPE_SCHED_CLS,
                          expected_attach_type=sc.BPF_TCX_EGRESS, name="xh_vlan") as prog, \
                TcxLink.attach(prog.fd, peer_ifindex, sc.BPF_TCX_EGRESS) as link:
            li = link.info()
            assert li.type_name == "tcx" and li.ifindex == peer_ifindex
            assert li.attach_type == sc.BPF_TCX_EGRESS
            assert li.prog_id == prog.info().id
            assert prog.info().type_name == "sched_cls"
    with pytest.raises(ValueError):
        TcxLink.attach(0, 1, sc.BPF_XDP)
