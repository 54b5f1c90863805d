"""Pure tests: metadata BTF layout, decoding through BTF, packet summaries."""

from __future__ import annotations

import errno
import struct

from xdphints_cli.btf import reader
from xdphints_cli.btf.hints import find_hints_struct
from xdphints_cli.hints import layout as L
from xdphints_cli.hints.decoding import MetadataDecoder, hint_values, rss_type_names
from xdphints_cli.hints.packet import summarize


def _meta(btf_id, ts=0, h=0x1234, ht=41, proto_be=0x0081, tci=0, rets=(0, 0, -errno.ENODATA)):
    return struct.pack("<QIIHHiiiII", ts, h, ht, proto_be, tci, *rets, 7, btf_id)


def test_btf_struct_matches_layout_and_ends_in_btf_id():
    p = L.build_btf()
    spec = reader.parse(p.blob)
    t = find_hints_struct(spec)
    assert t.id == p.struct_id and t.name == L.STRUCT_NAME and t.size == L.META_SIZE
    assert [(m.name, m.bit_offset // 8) for m in t.members] == [(n, o) for n, _t, o in L.FIELDS]
    assert t.members[-1].name == "btf_id" and t.members[-1].bit_offset // 8 == L.META_SIZE - 4
    assert spec.name_of(p.func_id) == L.FUNC_NAME


def test_decoder_reads_trailing_btf_id_and_members_by_name():
    p = L.build_btf()
    dec = MetadataDecoder(reader.parse(p.blob))
    buf = b"\xee" * 16 + _meta(p.struct_id, tci=(5 << 13) | 100) + b"packet"
    addr = 16 + L.META_SIZE
    btf_id, meta = dec.decode(buf, addr, addr)
    assert btf_id == p.struct_id and meta["rx_hash"] == 0x1234
    hv = hint_values(meta)
    assert hv["rx-timestamp"].status == "none"          # ret 0, value 0
    assert hv["rx-hash"].status == "ok" and hv["rx-hash"].get("rx_hash_type") == 41
    assert hv["rx-vlan"].status == "none" and hv["rx-vlan"].errno_name == "ENODATA"
    # unknown btf_id, or not enough room: no metadata
    bad = b"\0" * 36 + struct.pack("<I", 999) + b"pkt"
    assert dec.decode(bad, 40, 40) is None
    assert dec.decode(buf, addr, 20) is None


def test_vlan_proto_is_read_big_endian():
    p = L.build_btf()
    spec = reader.parse(p.blob)
    dec = MetadataDecoder(spec)
    buf = _meta(p.struct_id, proto_be=0x0081, tci=(3 << 13) | (1 << 12) | 42, rets=(0, 0, 0))
    hv = hint_values(dec.decode(buf, len(buf), len(buf))[1])
    assert hv["rx-vlan"].status == "ok"
    assert hv["rx-vlan"].get("rx_vlan_proto") == 0x8100
    assert hv["rx-vlan"].get("rx_vlan_tci") & 0xFFF == 42


def test_eopnotsupp_is_unsupported():
    meta = {"rx_timestamp": 0, "rx_timestamp_ret": -errno.EOPNOTSUPP, "rx_hash": 0,
            "rx_hash_type": 0, "rx_hash_ret": -errno.EOPNOTSUPP}
    hv = hint_values(meta)
    assert hv["rx-timestamp"].status == "unsupported"
    assert hv["rx-timestamp"].counter_key == "EOPNOTSUPP"
    assert hv["rx-vlan"].status == "absent"


def test_rss_type_bits():
    table = {"XDP_RSS_L3_IPV4": 1, "XDP_RSS_L4": 8, "XDP_RSS_L4_UDP": 32, "XDP_RSS_TYPE_L4_IPV4_UDP": 41}
    assert rss_type_names(41, table) == ("XDP_RSS_L3_IPV4", "XDP_RSS_L4", "XDP_RSS_L4_UDP")
    assert rss_type_names(0, table) == ()
    assert rss_type_names(8 | 1024, table) == ("XDP_RSS_L4", "0x400")


def _eth(etype, payload, vlans=()):
    hdr = bytes.fromhex("020000000002020000000001")
    for tpid, tci in vlans:
        hdr += struct.pack("!HH", tpid, tci)
    return hdr + struct.pack("!H", etype) + payload


def test_summary_ipv4_udp_with_vlan_in_frame():
    ip = bytes.fromhex("4500002c00000000401100000a0000010a000002") + struct.pack("!HHHH", 1234, 53, 8, 0)
    s = summarize(_eth(0x0800, ip, [(0x8100, (5 << 13) | 100)]))
    assert s.text() == ("02:00:00:00:00:01 > 02:00:00:00:00:02, vlan 0x8100 vid 100 pcp 5, "
                        "IPv4 10.0.0.1:1234 > 10.0.0.2:53, UDP")
    j = s.to_json()
    assert j["vlan-in-frame"] == [{"proto": "0x8100", "vid": 100, "pcp": 5, "dei": 0}]
    assert (j["ip-proto"], j["src-port"], j["dst-port"]) == ("UDP", 1234, 53)


def test_summary_ipv6_tcp_and_short_frames():
    ip6 = struct.pack("!IHBB", 6 << 28, 20, 6, 64) + bytes(15) + b"\1" + bytes(15) + b"\2"
    s = summarize(_eth(0x86DD, ip6 + struct.pack("!HH", 443, 50000) + bytes(16)))
    assert s.text().endswith("IPv6 [::1]:443 > [::2]:50000, TCP")
    assert summarize(b"").text() == "runt frame"
    assert summarize(_eth(0x0800, b"\x45")).truncated
    for n in range(0, 80):  # never raises on any truncation
        summarize(_eth(0x86DD, ip6 + bytes(8))[:n])
