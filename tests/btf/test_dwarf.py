"""Struct layouts taken from DWARF (xdphints_cli.btf.dwarf) against clang's BTF and
pahole's DWARF-to-BTF encoder for the same objects, and against damaged DWARF."""

from __future__ import annotations

import json
import random
import re
import struct
import subprocess

import pytest

from conftest import need_tool, xdphints
from xdphints_cli.btf import cformat, decode, sources
from xdphints_cli.btf import types as T
from xdphints_cli.btf.dwarf import NoDwarfError, struct_from_dwarf
from xdphints_cli.errors import BTFError, NotFoundError, XdpHintsError

from .c_check import bpftool_types
from .conftest import build_bpf

SRC = "dwarf_layouts.c"
IN_BOTH = ("xdp_meta", "kitchen")  # through global variables: in the BTF and the DWARF


@pytest.fixture(scope="module")
def objs(tmp_path_factory):
    """The test program built four ways: clang's default ("gdb") DWARF 5, whose
    bitfields use DW_AT_bit_offset + DW_AT_byte_size; "lldb" tuning, whose bitfields
    use DWARF 4's DW_AT_data_bit_offset; DWARF 2, whose member offsets are location
    expressions; xdp_meta only in the DWARF."""
    d = tmp_path_factory.mktemp("dwarf")
    return {"gdb": build_bpf(SRC, d, stem="gdb"),
            "lldb": build_bpf(SRC, d, "-glldb", stem="lldb"),
            "dwarf2": build_bpf(SRC, d, "-gdwarf-2", stem="dwarf2"),
            "meta_dwarf_only": build_bpf(SRC, d, "-DXDP_META_DWARF_ONLY",
                                         stem="meta_dwarf_only")}


def layout(spec, tid, shallow=False, loose_enums=False, flat_arrays=False):
    """Everything about a type that decides its layout and decoding, as nested tuples
    (ids left out); pointers and named structs below a pointer are named, not
    expanded, so cycles end."""
    def sub(x, sh=False):
        return layout(spec, x, sh, loose_enums, flat_arrays)

    if tid == 0:
        return ("void",)
    t = spec[tid]
    if isinstance(t, T.Int):
        return ("INT", t.name, t.size, t.bits, t.bit_offset, t.is_signed, t.is_bool,
                t.is_char)
    if isinstance(t, T.Float):
        return ("FLOAT", t.name, t.size)
    if isinstance(t, T.Typedef):
        return ("TYPEDEF", t.name) if shallow else ("TYPEDEF", t.name, sub(t.type))
    if isinstance(t, (T.Const, T.Volatile, T.Restrict)):
        return (t.kind_name, sub(t.type, shallow))
    if isinstance(t, T.Ptr):
        return ("PTR", sub(t.type, True))
    if isinstance(t, T.Array):
        inner = spec[spec.resolve(t.type)] if flat_arrays else None
        if isinstance(inner, T.Array):  # pahole writes a[2][3] as a[6]
            return ("ARRAY", t.nelems * inner.nelems, sub(inner.type, shallow))
        return ("ARRAY", t.nelems, sub(t.type, shallow))
    if isinstance(t, T.Composite):
        if shallow and t.name:
            return (t.kind_name, t.name)
        return (t.kind_name, t.name, t.size,
                tuple((m.name, m.bit_offset, m.bitfield_size, sub(m.type))
                      for m in t.members))
    if isinstance(t, T.Enum):
        if loose_enums:  # clang < 15 writes neither signed enums nor ENUM64
            return ("ENUM", t.name, t.size,
                    tuple((v.name, v.value & 0xFFFFFFFF) for v in t.values))
        return (t.kind_name, t.name, t.size, t.signed,
                tuple((v.name, v.value) for v in t.values))
    if isinstance(t, T.Fwd):
        return ("FWD", t.name, t.union)
    if isinstance(t, T.FuncProto):
        return ("FUNC_PROTO", sub(t.return_type, True),
                tuple(sub(p.type, True) for p in t.params), t.variadic)
    raise AssertionError(f"unexpected {t}")


def clang_enums_are_old(spec) -> bool:
    """True when this clang's BTF has no signed enums or ENUM64 (clang < 15)."""
    t = spec.find("neg", "enum")
    return not t.signed


def rand_bytes(rnd, n):
    return bytes(rnd.getrandbits(8) for _ in range(n))


# -- the same layout as clang's BTF --------------------------------------------------


@pytest.mark.parametrize("tuning", ["gdb", "lldb", "dwarf2"])
@pytest.mark.parametrize("name", IN_BOTH)
def test_layout_equals_clangs_btf(objs, tuning, name):
    path = objs[tuning]
    btf = sources.load(path)
    want_id = btf.find(name, "struct").id
    spec, tid = struct_from_dwarf(path, name)
    loose = clang_enums_are_old(btf)
    assert layout(spec, tid, loose_enums=loose) == layout(btf, want_id, loose_enums=loose)
    assert cformat.render(spec, tid, offsets=True) == \
        cformat.render(btf, want_id, offsets=True)


def test_typedefd_anonymous_struct_restrict_atomic_flexible_array(objs):
    path = objs["gdb"]
    btf = sources.load(path)
    spec, tid = struct_from_dwarf(path, "odds")
    ours = layout(spec, tid)
    theirs = layout(btf, btf.find("odds", "struct").id)
    assert ours[:3] == theirs[:3]
    at = ("at", 128, 0, ("TYPEDEF", "__u32", ("INT", "unsigned int", 4, 32, 0, False,
                                               False, False)))
    # BTF has no _Atomic: the member keeps the type it qualifies. (clang 14's own
    # BTF makes the member void, which nothing can decode.)
    assert [m for m in ours[3] if m[0] == "at"] == [at]
    assert [m for m in ours[3] if m[0] != "at"] == [m for m in theirs[3] if m[0] != "at"]
    assert [m[0] for m in ours[3]] == ["pair", "rp", "at", "argv", "data"]
    buf = struct.pack("<HBx4xQI4xQ", 9, 8, 0, 77, 0)
    assert decode.compile_decoder(spec, tid)(buf) == \
        {"pair": {"a": 9, "b": 8}, "rp": 0, "at": 77, "argv": 0, "data": b""}


def test_the_builds_exercise_each_encoding(objs):
    """The builds really differ in how their DWARF places bitfields and members."""
    llvm_dwarfdump = need_tool("llvm-dwarfdump")
    dumps = {k: subprocess.run([llvm_dwarfdump, "--debug-info", objs[k]], check=True,
                               capture_output=True, text=True).stdout
             for k in ("gdb", "lldb", "dwarf2")}
    assert "DW_OP_plus_uconst" in dumps["dwarf2"] and "DW_OP_plus_uconst" not in dumps["gdb"]
    assert "DW_AT_bit_offset" in dumps["gdb"] and "DW_AT_data_bit_offset" not in dumps["gdb"]
    assert "DW_AT_data_bit_offset" in dumps["lldb"] and "DW_AT_bit_offset" not in dumps["lldb"]


@pytest.mark.parametrize("name", IN_BOTH)
def test_decodes_the_same_bytes_as_clangs_btf(objs, name):
    path = objs["gdb"]
    btf = sources.load(path)
    want_id = btf.find(name, "struct").id
    spec, tid = struct_from_dwarf(path, name)
    ours, theirs = decode.compile_decoder(spec, tid), decode.compile_decoder(btf, want_id)
    rnd = random.Random(name)
    # clang 14's BTF reads enum neg unsigned and truncated enum big to 32 bits; what
    # the DWARF says of them is checked in test_enums_as_c_has_them.
    skip = {"e", "b"} if clang_enums_are_old(btf) else set()
    for _ in range(200):
        buf = rand_bytes(rnd, spec.size_of(tid) + 3)
        got, want = ours(buf, 3), theirs(buf, 3)
        assert got == decode.decode(spec, tid, buf, 3)
        assert {k: v for k, v in got.items() if k not in skip} == \
            {k: v for k, v in want.items() if k not in skip}
        assert got.keys() == want.keys()


def test_enums_as_c_has_them(objs):
    spec, tid = struct_from_dwarf(objs["gdb"], "kitchen")
    neg, small = spec.find("neg", "enum"), spec.find("small", "enum")
    big = spec.find("big", "enum64")
    assert neg.signed and [(v.name, v.value) for v in neg.values] == \
        [("NEG_A", -3), ("NEG_B", 5)]
    assert big.kind_name == "ENUM64" and big.size == 8 and not big.signed
    assert [(v.name, v.value) for v in big.values] == [("BIG_A", 1), ("BIG_B", 1 << 32)]
    assert small.size == 1 and not small.signed
    buf = bytearray(spec.size_of(tid))
    struct.pack_into("<i", buf, 8, -3)
    struct.pack_into("<Q", buf, 104, 1 << 32)
    got = decode.compile_decoder(spec, tid)(buf)
    assert (got["e"], got["e"].name) == (-3, "NEG_A")
    assert (got["b"], got["b"].name) == (1 << 32, "BIG_B")


# -- the same layout as pahole's DWARF-to-BTF encoder --------------------------------


@pytest.fixture(scope="module")
def pahole_btf(objs, tmp_path_factory):
    pahole = need_tool("pahole")
    out = {}
    for k in ("gdb", "meta_dwarf_only"):
        raw = str(tmp_path_factory.mktemp("pahole") / f"{k}.btf")
        subprocess.run([pahole, "--btf_gen_floats", f"--btf_encode_detached={raw}",
                        objs[k]], check=True, capture_output=True)
        out[k] = sources.load_raw(raw)
    return out


@pytest.mark.parametrize("obj,name", [("gdb", "dwarf_only"), ("gdb", "kitchen"),
                                      ("meta_dwarf_only", "xdp_meta")])
def test_layout_equals_paholes(objs, pahole_btf, obj, name):
    pa = pahole_btf[obj]
    spec, tid = struct_from_dwarf(objs[obj], name)
    assert layout(spec, tid, flat_arrays=True) == \
        layout(pa, pa.find(name, "struct").id, flat_arrays=True)


# -- structs only in the DWARF ---------------------------------------------------------


def bpftool_struct_names(path):
    return {t["name"] for t in bpftool_types(path).values() if t["kind"] in ("STRUCT", "UNION")}


def test_dwarf_only_struct(objs):
    path = objs["gdb"]
    assert "dwarf_only" not in bpftool_struct_names(path)
    with pytest.raises(NotFoundError):
        sources.load(path).find("dwarf_only", "struct")
    spec, tid = struct_from_dwarf(path, "dwarf_only")
    t = spec[tid]
    assert (t.kind_name, t.name, t.size) == ("STRUCT", "dwarf_only", 24)
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in t.members] == \
        [("stamp", 0, 0), ("", 64, 0), ("bits", 96, 3), ("more", 99, 13),
         ("btf_like", 128, 0)]
    buf = struct.pack("<QiHxxIxxxx", 7, -61, 5 | (100 << 3), 0xABCD)
    assert decode.compile_decoder(spec, tid)(buf) == \
        {"stamp": 7, "hash": 2**32 - 61, "hash_err": -61, "bits": 5, "more": 100,
         "btf_like": 0xABCD}


def test_xdp_meta_only_in_dwarf_as_in_the_kernels_program(objs):
    """-DXDP_META_DWARF_ONLY: no xdp_meta in the BTF; the DWARF gives the layout the
    other build's BTF has."""
    path = objs["meta_dwarf_only"]
    assert "xdp_meta" not in bpftool_struct_names(path)
    spec, tid = struct_from_dwarf(path, "xdp_meta")
    btf = sources.load(objs["gdb"])
    assert layout(spec, tid) == layout(btf, btf.find("xdp_meta", "struct").id)


def test_xdp_meta_shows_every_union_member(objs):
    """Union members are all true readings of the same bytes; the decoder keeps every
    one of them, and the anonymous struct's members, in one flat dict."""
    spec, tid = struct_from_dwarf(objs["meta_dwarf_only"], "xdp_meta")
    buf = struct.pack("<qQIiHHI", -61, 1_700_000_000_123, 0xDEADBEEF, -95,
                      0x0081, 0x2064, 0b101)
    want = {"rx_timestamp": 2**64 - 61, "rx_timestamp_err": -61,
            "xdp_timestamp": 1_700_000_000_123, "rx_hash": 0xDEADBEEF,
            "rx_hash_type": 2**32 - 95, "rx_hash_err": -95,
            "rx_vlan_proto": 0x0081, "rx_vlan_tci": 0x2064,
            "rx_vlan_tag_err": 0x2064_0081, "hint_valid": 5}
    for f in (decode.compile_decoder(spec, tid), lambda b: decode.decode(spec, tid, b)):
        got = f(buf)
        assert got == want
        assert list(got) == list(want)  # in declaration order


def test_only_what_the_struct_reaches(objs):
    spec, tid = struct_from_dwarf(objs["gdb"], "xdp_meta")
    names = {t.name for t in spec.types if t.name}
    assert "kitchen" not in names and "dwarf_only" not in names and "xdp_md" not in names
    assert {"xdp_meta", "xdp_meta_field", "__u64", "__s32", "__be16"} <= names


def test_pointer_cycles_end(objs):
    spec, tid = struct_from_dwarf(objs["gdb"], "struct kitchen")
    self_ptr = next(m for m in spec[tid].members if m.name == "self")
    assert spec[self_ptr.type].type == tid  # the same type, not a copy
    nxt = next(m for m in spec[tid].members if m.name == "next")
    assert isinstance(spec[spec[nxt.type].type], T.Fwd)


# -- what is not there -----------------------------------------------------------------


def test_not_found_suggests_close_names(objs):
    with pytest.raises(NotFoundError, match=r"no struct or union 'kitchn' in the DWARF "
                                             r"\(did you mean kitchen\?\)"):
        struct_from_dwarf(objs["gdb"], "kitchn")
    with pytest.raises(NotFoundError, match="no union 'kitchen'"):
        struct_from_dwarf(objs["gdb"], "union kitchen")
    with pytest.raises(NotFoundError, match="only declared"):
        struct_from_dwarf(objs["gdb"], "node")


def test_no_dwarf(objs, tmp_path):
    objcopy = need_tool("llvm-objcopy")
    stripped = str(tmp_path / "stripped.o")
    subprocess.run([objcopy, "--strip-debug", objs["gdb"], stripped], check=True)
    assert sources.load(stripped).find("kitchen", "struct")  # BTF survives
    with pytest.raises(NoDwarfError, match="no DWARF debug info.*clang -g"):
        struct_from_dwarf(stripped, "dwarf_only")
    raw = tmp_path / "raw.btf"
    raw.write_bytes(sources.elf_btf_section(open(objs["gdb"], "rb").read())[0])
    with pytest.raises(NoDwarfError, match="not an ELF object"):
        struct_from_dwarf(str(raw), "kitchen")
    with pytest.raises(NotFoundError, match="no such file"):
        struct_from_dwarf(str(tmp_path / "missing.o"), "kitchen")
    assert issubclass(NoDwarfError, NotFoundError)


# -- damaged DWARF -----------------------------------------------------------------------


def sections(path):
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: (s["sh_offset"], s["sh_size"]) for s in elf.iter_sections()}


def section_header_field(path, name, field):
    """File offset of an ELF64 section header's field (sh_size: 32, sh_offset: 24)."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        assert elf.elfclass == 64 and elf.little_endian
        idx = next(i for i, s in enumerate(elf.iter_sections()) if s.name == name)
        return elf["e_shoff"] + idx * elf["e_shentsize"] + {"sh_offset": 24,
                                                             "sh_size": 32}[field]


def use(spec, tid):
    """What a command does with a converted struct; only BTFError may come out."""
    for op in (lambda: decode.compile_decoder(spec, tid)(bytes(spec.size_of(tid))),
               lambda: decode.decode(spec, tid, bytes(spec.size_of(tid))),
               lambda: cformat.render(spec, tid, offsets=True)):
        try:
            op()
        except BTFError:
            pass


def test_mutated_dwarf_raises_only_our_errors(objs, tmp_path, hang_guard):
    data = open(objs["gdb"], "rb").read()
    secs = sections(objs["gdb"])
    targets = [secs[n] for n in (".debug_info", ".debug_abbrev", ".debug_str_offsets",
                                 ".debug_str", ".rel.debug_info") if n in secs]
    info_off, info_size = secs[".debug_info"]
    info_size_field = section_header_field(objs["gdb"], ".debug_info", "sh_size")
    rnd = random.Random(0xD3A7F)
    path = tmp_path / "mutant.o"
    converted = failed = 0
    for n in range(400):
        b = bytearray(data)
        what = rnd.randrange(5)
        off, size = rnd.choice(targets)
        if what == 0:  # bytes anywhere in a DWARF section
            for _ in range(rnd.randrange(1, 5)):
                b[off + rnd.randrange(size)] = rnd.randrange(256)
        elif what == 1:  # a word of .debug_info: refs, offsets, sizes, lengths
            i = info_off + rnd.randrange(info_size - 4)
            struct.pack_into("<I", b, i, rnd.choice(
                [0, 1, 0xFFFFFFFF, 0x7FFFFFFF, rnd.randrange(info_size),
                 rnd.getrandbits(32)]))
        elif what == 2:  # a .debug_info byte to a small value (abbrev codes, forms)
            b[info_off + rnd.randrange(info_size)] = rnd.randrange(8)
        elif what == 3:  # a chunk of zeros
            i, k = off + rnd.randrange(size), rnd.randrange(1, 32)
            b[i:i + k] = bytes(len(b[i:i + k]))
        elif rnd.random() < 0.5:  # the file cut inside a DWARF section
            b = b[:off + rnd.randrange(size)]
        else:  # .debug_info cut short, the rest of the file intact
            struct.pack_into("<Q", b, info_size_field, rnd.randrange(info_size))
        path.write_bytes(bytes(b))
        hang_guard(20)
        try:
            spec, tid = struct_from_dwarf(str(path), rnd.choice(IN_BOTH + ("dwarf_only",)))
        except XdpHintsError as e:
            assert "\n" not in str(e)
            failed += 1
            continue
        finally:
            hang_guard(0)
        converted += 1
        hang_guard(20)
        use(spec, tid)
        hang_guard(0)
    assert failed > 50 and converted > 50  # both outcomes were reached


def attr_offset(path, die_name, tag, attr="DW_AT_type"):
    """Where the `attr` of the first `tag` DIE called `die_name` sits in the file, and
    its form, so a test can rewrite one reference."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        sec_off = elf.get_section_by_name(".debug_info")["sh_offset"]
        for cu in elf.get_dwarf_info().iter_CUs():
            for die in cu.iter_DIEs():
                if die.tag == tag and die.attributes.get("DW_AT_name") and \
                        die.attributes["DW_AT_name"].value == die_name.encode():
                    a = die.attributes[attr]
                    return sec_off + a.offset, a.form, die.offset - cu.cu_offset, die
    raise AssertionError(f"no {tag} {die_name}")


def test_typedef_cycle_is_btferror(objs, tmp_path, hang_guard):
    data = bytearray(open(objs["gdb"], "rb").read())
    off, form, rel, _ = attr_offset(objs["gdb"], "__u32", "DW_TAG_typedef")
    assert form == "DW_FORM_ref4"
    struct.pack_into("<I", data, off, rel)  # typedef __u32 __u32
    path = tmp_path / "cycle.o"
    path.write_bytes(bytes(data))
    hang_guard(20)
    with pytest.raises(BTFError, match="cyclic"):
        struct_from_dwarf(str(path), "xdp_meta")


def test_struct_containing_itself(objs, tmp_path, hang_guard):
    data = bytearray(open(objs["gdb"], "rb").read())
    inner_off, _, _, _ = attr_offset(objs["gdb"], "lo", "DW_TAG_member")
    _, _, inner_rel, _ = attr_offset(objs["gdb"], "inner", "DW_TAG_structure_type",
                                     "DW_AT_name")
    struct.pack_into("<I", data, inner_off, inner_rel)  # struct inner { struct inner lo; }
    path = tmp_path / "self.o"
    path.write_bytes(bytes(data))
    hang_guard(20)
    for name in ("inner", "kitchen"):  # itself, and a struct holding it
        with pytest.raises(BTFError, match="self.o: .* contains itself by value"):
            struct_from_dwarf(str(path), name)


# -- c_layouts.c: packed bitfields, a forward declaration in the BTF ---------------------

C_LAYOUT_STRUCTS = ("rc_bits", "with_small_enum", "cacheline", "aligned_tail", "packed_bits",
                    "packed_in", "holds_union", "int128_at_8", "sparse", "behind_pointer")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """c_layouts.c built with -g; the same with its .BTF removed; and a build whose
    BTF has struct dwarf_sock whole."""
    d = tmp_path_factory.mktemp("c_layouts")
    obj = build_bpf("c_layouts.c", d)
    no_btf = str(d / "no_btf.o")
    subprocess.run([need_tool("llvm-objcopy"), "--remove-section", ".BTF", "--remove-section",
                    ".BTF.ext", obj, no_btf], check=True)
    return {"obj": obj, "no_btf": no_btf,
            "sock_in_btf": build_bpf("c_layouts.c", d, "-DDWARF_SOCK_IN_BTF", stem="sock_in_btf")}


def test_packed_bitfields_from_dwarf_alone(layouts):
    """clang's DWARF places packed_bits' z 2 bits before its 16-bit unit's high end:
    DW_AT_bit_offset -2, written as 0xfffffffffffffffe. Every struct of the object, from
    the DWARF alone, has the layout clang's BTF gives it."""
    dump = subprocess.run([need_tool("llvm-dwarfdump"), "--debug-info", layouts["no_btf"]],
                          check=True, capture_output=True, text=True).stdout
    assert "DW_AT_bit_offset\t(0xfffffffffffffffe)" in dump
    with pytest.raises(NotFoundError, match="no BTF"):
        sources.load(layouts["no_btf"])
    btf = sources.load(layouts["obj"])
    for name in C_LAYOUT_STRUCTS:
        spec, tid = struct_from_dwarf(layouts["no_btf"], name)
        assert layout(spec, tid) == layout(btf, btf.find(name, "struct").id), name


def test_packed_bitfields_as_pahole_reads_them(layouts):
    """`btf --file` with no .BTF: packed_bits' members where pahole -F dwarf puts them."""
    out = subprocess.run([need_tool("pahole"), "-F", "dwarf", "-C", "packed_bits", layouts["no_btf"]],
                         check=True, capture_output=True, text=True).stdout
    theirs = re.findall(r"^\t\S+\s+(\w+)(?::\d+)?;\s+/\*\s+(\d+)(?::\s*(\d+))?\s+(\d+) \*/", out, re.M)
    res = xdphints("btf", "--file", layouts["no_btf"], "--struct", "packed_bits", "--format", "c", "--offsets")
    assert res.returncode == 0, res.stderr
    ours = re.findall(r"^\s+\S+ (\w+)(?:: \d+)?;\s+/\*\s+(\d+)(?::\s*(\d+))?\s+(\d+) \*/", res.stdout, re.M)
    assert ours == theirs and [m[0] for m in ours] == ["a", "z", "w", "b", "x"]
    assert ("z", "0", "8", "2") in ours


def test_forward_declaration_in_btf_whole_struct_in_dwarf(layouts):
    """pping's bpf_sock: the BTF has `struct dwarf_sock;` only; --struct and --id of it
    show its DWARF layout, as a build whose BTF has it whole lays it out."""
    obj = layouts["obj"]
    fwd = [t for t in bpftool_types(obj).values() if t["name"] == "dwarf_sock"]
    assert [t["kind"] for t in fwd] == ["FWD"]
    whole = next(t for t in bpftool_types(layouts["sock_in_btf"]).values()
                 if t["name"] == "dwarf_sock" and t["kind"] == "STRUCT")
    for how in (["--struct", "dwarf_sock"], ["--id", str(fwd[0]["id"])]):
        res = xdphints("-j", "btf", "--file", obj, *how)
        assert res.returncode == 0, res.stderr
        data = json.loads(res.stdout)
        assert data["source"]["layout"] == "dwarf"
        assert data["type"]["size"] == whole["size"]
        assert [(m["name"], m["bit-offset"]) for m in data["type"]["members"]] == \
            [(m["name"], m["bits_offset"]) for m in whole["members"]]
        text = xdphints("btf", "--file", obj, *how).stdout
        assert text.startswith(f"struct dwarf_sock from the DWARF of {obj} (its BTF has only a "
                               "forward declaration)")
    # without DWARF to take it from: the forward declaration, and a warning saying why
    stripped = obj.replace(".o", "-nodebug.o")
    subprocess.run([need_tool("llvm-objcopy"), "--strip-debug", obj, stripped], check=True)
    res = xdphints("btf", "--file", stripped, "--struct", "dwarf_sock")
    assert res.returncode == 0 and res.stdout == "struct dwarf_sock;\n"
    assert "only a forward declaration, and no definition" in res.stderr

