"""verify's comparison on ring records recorded from veth (dump --pass, Linux 6.18;
skb->l4_hash read through bpf_cast_to_kern_ctx):
an untagged UDP packet and one tagged VLAN 100 PCP 5 by the sender's tx-vlan offload.
Disagreements are made by editing the recorded bytes, so exit 7's cases are proven
without a NIC that gets them wrong."""

from __future__ import annotations

import struct

import pytest

from xdphints_cli.btf import reader
from xdphints_cli.hints import layout as L
from xdphints_cli.hints import pass_program as PP
from xdphints_cli.hints.decoding import RowLayout
from xdphints_cli.hints.pass_capture import decode_record
from xdphints_cli.hints.verify import Verification, outcome

UNTAGGED = bytes.fromhex(
    "4a0000004000000026241a7500000000000000000000000000000000000000000000000000000000"
    "0300000000000000000000000000000026241a7508000000000000000000000000000000c3ffffff"
    "070000000a00000022dbb54f119bf208c9fe8d3708004500003c3f3040004011777dc0000202c000"
    "02019c40270f0028843d78787878787878787878787878787878787878787878")
TAGGED = bytes.fromhex(
    "4a00000040000000108781e400000000010000008100000064a00000000000000000000000000000"
    "03000000000000000000000000000000108781e408000000810064a0000000000000000000000000"
    "070000000a00000022dbb54f119bf208c9fe8d3708004500003c3f38400040117775c0000202c000"
    "02019c41270f0028843d78787878787878787878787878787878787878787878")


@pytest.fixture(scope="module")
def layout():
    pbtf = L.build_btf()
    return RowLayout(reader.parse(pbtf.blob), pbtf.struct_id)


def _patch(rec: bytes, off: int, fmt: str, *values) -> bytes:
    b = bytearray(rec)
    struct.pack_into(fmt, b, off, *values)
    return bytes(b)


def _verify(layout, *recs) -> Verification:
    v = Verification()
    v.add(decode_record(r, layout, 0) for r in recs)
    return v


def test_recorded_records_decode(layout):
    p = decode_record(TAGGED, layout, 123, 20)
    assert p.length == 74 and len(p.data) == 20 and p.queue == 0
    assert p.summary.src_port == 40001 and p.summary.vlans == ()
    assert p.hints["rx-vlan"].status == "ok" and p.hints["rx-vlan"].get("rx_vlan_tci") == 0xA064
    assert p.stack.vlan_present and p.stack.vlan_proto == 0x8100 and p.stack.vlan_tci == 0xA064
    assert p.stack.to_json()["vlan"] == {"proto": "0x8100", "tci": 0xA064, "vid": 100, "pcp": 5, "dei": 0}
    assert p.stack.queue_mapping == 0 and p.stack.to_json()["queue-mapping"] == 0


def test_recorded_records_agree(layout):
    v = _verify(layout, UNTAGGED, TAGGED)
    j = v.to_json("xh0", 2)
    assert j["verdict"] == "agree" and not v.disagrees and j["packets"] == 2
    assert j["hints"]["rx-hash"]["agree"] == 2 and j["hints"]["rx-hash"]["compared"] == 2
    assert j["hints"]["rx-vlan"]["agree"] == 1 and j["hints"]["rx-vlan"]["neither"] == 1
    assert j["hints"]["rx-timestamp"]["neither"] == 2 and j["hints"]["rx-timestamp"]["compared"] == 0


def test_different_hash_disagrees_with_an_example(layout):
    bad = _patch(UNTAGGED, 8, "<I", 0x12345678)            # skb->hash
    v = _verify(layout, UNTAGGED, bad)
    h = v.to_json("xh0", 2)["hints"]["rx-hash"]
    assert (h["agree"], h["disagree"]) == (1, 1) and v.verdict == "disagree"
    assert h["examples"][0]["stack"] == "0x12345678 l4"
    assert h["examples"][0]["xdp"] == "0x751a2426 l4"
    assert "192.0.2.2:40000 > 192.0.2.1:9999" in h["examples"][0]["summary"]
    assert "disagree: " in v.text("xh0") and "verdict: disagree" in v.text("xh0")


def test_l4_bit_against_skb_l4_hash(layout):
    """The recorded UDP packet: XDP_RSS_L4 in the hash type and skb->l4_hash set. A
    stack that says l3 disagrees; a kernel where l4_hash was not read compares the
    hash alone."""
    assert decode_record(UNTAGGED, layout, 0).stack.l4_hash is True
    l3 = _patch(UNTAGGED, PP.REC_FLAGS, "<I", PP.FLAG_L4_HASH_READ)
    v = _verify(layout, l3)
    assert v.hints["rx-hash"].examples[0] == {"summary": v.hints["rx-hash"].examples[0]["summary"],
                                              "xdp": "0x751a2426 l4", "stack": "0x751a2426 l3"}
    unread = _verify(layout, _patch(UNTAGGED, PP.REC_FLAGS, "<I", 0))
    assert unread.hints["rx-hash"].counts["agree"] == 1
    assert decode_record(_patch(UNTAGGED, PP.REC_FLAGS, "<I", 0), layout, 0).stack.l4_hash is None


def test_missing_tag_in_the_stack_is_xdp_only(layout):
    v = _verify(layout, _patch(TAGGED, 16, "<I", 0))          # vlan_present = 0
    assert v.hints["rx-vlan"].counts["xdp-only"] == 1 and v.verdict == "agree"


def test_different_pcp_disagrees(layout):
    v = _verify(layout, _patch(TAGGED, 24, "<I", (3 << 13) | 100))
    ex = v.hints["rx-vlan"].examples[0]
    assert ex["xdp"] == "0x8100 vid 100 pcp 5 dei 0" and ex["stack"] == "0x8100 vid 100 pcp 3 dei 0"


def test_timestamp_off_by_n_ns_disagrees(layout):
    ts = 1_700_000_000_123_456_789
    meta = PP.REC_META
    rec = _patch(UNTAGGED, meta + L.OFFSET["rx_timestamp"], "<Q", ts)
    rec = _patch(rec, meta + L.OFFSET["rx_timestamp_ret"], "<i", 0)
    same = _patch(rec, 32, "<Q", ts)                          # skb hwtstamp
    off = _patch(rec, 32, "<Q", ts + 250)
    v = _verify(layout, same, off, rec)
    t = v.hints["rx-timestamp"]
    assert (t.counts["agree"], t.counts["disagree"], t.counts["xdp-only"]) == (1, 1, 1)
    assert t.examples[0]["diff-ns"] == 250
    assert "(+250 ns)" in v.text("xh0")


def test_examples_are_capped_and_outcomes_are_total(layout):
    bad = _patch(UNTAGGED, 8, "<I", 1)
    v = _verify(layout, *[bad] * 9)
    assert v.hints["rx-hash"].counts["disagree"] == 9 and len(v.hints["rx-hash"].examples) == 5
    assert outcome(None, None) == "neither" and outcome(None, "1") == "stack-only"


def test_nothing_compared_is_its_own_verdict():
    assert Verification().verdict == "nothing compared"


def test_short_record_is_an_error(layout):
    from xdphints_cli.errors import XdpHintsError

    with pytest.raises(XdpHintsError):
        decode_record(UNTAGGED[:40], layout, 0)
