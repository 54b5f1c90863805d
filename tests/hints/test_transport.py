"""Transports: where the hints travel with a packet. Every transport end to end on
veth (the packet byte for byte in every output), the kernel probe, auto's choice, and a
transport that fails at run time (a real helper error: bpf_xdp_adjust_head asked for
more headroom than any frame has)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import pytest

from conftest import need_metadata_area, need_tool
from test_dump import finish, start_dump
from test_dump_pcapng import tshark_fields

from xdphints_cli.hints import metadata_area as MA
from xdphints_cli.hints import transport as T

RAW_SENDER = """
import socket, sys
dev, frames = sys.argv[1], sys.argv[2].split(',')
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
for f in frames:
    s.send(bytes.fromhex(f))
"""


def _mac(pair, ns, dev) -> bytes:
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", dev], capture_output=True,
                         text=True, check=True).stdout
    return bytes.fromhex(json.loads(out)[0]["address"].replace(":", ""))


def udp_frames(pair, count: int, size: int = 64, port: int = 9999, first: int = 0,
               flows: bool = False):
    """Raw Ethernet/IPv4/UDP frames from the peer to the device, each payload starting
    with its sequence number (4 bytes), zero UDP checksum (IPv4 allows it); with
    `flows` each from a source port of its own (40000 + sequence number)."""
    import struct

    dst, src = _mac(pair, pair.ns, pair.dev), _mac(pair, pair.peer_ns, pair.peer)
    frames = []
    for seq in range(first, first + count):
        payload = struct.pack("!I", seq) + bytes((seq + i) & 0xFF for i in range(size - 4))
        sport = 40000 + seq if flows else 40000
        udp = struct.pack("!HHHH", sport, port, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq & 0xFFFF, 0, 64, 17, 0,
                         bytes(map(int, pair.peer_addr.split("."))),
                         bytes(map(int, pair.addr.split("."))))
        csum = sum(struct.unpack("!10H", ip))
        csum = (csum & 0xFFFF) + (csum >> 16)
        csum = ~((csum & 0xFFFF) + (csum >> 16)) & 0xFFFF
        ip = ip[:10] + struct.pack("!H", csum) + ip[12:]
        frames.append(dst + src + b"\x08\x00" + ip + udp)
    return frames


def send_frames(pair, frames):
    pair.run_peer(sys.executable, "-c", RAW_SENDER, pair.peer, ",".join(f.hex() for f in frames))


# --- pure ----------------------------------------------------------------------------

@pytest.mark.parametrize("t,metas,addrs,lengths", [
    (T.METADATA, [216, 4312], [256, 4352], [100, 60]),
    (T.HEADROOM, [256, 4352], [296, 4392], [60, 20]),
    (T.TAIL, [316, 4372], [256, 4352], [60, 20]),
])
def test_locate_finds_struct_and_packet(t, metas, addrs, lengths):
    assert [list(x) for x in t.locate([256, 4352], [100, 60], 40)] == [metas, addrs, lengths]


def test_auto_takes_the_metadata_area_unless_the_kernel_refuses_it(monkeypatch):
    monkeypatch.setattr(MA, "kernel_metadata_area", lambda: MA.MetadataArea("accepted"))
    assert T.choose("auto") == (T.METADATA, "auto: this kernel accepts the XDP metadata area")
    assert T.choose("auto", passing=True)[0] is T.METADATA
    refused = MA.MetadataArea("refused", "program of this type cannot use helper "
                                        "bpf_xdp_adjust_meta#54")
    monkeypatch.setattr(MA, "kernel_metadata_area", lambda: refused)
    t, why = T.choose("auto")
    assert t is T.HEADROOM and why == ("auto: metadata area refused by this kernel: program of "
                                       "this type cannot use helper bpf_xdp_adjust_meta#54")
    assert T.choose("auto", passing=True)[0] is T.FINGERPRINT
    assert T.choose("tail") == (T.TAIL, "--transport")
    assert [T.after(t) for t in T.ORDER] == [T.HEADROOM, T.TAIL, None]
    assert T.after(T.METADATA, passing=True) is T.FINGERPRINT


# --- on the kernel -------------------------------------------------------------------

@pytest.mark.privileged
def test_probe_agrees_with_loading_the_metadata_program(veth):
    """What the probe says is what loading the built-in metadata program gets."""
    from xdphints_cli.process import netns
    from xdphints_cli.bpf import syscall as sc
    from xdphints_cli.bpf.maps import Map
    from xdphints_cli.errors import NotSupportedError
    from xdphints_cli.hints import program as P

    MA.kernel_metadata_area.cache_clear()
    area = MA.kernel_metadata_area()
    assert area.status in ("accepted", "refused"), area
    with netns.inside(veth.ns), Map.create(sc.BPF_MAP_TYPE_XSKMAP, 4, 4, 1) as xmap:
        if area.status == "accepted":
            P.load(veth.ifindex(), {}, xmap.fd)[0].close()
        else:
            assert "bpf_xdp_adjust_meta" in area.reason
            with pytest.raises(NotSupportedError) as ei:
                P.load(veth.ifindex(), {}, xmap.fd)
            assert area.reason in str(ei.value) and "\n" not in str(ei.value)
        for t in (T.HEADROOM, T.TAIL):      # these need nothing the kernel may refuse
            P.load(veth.ifindex(), {}, xmap.fd, transport=t)[0].close()


def _dump_transport(pair, transport, frames, *args):
    """dump with --transport for as long as the frames take; (rc, stdout, stderr, how
    many of them went to the stack without hints)."""
    if transport == "metadata":
        need_metadata_area()
    p = start_dump(pair, "-d", pair.dev, "--queue", "0", "--match", "udp", "--duration", "2",
                   "--transport", transport, *args)
    send_frames(pair, frames)
    rc, out, err = finish(p)
    unplaced = re.search(r"(\d+) packets? went to the stack without hints", err)
    return rc, out, err, int(unplaced.group(1)) if unplaced else 0


def _carried(transport, frames, unplaced, got):
    """The frames that carried hints, in order: all of them, but for tail, which veth
    can grow only by the slack its buffer allocation left (64-byte rounding: some
    frame sizes have room for the struct, others none); those that found no room
    went to the stack, counted."""
    if transport != "tail":
        assert unplaced == 0
        return frames
    assert len(got) >= 2 and len(got) + unplaced == len(frames)
    return [f for f in frames if f in got]


@pytest.mark.privileged
@pytest.mark.parametrize("transport", ["metadata", "headroom", "tail"])
def test_every_output_shows_the_packet_as_it_arrived(veth, tmp_path, transport):
    """-j --hex data, text, pcapng (tshark) and --snaplen: the frame sent, byte for
    byte and with its length, whatever the transport put around it."""
    need_tool("tshark")
    frames = udp_frames(veth, 4, size=32) + udp_frames(veth, 2, size=1400, first=4) + \
        udp_frames(veth, 2, size=800, first=6)
    rc, out, err, unplaced = _dump_transport(veth, transport, frames, "-j", "--hex",
                                             "--snaplen", "2000")
    assert rc == 0, err
    assert f"transport {transport} (--transport)" in err
    pkts = [json.loads(line) for line in out.splitlines()]
    got = [bytes.fromhex(p["data"]) for p in pkts]
    carried = _carried(transport, frames, unplaced, got)
    assert got == carried
    assert [p["len"] for p in pkts] == [len(f) for f in carried]
    assert all(p["rx-hash"]["status"] == "ok" for p in pkts)

    rc, out, err, unplaced = _dump_transport(veth, transport, carried, "-j", "--hex",
                                             "--snaplen", "20")
    assert rc == 0 and unplaced == 0, err
    assert [json.loads(line)["data"] for line in out.splitlines()] == [f[:20].hex() for f in carried]

    rc, out, err, unplaced = _dump_transport(veth, transport, carried)
    assert rc == 0 and unplaced == 0, err
    assert [line.split(" len ")[1].split()[0] for line in out.splitlines()] == \
        [str(len(f)) for f in carried]

    path = tmp_path / "t.pcapng"
    rc, out, err, unplaced = _dump_transport(veth, transport, carried, "-w", str(path))
    assert rc == 0 and unplaced == 0, err
    rows = tshark_fields(path, "frame.len", "frame.cap_len", "udp.payload")
    assert [(int(a), int(b)) for a, b, _ in rows] == [(len(f), len(f)) for f in carried]
    assert [bytes.fromhex(p.replace(":", "")) for _, _, p in rows] == [f[42:] for f in carried]


class _NoHeadroom(T._Headroom):
    """The headroom transport asking for more room than any frame has: the kernel's
    bpf_xdp_adjust_head refuses it at run time (EINVAL), as a driver without enough
    headroom would."""

    def reserve(self, size, fail, bad):
        return super().reserve(4000, fail, bad)


NO_HEADROOM = _NoHeadroom("headroom", "bpf_xdp_adjust_head", True)


def _capture_with(monkeypatch, veth, order, requested, warnings):
    from xdphints_cli.hints import capture
    from xdphints_cli.hints.program import Match

    monkeypatch.setattr(T, "ORDER", order)
    monkeypatch.setattr(T, "choose", lambda req, passing=False: (order[0], "test"))
    target = capture.resolve_target(veth.dev, 0, warnings.append)
    return capture.Capture(target, 0, warn=warnings.append, transport=requested,
                           match=Match.parse("udp"))


def _send_when(veth, first, then_when, then):
    """Send `first`, wait until then_when() (at most 10 s), send `then`."""
    def run():
        send_frames(veth, first)
        deadline = time.monotonic() + 10
        while not then_when() and time.monotonic() < deadline:
            time.sleep(0.02)
        if then:
            send_frames(veth, then)

    th = threading.Thread(target=run)
    th.start()
    return th


@pytest.mark.privileged
def test_auto_moves_on_when_the_transport_fails_at_run_time(veth, monkeypatch):
    """The packets the failing transport could not place went to the stack and are
    counted; auto replaced the program through the link; the next packets carry hints."""
    from xdphints_cli.process import netns

    warnings = []
    with netns.inside(veth.ns), _capture_with(monkeypatch, veth, (NO_HEADROOM, T.HEADROOM),
                                              "auto", warnings) as cap:
        first_prog = cap.prog_id
        th = _send_when(veth, udp_frames(veth, 3), lambda: cap.transport is T.HEADROOM,
                        udp_frames(veth, 5, first=3))
        pkts = [p for b in cap.batches(count=5, duration=15) for p in cap.decode(b, 2000)]
        th.join()
    assert cap.transport is T.HEADROOM and cap.prog_id != first_prog
    assert [p.data[42:46] for p in pkts] == [bytes([0, 0, 0, s]) for s in range(3, 8)]
    assert all(p.hints["rx-hash"].status == "ok" for p in pkts)
    assert cap.unplaced == 3
    msg = f"bpf_xdp_adjust_head returned EINVAL for 3 packets on {veth.dev} (driver veth)"
    assert msg in warnings[-1] and "switched to the headroom transport" in warnings[-1]
    tj = cap.transport_json()
    assert tj["name"] == "headroom" and tj["unplaced"] == 3 and msg in tj["failed"][0]
    assert tj["why"].startswith("auto: the headroom transport failed")


@pytest.mark.privileged
@pytest.mark.parametrize("requested,start", [
    ("auto", "no transport can carry hints on"),
    ("headroom", "the headroom transport cannot carry hints on"),
])
def test_no_transport_left_is_exit_3_with_device_driver_and_errno(veth, monkeypatch,
                                                                  requested, start):
    from xdphints_cli.process import netns
    from xdphints_cli.errors import EXIT_UNSUPPORTED, NotSupportedError

    with netns.inside(veth.ns), _capture_with(monkeypatch, veth, (NO_HEADROOM,), requested,
                                              []) as cap:
        th = _send_when(veth, udp_frames(veth, 2), lambda: True, [])
        with pytest.raises(NotSupportedError) as ei:
            for _ in cap.batches(duration=15):
                pass
        th.join()
    e = ei.value
    assert e.exit_code == EXIT_UNSUPPORTED
    assert str(e).startswith(f"{start} {veth.dev}: headroom: bpf_xdp_adjust_head returned "
                             f"EINVAL for 2 packets on {veth.dev} (driver veth)")
    assert "went to the stack without hints" in str(e)


def test_attached_on_a_kernel_that_refuses_says_the_program_cannot_either(monkeypatch):
    from xdphints_cli.cli.dump import metadata_area_refused

    monkeypatch.setattr(MA, "kernel_metadata_area", lambda: MA.MetadataArea("accepted"))
    assert metadata_area_refused(42) == ""
    monkeypatch.setattr(MA, "kernel_metadata_area", lambda: MA.MetadataArea(
        "refused", "program of this type cannot use helper bpf_xdp_adjust_meta#54"))
    assert metadata_area_refused(42) == (
        "this kernel refuses bpf_xdp_adjust_meta in XDP programs (program of this type cannot "
        "use helper bpf_xdp_adjust_meta#54): program id 42 cannot use the metadata area "
        "either, so its packets show without metadata (the built-in program moves its hints "
        "to the headroom instead)")


@pytest.mark.privileged
@pytest.mark.parametrize("command,args", [
    ("dump", ("--queue", "0")), ("dump", ("--queue", "0", "--pass")), ("verify", ()),
])
def test_forced_metadata_transport_works_or_is_exit_3_with_the_kernels_reason(veth, command, args):
    """Where the kernel accepts the helper the capture runs; where it refuses it, one
    line with the verifier's reason and exit 3, never the verifier's log."""
    from conftest import xdphints

    MA.kernel_metadata_area.cache_clear()
    area = MA.kernel_metadata_area()
    res = xdphints(command, "-d", veth.dev, *args, "--transport", "metadata", "--duration",
                   "0.3", ns=veth.ns)
    if area.status == "accepted":
        assert res.returncode == 0, res.stderr
        assert "transport metadata (--transport)" in res.stderr
    else:
        assert res.returncode == 3
        assert res.stderr == (f"xdphints: error: the metadata transport needs bpf_xdp_adjust_meta, "
                              f"which this kernel refuses in XDP programs ({area.reason}): use "
                              "--transport auto (the headroom; for --pass and verify, "
                              "fingerprints)\n")


@pytest.mark.privileged
@pytest.mark.parametrize("transport", ["headroom", "tail"])
def test_frames_of_queues_without_a_socket_reach_the_stack_as_they_came(veth_factory, transport):
    """dump on queue 0 of four: the program also runs for the other queues' frames,
    where no socket takes them; it undoes its change before passing them on, so a UDP
    socket on the device gets every one of those datagrams intact."""
    from test_dump import send_udp
    from test_dump_pass import _receiver
    from test_dump_queues import SRC_PORTS

    pair = veth_factory(rx_queues=4)
    per_port = 5
    total = per_port * len(SRC_PORTS)
    rx = _receiver(pair, 9999, total)
    p = start_dump(pair, "-d", pair.dev, "--queue", "0", "--match", "udp", "--duration", "3",
                   "--quiet", "-j", "--transport", transport)
    send_udp(pair, per_port, src_ports=SRC_PORTS, port=9999)
    rc, out, err = finish(p)
    assert rc == 0, err
    s = json.loads(out)
    got_by_stack = int(rx.communicate(timeout=30)[0].split()[-1])
    assert s["transport"]["name"] == transport
    assert 0 < got_by_stack < total                        # several queues, one captured
    assert s["packets"] + got_by_stack == total            # (unplaced ones reach the stack)


def test_probe_program_is_what_the_assembler_makes():
    from xdphints_cli.bpf.insn import R0, R2, XDP_PASS, call_helper, encode, exit_, mov64_imm

    assert MA.PROBE_INSNS == encode([mov64_imm(R2, 0), call_helper(T.HELPER_XDP_ADJUST_META),
                                     mov64_imm(R0, XDP_PASS), exit_()])


def test_the_cli_spells_out_the_transport_names_it_offers():
    """dump and verify list the names without importing the hints code (--help stays
    light); they must be the transports' own."""
    from xdphints_cli.cli.dump import TRANSPORTS
    from xdphints_cli.cli.verify import PASS_TRANSPORTS

    assert TRANSPORTS == T.NAMES + (T.FINGERPRINT.name,)
    assert PASS_TRANSPORTS == T.PASS_NAMES
