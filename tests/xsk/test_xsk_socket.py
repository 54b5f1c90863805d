"""AF_XDP end to end on a veth: a dev-bound hints program fills the metadata area from
the RX metadata kfuncs and redirects to an XskSocket; UDP comes from the peer netns."""

from __future__ import annotations

import errno
import os
import socket
import struct
import time

import pytest

from xdphints_cli.scenario.veth_demo import vlan_push_program

from xsk_helpers import META_LEN, hints_setup, packet_offset, receive, send_udp, static_neigh
from xdphints_cli.process import netns
from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.insn import R0, R2, exit_
from xdphints_cli.bpf.link import TcxLink
from xdphints_cli.bpf.prog import Program
from xdphints_cli.errors import NotFoundError, NotSupportedError
from xdphints_cli.xsk.socket import QueueBusyError, XskSocket

pytestmark = pytest.mark.privileged

ENODATA = -errno.ENODATA
XDP_RSS_L4 = 8
STAT_KEYS = {"rx_dropped", "rx_invalid_descs", "tx_invalid_descs", "rx_ring_full",
             "rx_fill_ring_empty_descs", "tx_ring_empty_descs"}


def test_hints_metadata_in_front_of_each_frame(veth):
    with hints_setup(veth) as xsk:
        assert not xsk.zerocopy
        send_udp(veth, 25, src_ports=(40000, 40001))
        got = receive(xsk, 50)
        stats = xsk.statistics()
    assert len(got) == 50
    hashes = {40000: set(), 40001: set()}
    for (ts, rxhash, htype, ts_ret, hash_ret, vlan_ret, _p, _t), sport, dport, length in got:
        assert dport == 9999 and length == 14 + 20 + 8 + 32
        assert ts_ret == 0 and ts == 0           # veth: no hardware timestamp source
        assert hash_ret == 0 and rxhash != 0 and htype & XDP_RSS_L4
        assert vlan_ret == ENODATA                # untagged frames
        hashes[sport].add(rxhash)
    assert all(len(h) == 1 for h in hashes.values())  # one hash per flow
    assert set(stats) == STAT_KEYS
    assert stats["rx_dropped"] == stats["rx_invalid_descs"] == stats["rx_ring_full"] == 0


def test_rings_wrap_and_frames_recycle(veth):
    """64 frames and 64-entry rings; 6 bursts of 50 go round the rings ~5 times."""
    with hints_setup(veth, frames=64) as xsk:
        total = 0
        for _ in range(6):
            send_udp(veth, 50)
            total += len(receive(xsk, 50))
        assert xsk.fill.free() == 0  # every frame is back with the kernel
        assert xsk.statistics()["rx_dropped"] == 0
    assert total == 300


def test_full_ring_drops_are_counted(veth):
    """More packets than frames while nobody reads: the surplus is counted, not lost."""
    with hints_setup(veth, frames=16) as xsk:
        send_udp(veth, 40)
        got = receive(xsk, 16)
        stats = xsk.statistics()
    assert len(got) == 16
    assert len(got) + stats["rx_dropped"] + stats["rx_ring_full"] == 40
    assert stats["rx_fill_ring_empty_descs"] > 0


def test_vlan_tag_from_tx_vlan_accel(veth):
    """A tcx egress program on the sender pushes an accel VLAN tag; the receiver's
    vlan kfunc reports it (proto big-endian, tci host order)."""
    tci = (5 << 13) | 100
    static_neigh(veth)  # ARP would be tagged too, and nobody answers tagged ARP
    with netns.inside(veth.peer_ns):
        peer_ifindex = socket.if_nametoindex(veth.peer)
        tc = Program.load(vlan_push_program(0x8100, tci), prog_type=sc.BPF_PROG_TYPE_SCHED_CLS,
                          expected_attach_type=sc.BPF_TCX_EGRESS, name="xh_vlan")
        link = TcxLink.attach(tc.fd, peer_ifindex, sc.BPF_TCX_EGRESS)
    with tc, link, hints_setup(veth) as xsk:
        send_udp(veth, 10)
        got = receive(xsk, 10)
    assert len(got) == 10
    for (_ts, _h, _t, _tr, _hr, vlan_ret, proto_be, vtci), *_ in got:
        assert vlan_ret == 0
        assert socket.ntohs(proto_be) == 0x8100
        assert vtci == tci and vtci & 0xFFF == 100 and vtci >> 13 == 5


def test_same_queue_rebinds_right_after_close(veth):
    ifindex = veth.ifindex()
    with netns.inside(veth.ns):
        for _ in range(3):
            with XskSocket(ifindex, 0, frames=64) as xsk:
                assert xsk.statistics()["rx_dropped"] == 0
    with hints_setup(veth, frames=64) as xsk:
        send_udp(veth, 5)
        assert len(receive(xsk, 5)) == 5
    with hints_setup(veth, frames=64) as xsk:  # again, at once
        send_udp(veth, 5)
        assert len(receive(xsk, 5)) == 5


def test_second_socket_on_same_queue_is_busy(veth):
    ifindex = veth.ifindex()
    with netns.inside(veth.ns), XskSocket(ifindex, 0, frames=64):
        with pytest.raises(QueueBusyError) as ei:
            XskSocket(ifindex, 0, frames=64, bind_retry_s=0)
    assert ei.value.errno == errno.EBUSY


def test_missing_queue_is_a_clear_error(veth):
    ifindex = veth.ifindex()
    with netns.inside(veth.ns):
        with pytest.raises(NotFoundError) as ei:
            XskSocket(ifindex, 5, frames=64)
    assert str(ei.value) == "xh0 has 1 active RX queue (0); queue 5 is not one of them"
    assert ei.value.exit_code == 5


def test_queue_count_with_more_queues(veth_factory):
    pair = veth_factory(rx_queues=4)
    ifindex = pair.ifindex()
    with netns.inside(pair.ns):
        with XskSocket(ifindex, 3, frames=64) as xsk:
            assert xsk.queue == 3
        with pytest.raises(NotFoundError, match=r"has 4 active RX queues \(0-3\); queue 4 is not one of them"):
            XskSocket(ifindex, 4, frames=64)


def test_zerocopy_not_supported_on_veth(veth):
    ifindex = veth.ifindex()
    with netns.inside(veth.ns):
        with pytest.raises(NotSupportedError, match="zero-copy"):
            XskSocket(ifindex, 0, frames=64, zerocopy=True)


def _socket_maps() -> int:
    """Ring mappings show as socket:[inode]; the UMEM (shared anonymous) as /dev/zero."""
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if "socket:[" in line or "/dev/zero (deleted)" in line)


def test_no_fd_or_mapping_leaks(veth):
    def cycle():
        with hints_setup(veth, frames=64) as xsk:
            send_udp(veth, 3)
            got = receive(xsk, 3)
            meta = xsk.umem[256:256 + META_LEN]  # a view handed out and released
            meta.release()
            assert len(got) == 3
    cycle()  # warm-up: lazy imports, cached objects
    fds, maps = sorted(os.listdir("/proc/self/fd")), _socket_maps()
    for _ in range(3):
        cycle()
    assert sorted(os.listdir("/proc/self/fd")) == fds
    assert _socket_maps() == maps


def test_closed_socket_refuses_use(veth):
    ifindex = veth.ifindex()
    with netns.inside(veth.ns):
        xsk = XskSocket(ifindex, 0, frames=64)
    xsk.close()
    xsk.close()  # idempotent
    assert xsk.closed
    with pytest.raises(ValueError):
        xsk.fd




def test_dev_bound_program_uses_driver_kfuncs(veth_factory):
    """bpftool shows the kfunc calls rewritten to veth's implementations; a dev-bound
    program refuses another device and generic mode (EINVAL without a message: the
    link API has no extack, unlike netlink attach)."""
    import subprocess

    from xsk_helpers import KFUNCS, hints_program, vmlinux_func_ids
    from xdphints_cli.bpf.link import XdpLink
    from xdphints_cli.bpf.maps import Map
    from xdphints_cli.errors import KernelError

    a, b = veth_factory(), veth_factory()
    ids = vmlinux_func_ids(KFUNCS)
    ifindex_a = a.ifindex()
    with netns.inside(a.ns), Map.create(sc.BPF_MAP_TYPE_XSKMAP, 4, 4, 1) as xmap, \
            Program.load(hints_program(xmap.fd, ids), ifindex=ifindex_a,
                         flags=sc.BPF_F_XDP_DEV_BOUND_ONLY, name="xh_bound") as prog:
        info = prog.info()
        assert info.ifindex == 0  # dev-bound (not offloaded) programs report 0
        xlated = subprocess.run(["bpftool", "prog", "dump", "xlated", "id", str(info.id)],
                                check=True, capture_output=True, text=True).stdout
        for impl in ("veth_xdp_rx_timestamp", "veth_xdp_rx_hash", "veth_xdp_rx_vlan_tag"):
            assert impl in xlated
        # Same ifindex number, different device (each netns has its own ifindex 2)
        with pytest.raises(KernelError, match="device-bound program attached to another") as ei:
            with netns.inside(b.ns):
                XdpLink.attach(prog.fd, b.ifindex())
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(KernelError, match="generic") as ei:
            XdpLink.attach(prog.fd, ifindex_a, sc.XDP_FLAGS_SKB_MODE)
        assert ei.value.errno == errno.EINVAL


def test_error_paths_do_not_leak(veth):
    from xdphints_cli.bpf.insn import ldx_mem
    from xdphints_cli.bpf.prog import VerifierError

    ifindex = veth.ifindex()

    def failures():
        with netns.inside(veth.ns):
            with pytest.raises(NotFoundError):
                XskSocket(ifindex, 7, frames=64)
            with pytest.raises(NotSupportedError):
                XskSocket(ifindex, 0, frames=64, zerocopy=True)
            with XskSocket(ifindex, 0, frames=64), pytest.raises(QueueBusyError):
                XskSocket(ifindex, 0, frames=64, bind_retry_s=0)
            with pytest.raises(VerifierError):
                Program.load([ldx_mem(4, R0, R2, 0), exit_()])
    failures()
    fds, maps = sorted(os.listdir("/proc/self/fd")), _socket_maps()
    failures()
    assert sorted(os.listdir("/proc/self/fd")) == fds
    assert _socket_maps() == maps


def test_detached_descriptors_free_their_ring_slots_but_keep_the_frames(veth):
    """rx_detach gives the RX ring slots back at once (a second full ring's worth is
    received while the first batch is still held) and keeps the held frames out of
    the kernel's hands until return_frames."""
    with hints_setup(veth, frames=64, rx_size=32) as xsk:
        send_udp(veth, 32, src_ports=(41000,))
        assert xsk.poll(2000)
        deadline = time.monotonic() + 5
        while xsk.rx.available() < 32 and time.monotonic() < deadline:
            time.sleep(0.01)
        n, first = xsk.rx_batch(64)
        assert n == 32
        held = [xsk.desc(first + k)[0] for k in range(n)]
        xsk.rx_detach(first, n)
        assert xsk.rx.available() == 0 and xsk.fill.free() == 64 - 32

        send_udp(veth, 32, src_ports=(42000,))
        second = receive(xsk, 32)
        assert [p[1] for p in second] == [42000] * 32
        # the held frames still have the first burst: the kernel had none of them
        off = packet_offset(xsk.test_transport) + 34
        assert {struct.unpack_from("!H", xsk.umem, a + off)[0] for a in held} == {41000}
        xsk.return_frames(first, n)
        assert xsk.fill.free() == 0
        stats = xsk.statistics()
        assert stats["rx_ring_full"] == stats["rx_dropped"] == 0
