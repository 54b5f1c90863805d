"""Builder -> encode -> parse round trips; the kernel and bpftool accept the output."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess

import pytest

from xdphints_cli.btf import cformat, reader, types as T, wire
from xdphints_cli.btf.writer import Builder
from xdphints_cli.errors import BTFError

from .conftest import need_tool


def sample_builder() -> Builder:
    b = Builder()
    u32 = b.add_int("unsigned int", 4)
    s32 = b.add_int("int", 4, signed=True)
    u8 = b.add_int("unsigned char", 1)
    char = b.add_int("char", 1, signed=True)
    b.add_float("double", 8)
    u32t = b.add_typedef("__u32", u32)
    flags = b.add_enum("flags", [("F_A", 1), ("F_B", 2), ("F_NEG", -1)])
    big = b.add_enum64("big", [("B_LO", 1), ("B_HI", 1 << 40)], size=8)
    fwd = b.add_fwd("opaque")
    foo = b.next_id
    pfoo = foo + 1
    arr = foo + 2
    b.add_struct("foo", 40, [("a", u32t, 0), ("b", u32, 32, 3), ("c", s32, 35, 5),
                             ("next", pfoo, 64), ("arr", arr, 128), ("f", flags, 256),
                             ("name", arr + 1, 288)])
    b.add_ptr(foo)
    b.add_array(u32, u32, 4)
    b.add_array(char, u32, 4)
    u8x4 = b.add_array(u8, u32, 4)
    b.add_union("u", 4, [("w", u32, 0), ("by", u8x4, 0)])
    b.add_const(char)
    b.add_volatile(u32)
    proto = b.add_func_proto(s32, [("ctx", pfoo), ("x", u32t)])
    fn = b.add_func("my_func", proto, wire.LINKAGE_GLOBAL)
    b.add_decl_tag("my_tag", fn)
    b.add_decl_tag("arg_tag", fn, 0)
    b.add_ptr(b.add_fwd("opaque_u", union=True))
    _ = (big, fwd)
    return b


def test_round_trip():
    b = sample_builder()
    spec = reader.parse(b.encode())
    assert spec.n_types == b.next_id
    foo = spec.find("foo", "struct")
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in foo.members] == \
        [("a", 0, 0), ("b", 32, 3), ("c", 35, 5), ("next", 64, 0), ("arr", 128, 0),
         ("f", 256, 0), ("name", 288, 0)]
    assert spec.type_name(foo.members[3].type) == "struct foo *"
    assert spec.type_name(foo.members[4].type) == "unsigned int[4]"
    assert spec.size_of(foo.members[4].type) == 16
    flags = spec.find("flags", "enum")
    assert flags.signed and [v.value for v in flags.values] == [1, 2, -1]
    big = spec.find("big", "enum64")
    assert [v.value for v in big.values] == [1, 1 << 40]
    fn = spec.find("my_func", "func")
    assert cformat.func_prototype(spec, fn.id) == \
        "int my_func(struct foo *ctx, __u32 x)"
    tags = spec.by_name("arg_tag", "decl_tag")
    assert tags[0].component_idx == 0 and tags[0].type == fn.id
    assert spec.find("opaque_u", "fwd").union


def test_round_trip_big_endian():
    b = sample_builder()
    le = reader.parse(b.encode())
    be = reader.parse(b.encode(byteorder=">"))
    assert be.byteorder == ">"
    assert list(le.types) == list(be.types)


def test_strings_are_deduplicated():
    b = Builder()
    i = b.add_int("int", 4, signed=True)
    b.add_typedef("x", i)
    b.add_typedef("x", i)
    assert b.encode().count(b"x\0") == 1


@pytest.mark.parametrize("call", [
    lambda b: b.add_int("int", 3),
    lambda b: b.add_int("", 4),
    lambda b: b.add_int("int", 4, bits=33),
    lambda b: b.add_array(0, 1, 4),
    lambda b: b.add_func("f", 1),
    lambda b: b.add_enum("e", [("A", 1 << 40)]),
    lambda b: b.add_struct("s", 4, [("a", 1, 64)]),
    lambda b: b.add_struct("s", 4, [("a", 1, 0, 300)]),
    lambda b: b.add_decl_tag("t", 1, -2),
    lambda b: b.add_typedef("bad\0name", 1),
])
def test_builder_checks_arguments(call):
    b = Builder()
    b.add_int("int", 4, signed=True)
    with pytest.raises(BTFError):
        call(b)


def test_dangling_reference_is_caught_at_encode():
    b = Builder()
    b.add_ptr(5)
    with pytest.raises(BTFError):
        b.encode()


def kernel_btf_load(blob: bytes):
    """BPF_BTF_LOAD via the raw syscall: (fd or -errno, verifier log)."""
    nr = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
    if nr is None:
        pytest.skip(f"bpf(2) number unknown for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(blob, len(blob))
    log = ctypes.create_string_buffer(1 << 16)
    attr = ctypes.create_string_buffer(32)
    ctypes.memmove(attr, (ctypes.c_uint64 * 2)(ctypes.addressof(buf),
                                               ctypes.addressof(log)), 16)
    ctypes.memmove(ctypes.addressof(attr) + 16,
                   (ctypes.c_uint32 * 3)(len(blob), len(log), 1), 12)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(nr), ctypes.c_long(18), attr, ctypes.c_long(32))
    if fd < 0:
        return -ctypes.get_errno(), log.value.decode(errors="replace")
    os.close(fd)
    return fd, log.value.decode(errors="replace")


@pytest.mark.privileged
def test_kernel_accepts_writer_output():
    fd, log = kernel_btf_load(sample_builder().encode())
    assert fd >= 0, f"BPF_BTF_LOAD failed ({fd}):\n{log}"


@pytest.mark.privileged
def test_kernel_rejects_garbage_we_reject_too():
    b = Builder()
    t = b.add_raw(wire.KIND_TYPEDEF, "loop", size_or_type=1)
    assert t == 1
    blob = b.encode()
    fd, _ = kernel_btf_load(blob)
    assert fd < 0
    with pytest.raises(BTFError, match="cyclic"):
        reader.parse(blob)
    spec = reader.parse(blob, kernel_verified=True)  # lookups stay finite without stage 5 too
    with pytest.raises(BTFError):
        spec.resolve(1)


def test_bpftool_accepts_writer_output(tmp_path):
    bpftool = need_tool("bpftool")
    path = tmp_path / "sample.btf"
    path.write_bytes(sample_builder().encode())
    r = subprocess.run([bpftool, "btf", "dump", "file", str(path)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "STRUCT 'foo' size=40 vlen=7" in r.stdout
    assert "FUNC 'my_func' type_id=" in r.stdout
    r = subprocess.run([bpftool, "btf", "dump", "file", str(path), "format", "c"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_split_round_trip():
    base_b = sample_builder()
    base = reader.parse(base_b.encode())
    b = Builder(base=base)
    foo = base.find("foo", "struct").id
    u32 = base.find("unsigned int", "int").id
    p = b.add_ptr(foo)
    s = b.add_struct("mod_struct", 16, [("foo_p", p, 0), ("count", u32, 64)])
    b.add_typedef("foo", foo)  # same name as a base type: both are found
    split = reader.parse(b.encode(), base=base)
    assert p == base.n_types and split.start_id == base.n_types
    assert split.find("mod_struct").id == s
    assert split.type_name(split[s].members[0].type) == "struct foo *"
    assert [t.kind for t in split.by_name("foo")] == [wire.KIND_STRUCT, wire.KIND_TYPEDEF]
    assert split[foo] is base[foo]
    assert isinstance(split[u32], T.Int)
    with pytest.raises(BTFError):
        reader.parse(b.encode())  # without its base the ids dangle
