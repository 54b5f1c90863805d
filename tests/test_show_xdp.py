"""`show` with an XDP program attached and an AF_XDP socket bound, made by the test."""

from __future__ import annotations

import json

import pytest

from conftest import sh, xdphints
from xdphints_cli.process import netns
from xdphints_cli.bpf.insn import exit_, mov64_imm, R0
from xdphints_cli.bpf.link import XdpLink
from xdphints_cli.bpf.prog import Program
from xdphints_cli.xsk.socket import XskSocket

pytestmark = pytest.mark.privileged

XDP_PASS = 2


def test_attached_program_is_shown(veth):
    with netns.inside(veth.ns):
        prog = Program.load([mov64_imm(R0, XDP_PASS), exit_()], name="xdph_pass")
        link = XdpLink.attach(prog.fd, veth.ifindex())
    with prog, link:
        data = json.loads(xdphints("-j", "show", veth.dev, ns=veth.ns).stdout)
        bpftool = json.loads(sh("bpftool", "-j", "prog", "show", "id", str(prog.id)).stdout)
        assert data["xdp"]["mode"] == "drv"  # a bpf_link attachment reports as driver mode
        (p,) = data["xdp"]["programs"]
        assert (p["id"], p["name"], p["tag"], p["mode"]) == (bpftool["id"], "xdph_pass", bpftool["tag"], "drv")
        assert p["map-ids"] == [] and "btf-obj-id" not in p and "btf-id" not in p  # loaded without BTF
        ip_link = sh("ip", "-d", "-j", "link", "show", veth.dev, ns=veth.ns).stdout
        assert json.loads(ip_link)[0]["xdp"]["prog"]["id"] == p["id"]
        text = xdphints("show", veth.dev, ns=veth.ns).stdout
        assert f"drv: id {p['id']} name xdph_pass tag {p['tag']} (no BTF) maps none" in text

        # without CAP_SYS_ADMIN (a program by id) the ids still show, and why not more
        res = xdphints("-j", "show", veth.dev, ns=veth.ns, unprivileged=True)
        assert res.returncode == 0, res.stderr
        data = json.loads(res.stdout)
        assert data["xdp"]["programs"] == [{"id": p["id"], "mode": "drv"}]
        assert "CAP_SYS_ADMIN" in data["unavailable"]["xdp"]
        rows = json.loads(xdphints("-j", "show", ns=veth.ns).stdout)
        assert [r["xdp-programs"] for r in rows if r["ifname"] == veth.dev] == [[p["id"]]]


def test_af_xdp_socket_shows_in_xsk_queues(veth_factory):
    pair = veth_factory(rx_queues=4)
    with netns.inside(pair.ns):
        sock = XskSocket(pair.ifindex(), 2, frames=64)
    with sock:
        data = json.loads(xdphints("-j", "show", pair.dev, ns=pair.ns).stdout)
        assert data["xsk-queues"] == [2]
        assert data["queues"]["rx"] == 4
        text = xdphints("show", pair.dev, ns=pair.ns).stdout
        assert "AF_XDP sockets on queues:   2" in text
    data = json.loads(xdphints("-j", "show", pair.dev, ns=pair.ns).stdout)
    assert data["xsk-queues"] == []
