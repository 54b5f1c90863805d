"""decode() and compile_decoder() agree with each other and with struct.pack."""

from __future__ import annotations

import random
import struct

import pytest

from xdphints_cli.btf import decode, wire
from xdphints_cli.btf.writer import Builder


def test_compiled_equals_walker_on_vmlinux(vmlinux):
    rnd = random.Random(11)
    ids = [t for t in vmlinux.own_ids()
           if vmlinux.kind_of(t) in (wire.KIND_STRUCT, wire.KIND_UNION)]
    picked = rnd.sample(ids, 300) + [vmlinux.find(n, "struct").id
                                     for n in ("sk_buff", "xdp_md", "xdp_buff")]
    for tid in picked:
        size = vmlinux.size_of(tid)
        buf = bytes(rnd.getrandbits(8) for _ in range(size + 5))
        assert decode.compile_decoder(vmlinux, tid)(buf, 5) == \
            decode.decode(vmlinux, tid, buf, 5), vmlinux[tid].name


def test_xdp_md(vmlinux):
    t = vmlinux.find("xdp_md", "struct")
    buf = struct.pack("<6I", 1, 2, 3, 4, 5, 6)
    f = decode.compile_decoder(vmlinux, t.id)
    assert f(buf) == {"data": 1, "data_end": 2, "data_meta": 3, "ingress_ifindex": 4,
                      "rx_queue_index": 5, "egress_ifindex": 6}
    assert f(memoryview(buf)) == f(bytearray(buf))


def _spec():
    b = Builder()
    u8 = b.add_int("unsigned char", 1)
    s16 = b.add_int("short", 2, signed=True)
    u32 = b.add_int("unsigned int", 4)
    s64 = b.add_int("long long", 8, signed=True)
    u128 = b.add_int("unsigned __int128", 16)
    bl = b.add_int("_Bool", 1, bool_=True)
    flt = b.add_float("float", 4)
    en = b.add_enum("e", [("NEG", -2), ("ONE", 1)], size=4, signed=True)
    inner = b.add_struct("inner", 4, [("lo", s16, 0), ("hi", s16, 16)])
    arr_inner = b.add_array(inner, u32, 2)
    arr_u32 = b.add_array(u32, u32, 3)
    bytes4 = b.add_array(u8, u32, 4)
    uni = b.add_union("", 4, [("w", u32, 0), ("b", bytes4, 0), ("bit", u32, 0, 3)])
    anon = b.add_struct("", 2, [("x", u8, 0), ("y", u8, 8)])
    outer = b.add_struct("outer", 80, [
        ("a", u8, 0), ("s", s16, 16), ("bf1", u32, 32, 3), ("bf2", u32, 35, 13),
        ("sbf", s64, 48, 7), ("flag", bl, 56), ("e", en, 64), ("f", flt, 96),
        ("in", arr_inner, 128), ("nums", arr_u32, 192), ("", uni, 288), ("", anon, 320),
        ("big", u128, 384), ("neg", s64, 512), ("wide_bf", s64, 576, 40),
    ])
    return b.spec(), outer


def test_every_kind_of_field():
    spec, outer = _spec()
    buf = bytearray(80)
    buf[0] = 7
    struct.pack_into("<h", buf, 2, -5)
    bits = 5 | (1000 << 3)
    struct.pack_into("<H", buf, 4, bits)
    buf[6] = 0x7F  # sbf = -1 (7 bits all ones)
    buf[7] = 1
    struct.pack_into("<i", buf, 8, -2)
    struct.pack_into("<f", buf, 12, 1.5)
    struct.pack_into("<4h", buf, 16, 1, -1, 2, -2)
    struct.pack_into("<3I", buf, 24, 10, 20, 30)
    struct.pack_into("<I", buf, 36, 0x0403020D)
    buf[40:42] = b"\x09\x08"
    struct.pack_into("<QQ", buf, 48, 1, 2)
    struct.pack_into("<q", buf, 64, -99)
    struct.pack_into("<q", buf, 72, (1 << 39) | 1)  # 40-bit signed field: negative
    want = {"a": 7, "s": -5, "bf1": 5, "bf2": 1000, "sbf": -1, "flag": True, "e": -2,
            "f": 1.5, "in": [{"lo": 1, "hi": -1}, {"lo": 2, "hi": -2}],
            "nums": [10, 20, 30], "w": 0x0403020D, "b": b"\x0d\x02\x03\x04", "bit": 5,
            "x": 9, "y": 8, "big": 1 | (2 << 64), "neg": -99,
            "wide_bf": -(1 << 39) + 1}
    slow = decode.decode(spec, outer, bytes(buf))
    fast = decode.compile_decoder(spec, outer)(bytes(buf))
    assert slow == want
    assert fast == want
    assert fast["e"].name == "NEG" and repr(fast["e"]) == "NEG(-2)"
    assert isinstance(fast["flag"], bool)


def test_non_struct_types():
    spec, outer = _spec()
    u32 = spec.find("unsigned int").id
    assert decode.decode(spec, u32, b"\x01\0\0\0") == 1
    arr = next(t.id for t in spec.types if t.kind == wire.KIND_ARRAY and t.nelems == 3)
    assert decode.compile_decoder(spec, arr)(struct.pack("<3I", 1, 2, 3)) == [1, 2, 3]


def test_short_buffers_raise_btferror():
    from xdphints_cli.errors import BTFError

    spec, outer = _spec()
    with pytest.raises(BTFError):
        decode.decode(spec, outer, bytes(79))
    with pytest.raises(BTFError):
        decode.compile_decoder(spec, outer)(bytes(80), 1)
