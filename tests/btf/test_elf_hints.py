"""clang-built BPF objects: .BTF from ELF, hints structs found and decoded."""

from __future__ import annotations

import struct

import pytest

from xdphints_cli.btf import cformat, decode, hints, sources, wire
from xdphints_cli.errors import BTFError, NotFoundError

from .conftest import need_tool
from .test_cformat import gcc_check

# struct xdp_hints_example, as progs/xdp_hints_example.c lays it out.
LAYOUT = "<QIIHHBb6sIiI"  # ..., bitfield byte, delta, tag, union word, s32:5, btf_id


def sample_bytes(btf_id: int) -> bytes:
    bits = 1 | (0 << 1) | (37 << 2)  # has_ts=1, has_hash=0, queue=37
    return struct.pack(LAYOUT, 123456789012345, 0xDEADBEEF, 2, 0x2005, 0x0081, bits, -3,
                       b"eth0\0\0", 0x04030201, 0b10110, btf_id)


def test_detect_and_load(hints_object):
    assert sources.detect(hints_object) == "elf"
    spec = sources.load(hints_object)
    assert spec.base is None
    assert spec.find("xdp_hints_example", "struct").size == struct.calcsize(LAYOUT)


def test_hints_structs_found(hints_object):
    spec = sources.load_elf(hints_object)
    names = [t.name for t in hints.hints_structs(spec)]
    assert names == ["xdp_hints_example", "my_meta"]
    assert hints.find_hints_struct(spec, "my_meta").name == "my_meta"
    with pytest.raises(NotFoundError):
        hints.find_hints_struct(spec)  # two of them: ambiguous


def test_describe_rows(hints_object):
    spec = sources.load_elf(hints_object)
    t = spec.find("xdp_hints_example", "struct")
    rows = {r.name: r for r in hints.describe(spec, t.id)}
    assert rows["rx_timestamp"].to_json() == {
        "name": "rx_timestamp", "type": "__u64", "type-id": rows["rx_timestamp"].type_id,
        "offset": 0, "size": 8, "bit-offset": 0, "bit-size": 64}
    assert (rows["queue"].offset, rows["queue"].bit_offset, rows["queue"].bit_size) == \
        (20, 162, 6)
    assert rows["queue"].is_bitfield and not rows["btf_id"].is_bitfield
    assert "word" in rows and "bytes" in rows  # anonymous union expanded
    assert rows["flags"].type == "enum hint_flags"
    assert rows["tag"].type == "char[6]"
    assert list(rows)[-1] == "btf_id"


def test_decode_hints(hints_object):
    spec = sources.load_elf(hints_object)
    t = spec.find("xdp_hints_example", "struct")
    payload = b"\xaa" * 4 + sample_bytes(t.id)
    want = {
        "rx_timestamp": 123456789012345, "rx_hash": 0xDEADBEEF, "flags": 2,
        "vlan_tci": 0x2005, "vlan_proto": 0x0081, "has_ts": 1, "has_hash": 0,
        "queue": 37, "delta": -3, "tag": b"eth0\0\0", "word": 0x04030201,
        "bytes": b"\x01\x02\x03\x04", "signed_bits": -10, "btf_id": t.id,
    }
    slow = decode.decode(spec, t.id, payload, 4)
    fast = decode.compile_decoder(spec, t.id)(payload, 4)
    assert slow == want and fast == want
    assert fast["flags"].name == "HINT_HASH" and slow["flags"].name == "HINT_HASH"
    with pytest.raises(BTFError):
        decode.compile_decoder(spec, t.id)(payload[:-1], 4)
    with pytest.raises(BTFError):
        decode.decode(spec, t.id, payload[:-1], 4)


def test_rendered_hints_struct_has_btf_layout(hints_object, tmp_path):
    spec = sources.load_elf(hints_object)
    t = spec.find("xdp_hints_example", "struct")
    lines = [cformat.dump_c(spec, [t.id]), "#include <stddef.h>",
             f"_Static_assert(sizeof(struct xdp_hints_example) == {t.size}, \"size\");"]
    for r in hints.describe(spec, t.id):
        if not r.is_bitfield:
            lines.append(f"_Static_assert(offsetof(struct xdp_hints_example, {r.name}) "
                         f"== {r.offset}, \"{r.name}\");")
    gcc_check(tmp_path, "\n".join(lines))


def test_object_without_btf(tmp_path):
    clang = need_tool("clang")
    import subprocess

    src = tmp_path / "nobtf.c"
    src.write_text("int x;\n")
    obj = tmp_path / "nobtf.o"
    subprocess.run([clang, "-O2", "-target", "bpf", "-c", str(src), "-o", str(obj)],
                   check=True)
    with pytest.raises(NotFoundError, match="compile with clang -g"):
        sources.load(str(obj))


def test_source_errors(tmp_path):
    with pytest.raises(NotFoundError):
        sources.load(str(tmp_path / "missing"))
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world")
    with pytest.raises(BTFError, match="neither raw BTF nor an ELF"):
        sources.load(str(junk))
    bad_elf = tmp_path / "bad.o"
    bad_elf.write_bytes(b"\x7fELF" + b"\x02\x01\x01" + b"\0" * 20)
    with pytest.raises(BTFError):
        sources.load(str(bad_elf))
    with pytest.raises(NotFoundError):
        sources.module("no_such_module_xyz")
    with pytest.raises(NotFoundError):
        sources.module("../etc")


def test_raw_file_round_trip(tmp_path):
    from .test_writer import sample_builder

    path = tmp_path / "x.btf"
    path.write_bytes(sample_builder().encode())
    assert sources.detect(str(path)) == "btf"
    assert sources.load_raw(str(path)).find("foo").kind == wire.KIND_STRUCT


def test_btf_id_must_be_the_last_four_bytes():
    """The convention: the 4 bytes right before the packet hold btf_id. Tail padding
    after it (vmlinux's btf_field_kptr) or no name (an anonymous struct) is not it."""
    from xdphints_cli.btf import reader
    from xdphints_cli.btf.writer import Builder

    b = Builder()
    u32 = b.add_int("__u32", 4)
    u64 = b.add_int("__u64", 8)
    b.add_struct("meta_ok", 16, [("ts", u64, 0), ("hash", u32, 64), ("btf_id", u32, 96)])
    b.add_struct("padded", 16, [("ts", u64, 0), ("btf_id", u32, 64)])
    b.add_struct("", 4, [("btf_id", u32, 0)])
    spec = reader.parse(b.encode())
    assert [t.name for t in hints.hints_structs(spec)] == ["meta_ok"]
