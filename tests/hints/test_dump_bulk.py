"""Pure tests of dump's bulk path: BTF-derived rows, outcome counting in bulk, and
JSON lines built from cached pieces, each checked against the per-packet path
(MetadataDecoder + hint_values + packet_json) and against the JSON Schema."""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
from collections import Counter

import jsonschema
import pytest

from xdphints_cli.btf import reader
from xdphints_cli.btf.decode import compile_decoder
from xdphints_cli.cli.dump_output import JsonLines, json_line, packet_json
from xdphints_cli.hints import layout as L
from xdphints_cli.hints.capture import Batch, Packet
from xdphints_cli.hints.decoding import HINTS, MetadataDecoder, RowLayout, hint_values
from xdphints_cli.hints.packet import summarize

SCHEMA_PATH = os.path.join(os.path.dirname(L.__file__), "dump.schema.json")
FS = 4096
RSS = {"XDP_RSS_L3_IPV4": 1, "XDP_RSS_L4": 8, "XDP_RSS_L4_UDP": 32,
       "XDP_RSS_TYPE_L4_IPV4_UDP": 41}
ENODATA, EOPNOTSUPP = -errno.ENODATA, -errno.EOPNOTSUPP


def _eth(etype: int, vlan=None) -> bytes:
    head = bytes.fromhex("020000000001") + bytes.fromhex("020000000002")
    if vlan is not None:
        head += struct.pack("!HH", 0x8100, vlan)
    return head + struct.pack("!H", etype)


def _ipv4_udp(src="192.0.2.2", dst="192.0.2.1", sport=40000, ident=0, ttl=64) -> bytes:
    udp = struct.pack("!HHHH", sport, 9999, 40, 0) + b"x" * 32
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0x4000, ttl, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + udp


def _ipv6_udp(next_header=17) -> bytes:
    l4 = struct.pack("!HHHH", 5353, 5353, 8, 0)
    return struct.pack("!IHBB16s16s", 6 << 28, len(l4), next_header, 255,
                       socket.inet_pton(socket.AF_INET6, "2001:db8::2"),
                       socket.inet_pton(socket.AF_INET6, "2001:db8::1")) + l4


FRAMES = [
    _eth(0x0800) + _ipv4_udp(),
    _eth(0x0800) + _ipv4_udp(ident=7, ttl=3),          # same flow, other volatile fields
    _eth(0x0800) + _ipv4_udp(sport=40001),
    _eth(0x86DD) + _ipv6_udp(),
    _eth(0x86DD) + _ipv6_udp(next_header=0) + b"\x11\x00" + b"\x00" * 6,  # hop-by-hop
    _eth(0x0800, vlan=(3 << 13) | 42) + _ipv4_udp(),
    _eth(0x0806) + b"\x00" * 28,
    b"\x02\x00\x00",                                    # runt
    _eth(0x0800) + _ipv4_udp()[:10],                    # truncated IPv4
]


def _meta(btf_id, ts=0, h=0x1234, ht=41, proto_be=0, tci=0, rets=(0, 0, ENODATA)):
    return struct.pack("<QIIHHiiiII", ts, h, ht, proto_be, tci, *rets, 7, btf_id)


@pytest.fixture(scope="module")
def prog_btf():
    p = L.build_btf()
    return p, reader.parse(p.blob)


def _metas(struct_id):
    return [
        _meta(struct_id),
        _meta(struct_id, ts=1_700_000_000_123_456_789),
        _meta(struct_id, ts=1_700_000_000_999_999_999),
        _meta(struct_id, proto_be=0x0081, tci=(5 << 13) | 100, rets=(0, 0, 0)),
        _meta(struct_id, rets=(EOPNOTSUPP,) * 3),
        _meta(struct_id, ts=5, rets=(-errno.EIO, ENODATA, -errno.EINVAL)),
        _meta(struct_id + 1000),                        # not a hints struct of this BTF
    ]


def _umem(frames, metas):
    """Every (frame, metadata) combination, one per 4 KiB chunk at offset 256."""
    pairs = [(f, m) for f in frames for m in metas]
    buf = bytearray(len(pairs) * FS)
    addrs = []
    for i, (f, m) in enumerate(pairs):
        a = i * FS + 256
        buf[a - len(m):a] = m
        buf[a:a + len(f)] = f
        addrs.append(a)
    return memoryview(buf), addrs, [len(f) for f, _m in pairs]


def _slow_packets(spec, umem, addrs, lengths, time_ns, snaplen):
    dec = MetadataDecoder(spec)
    out = []
    for a, n in zip(addrs, lengths):
        got = dec.decode(umem, a, 256)
        btf_id, hv = (None, {}) if got is None else (got[0], hint_values(got[1]))
        head = bytes(umem[a:a + min(n, max(snaplen or 0, 256))])
        out.append(Packet(time_ns, 0, n, summarize(head), btf_id, hv,
                          head[:snaplen] if snaplen else head))
    return out


def _rows(lay, umem, addrs):
    rows = [lay.struct.unpack_from(umem, a - lay.size) for a in addrs]
    return [r if lay.btf_id(r) == lay.type_id else None for r in rows]


def test_row_layout_comes_from_btf(prog_btf):
    p, spec = prog_btf
    lay = RowLayout(spec, p.struct_id)
    assert lay.size == L.META_SIZE and lay.struct.size == L.META_SIZE
    meta = _meta(p.struct_id, ts=9, proto_be=0x0081, tci=77, rets=(1, -2, -3))
    full = compile_decoder(spec, p.struct_id)(meta)       # the BTF decoder's view
    got = lay.meta(lay.struct.unpack_from(meta))
    assert got == {k: full[k] for k in lay.names}
    assert got["rx_vlan_ret"] == -3 and got["btf_id"] == p.struct_id
    assert "kfuncs" not in lay.names                     # members dump does not read


@pytest.mark.parametrize("snaplen", [None, 16])
def test_bulk_json_lines_equal_per_packet_json(prog_btf, snaplen):
    p, spec = prog_btf
    lay = RowLayout(spec, p.struct_id)
    umem, addrs, lengths = _umem(FRAMES, _metas(p.struct_id))
    t = 1_700_000_000_000_000_123
    batch = Batch(t, 0, addrs, lengths, _rows(lay, umem, addrs))
    jl = JsonLines(lay, umem, RSS, snaplen)
    for _ in range(2):                                   # second time: from the caches
        fast = jl.batch(batch).splitlines()
        slow = [json_line(packet_json(pk, RSS, snaplen is not None))
                for pk in _slow_packets(spec, umem, addrs, lengths, t, snaplen)]
        assert fast == slow


def test_json_lines_validate_against_schema(prog_btf):
    p, spec = prog_btf
    lay = RowLayout(spec, p.struct_id)
    umem, addrs, lengths = _umem(FRAMES, _metas(p.struct_id))
    batch = Batch(1_700_000_000_000_000_123, 0, addrs, lengths, _rows(lay, umem, addrs))
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    for snaplen in (None, 32):
        for line in JsonLines(lay, umem, RSS, snaplen).batch(batch).splitlines():
            v.validate(json.loads(line))
    with pytest.raises(jsonschema.ValidationError):
        v.validate({"time": "1.000000001", "queue": 0, "len": 1, "summary": "", "bogus": 1})


def test_bulk_counting_equals_per_packet_counting(prog_btf):
    p, spec = prog_btf
    lay = RowLayout(spec, p.struct_id)
    metas = _metas(p.struct_id)[:-1] * 3 + [_meta(p.struct_id, ts=3)]
    rows = [lay.struct.unpack_from(m) for m in metas]
    bulk = {h: Counter() for h in HINTS}
    lay.count(rows, bulk)
    lay.count([], bulk)
    slow = {h: Counter() for h in HINTS}
    for r in rows:
        for h, v in hint_values(lay.meta(r)).items():
            slow[h][v.counter_key] += 1
    assert bulk == slow
    assert bulk["rx-timestamp"]["none"] == 6 and bulk["rx-timestamp"]["ok"] == 7


def _per_packet_pcapng(pkts, queue, clock=None) -> bytes:
    """The blocks PcapngWriter.write_packet() writes for decoded Packets."""
    import io

    from xdphints_cli.cli.dump_output import hints_comment, packet_time_ns
    from xdphints_cli.cli.pcapng import PcapngWriter

    buf = io.BytesIO()
    w = PcapngWriter(buf)
    if_id = w.add_interface("xh0")
    start = buf.tell()
    for pk in pkts:
        h = pk.hints.get("rx-hash") if pk.hints else None
        rx_hash = h.get("rx_hash") if h is not None and h.status == "ok" else None
        w.write_packet(if_id, packet_time_ns(pk, clock), pk.data, orig_len=pk.length, hash=rx_hash,
                       queue=queue, comment=hints_comment(pk, RSS))
    return buf.getvalue()[start:]


@pytest.mark.parametrize("queue", [0, 5])
def test_bulk_pcapng_blocks_equal_per_packet_blocks(prog_btf, queue):
    from xdphints_cli.cli.dump_output import PcapngBlocks
    from test_dump_clock import fake_clock

    p, spec = prog_btf
    lay = RowLayout(spec, p.struct_id)
    # every frame with every metadata, twice (the second time from the caches), plus
    # frames of other lengths with the same headers
    frames = FRAMES + [FRAMES[0] + b"pad", FRAMES[0][:40]]
    umem, addrs, lengths = _umem(frames, _metas(p.struct_id))
    t = 1_700_000_000_000_000_123
    for clock in (None, fake_clock()):
        blocks = PcapngBlocks(lay, umem, RSS, 0, clock)
        batch = Batch(t, queue, addrs, lengths, _rows(lay, umem, addrs))
        slow = [Packet(pk.time_ns, queue, pk.length, pk.summary, pk.btf_id, pk.hints,
                       bytes(umem[a:a + pk.length]))
                for pk, a in zip(_slow_packets(spec, umem, addrs, lengths, t, None), addrs)]
        want = _per_packet_pcapng(slow, queue, clock)
        for _ in range(2):
            assert blocks.batch(batch) == want


def test_json_whole_line_cache_tells_lengths_and_flows_apart(prog_btf):
    """Lines cached whole are keyed by length, IPv4 header bytes and hints row:
    packets that differ in any of them get their own line."""
    p, spec = prog_btf
    lay = RowLayout(spec, p.struct_id)
    frames = [FRAMES[0], FRAMES[0] + b"longer", FRAMES[2], FRAMES[0][:37], FRAMES[0][:38],
              _eth(0x0800) + _ipv4_udp(src="192.0.2.9")]
    umem, addrs, lengths = _umem(frames * 2, _metas(p.struct_id)[:2])
    t = 1_700_000_000_000_000_123
    batch = Batch(t, 0, addrs, lengths, _rows(lay, umem, addrs))
    jl = JsonLines(lay, umem, RSS)
    slow = [json_line(packet_json(pk, RSS)) for pk in _slow_packets(spec, umem, addrs, lengths, t, None)]
    for _ in range(2):
        assert jl.batch(batch).splitlines() == slow
