"""C from BTF compiles to the layout the BTF describes: padding (`long: 64;`,
`int: 20;`), `packed`, `aligned(N)` and enum `mode` attributes where the members
alone would lay out otherwise. Checked by compiling with clang (BPF and host) and gcc
against bpftool's JSON of the same BTF (c_check.py), for every struct of vmlinux in
the header `btf --kernel --all --format c` writes, and for objects built here."""

from __future__ import annotations

import re
import subprocess

import pytest

from conftest import xdphints
from xdphints_cli.btf import cformat, sources

from . import c_check
from .conftest import build_bpf

# the structs issue 21 found compiled to another layout, and some big ones
NAMED = ("Qdisc", "xdp_rxq_info", "netdev_rx_queue", "net_device", "xdp_sock",
         "xsk_buff_pool", "sk_buff", "filename", "warn_args", "va_format")


def cli_c(*source: str) -> str:
    res = xdphints("btf", *source, "--all", "--format", "c")
    assert res.returncode == 0 and not res.stderr, res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def vmlinux_c(vmlinux, bpftool_vmlinux):
    """(vmlinux.h as `btf --kernel --all --format c` writes it, the C name of each
    struct and union: those of the same header made here, asking its Names)."""
    text = cli_c("--kernel")
    names = cformat.Names(vmlinux)
    ours = cformat.dump_c(vmlinux, guard="__VMLINUX_H__", access_index=True, names=names)
    assert ours.expandtabs(8) == text       # the CLI writes tabs as spaces, as for --struct
    return text, our_c_names(vmlinux, names, bpftool_vmlinux)


def our_c_names(spec, names, types):
    """Every struct and union by the C name our C gives it: foo___2 for the second
    type called foo, the typedef's name for an anonymous one behind a typedef."""
    out = c_check.plain_c_names(types)
    for tid, t in types.items():
        if t["kind"] in ("STRUCT", "UNION") and t["name"] != "(anon)":
            out[tid] = f"{t['kind'].lower()} {names.tag(spec[tid])}"
    return out


def _ids_named(types, wanted):
    return {tid for tid, t in types.items() if t["kind"] == "STRUCT" and t["name"] in wanted}


@pytest.mark.parametrize("compiler", sorted(c_check.COMPILERS))
def test_every_vmlinux_struct_has_its_btf_layout(vmlinux_c, bpftool_vmlinux, compiler, tmp_path):
    text, c_names = vmlinux_c
    assert len(c_names) > 9000 and _ids_named(bpftool_vmlinux, NAMED) <= set(c_names)
    tags = [t["name"] for t in bpftool_vmlinux.values()
            if t["kind"] in ("STRUCT", "UNION", "ENUM", "ENUM64") and t["name"] != "(anon)"]
    if len(tags) != len(set(tags)):                 # structs sharing a name are asserted too
        assert any("___" in n for n in c_names.values())
    asserts = c_check.layout_asserts(bpftool_vmlinux, c_names)
    wrong = c_check.wrong_layouts(compiler, text, asserts, tmp_path)
    assert wrong == {}, {c_names[t]: w[:3] for t, w in list(wrong.items())[:20]}


def _bpftool_header() -> str:
    return subprocess.run([c_check.need_tool("bpftool"), "btf", "dump", "file", sources.VMLINUX,
                           "format", "c"], check=True, capture_output=True, text=True).stdout


def test_the_header_is_framed_as_bpftools(vmlinux_c):
    """The same include guard and the same preserve_access_index pragmas around the
    types (BPF_NO_PRESERVE_ACCESS_INDEX leaves them out); JSON stays the list."""
    text, _ = vmlinux_c
    theirs = _bpftool_header()
    assert text.splitlines()[:7] == theirs.splitlines()[:7]
    assert text.splitlines()[-6:] == theirs.splitlines()[-6:]
    assert text.count("#pragma clang attribute") == 2
    res = xdphints("-j", "btf", "--kernel", "--all", "--format", "c")
    assert res.returncode == 0 and '"types": [' in res.stdout[:200]


def _natural(header: str) -> str:
    """The C without what this issue added: the members alone, as before."""
    header = re.sub(r"^[ \t]+(long|int|short|char): \d+;\n", "", header, flags=re.M)
    return re.sub(r" __attribute__\(\((packed|aligned\(\d+\)|mode\(\w+\))\)\)", "", header)


def test_the_asserts_catch_a_wrong_layout(vmlinux_c, bpftool_vmlinux, tmp_path):
    """Without padding and attributes the same asserts fail for the structs the issue
    named: they can tell a wrong layout."""
    text, c_names = vmlinux_c
    asserts = c_check.layout_asserts(bpftool_vmlinux, c_names)
    wrong = c_check.wrong_layouts("clang-bpf", _natural(text), asserts, tmp_path)
    named = _ids_named(bpftool_vmlinux, NAMED) - _ids_named(bpftool_vmlinux, {
        "sk_buff", "filename", "warn_args", "va_format"})
    assert named <= set(wrong), {bpftool_vmlinux[t]["name"] for t in named - set(wrong)}


def _sizeof(types, tid, depth=0):
    tid = c_check._resolve(types, tid)
    t = types[tid]
    if t["kind"] == "ARRAY":
        return t["nr_elems"] * _sizeof(types, t["type_id"], depth + 1)
    return 8 if t["kind"] == "PTR" else t["size"]


def _beyond_bpftool(types):
    """Structs and unions that hold, by value at any depth, what bpftool v7.1 writes
    no attribute or padding for: an enum of 1 or 2 bytes (C makes it 4 without
    mode(byte)), a union longer than its longest member (bpftool pads structs only)."""
    memo = {}

    def has(tid, depth=0):
        tid = c_check._resolve(types, tid)
        if tid in memo or depth > 64:
            return memo.get(tid, False)
        t = types[tid]
        memo[tid] = False
        if t["kind"] == "ARRAY":
            memo[tid] = has(t["type_id"], depth + 1)
        elif t["kind"] in ("ENUM", "ENUM64"):
            memo[tid] = t["size"] in (1, 2)
        elif t["kind"] in ("STRUCT", "UNION"):
            memo[tid] = any(has(m["type_id"], depth + 1) for m in t["members"]) or (
                t["kind"] == "UNION" and t["size"] > max(
                    [_sizeof(types, m["type_id"]) for m in t["members"]], default=0))
        return memo[tid]

    return {tid for tid, t in types.items() if t["kind"] in ("STRUCT", "UNION") and has(tid)}


def test_bpftool_vmlinux_h_on_the_same_asserts(vmlinux, bpftool_vmlinux, tmp_path):
    """bpftool's own vmlinux.h passes the same asserts but where it writes no
    attribute (a 1-byte enum) or padding (a union) that C needs."""
    header = _bpftool_header()
    c_names = c_check.plain_c_names(bpftool_vmlinux)
    asserts = c_check.layout_asserts(bpftool_vmlinux, c_names)
    wrong = c_check.wrong_layouts("clang", header, asserts, tmp_path)
    beyond = _beyond_bpftool(bpftool_vmlinux)
    assert set(wrong) <= beyond, {c_names[t] for t in set(wrong) - beyond}


def _has_bitfields(types, tid, depth=0):
    t = types[tid]
    for m in t["members"]:
        if m.get("bitfield_size"):
            return True
        inner = types.get(c_check._resolve(types, m["type_id"]))
        if c_check._anonymous(m["name"]) and inner and inner["kind"] in ("STRUCT", "UNION") \
                and depth < 32 and _has_bitfields(types, inner["id"], depth + 1):
            return True
    return False


def test_bitfields_round_trip_through_clang(vmlinux_c, bpftool_vmlinux, tmp_path):
    """clang -g's BTF of our C has every bitfield where vmlinux has it: each struct
    with bitfields, and every 10th other one."""
    text, c_names = vmlinux_c
    picked = {tid for tid in c_names if _has_bitfields(bpftool_vmlinux, tid)}
    assert len(picked) > 200
    picked |= set(sorted(c_names)[::10])
    wrong = c_check.round_trip(bpftool_vmlinux, c_names, text, tmp_path, picked.__contains__)
    assert wrong == {}, {c_names[t]: w for t, w in list(wrong.items())[:5]}


# -- objects built here ----------------------------------------------------------------

OBJECT_STRUCTS = ("rc_bits", "with_small_enum", "cacheline", "aligned_tail", "packed_bits",
                  "packed_in", "holds_union", "wide_union", "int128_at_8", "sparse",
                  "behind_pointer")


@pytest.fixture(scope="module")
def layouts_obj(tmp_path_factory):
    return build_bpf("c_layouts.c", tmp_path_factory.mktemp("c_layouts"))


@pytest.fixture(scope="module")
def object_c(layouts_obj):
    types = c_check.bpftool_types(layouts_obj)
    c_names = c_check.plain_c_names(types)
    assert {n.split()[-1] for n in c_names.values()} >= set(OBJECT_STRUCTS)
    return cli_c("--file", layouts_obj), types, c_names


@pytest.mark.parametrize("compiler", sorted(c_check.COMPILERS))
def test_object_structs_have_their_btf_layout(object_c, compiler, tmp_path):
    text, types, c_names = object_c
    wrong = c_check.wrong_layouts(compiler, text, c_check.layout_asserts(types, c_names), tmp_path)
    assert wrong == {}, {c_names[t]: w for t, w in wrong.items()}


def test_object_bitfields_round_trip_through_clang(object_c, tmp_path):
    text, types, c_names = object_c
    assert c_check.round_trip(types, c_names, text, tmp_path) == {}
    # the check tells: the members alone put rc_bits' bitfields elsewhere
    wrong = c_check.round_trip(types, c_names, _natural(text), tmp_path)
    assert {"struct rc_bits", "struct packed_bits"} <= {c_names[t] for t in wrong}


def test_object_structs_one_at_a_time(layouts_obj, object_c, tmp_path):
    """`--struct NAME --format c` alone (NAME and what it needs) has the layout too,
    with --offsets as well."""
    _, types, c_names = object_c
    by_name = {n.split()[-1]: tid for tid, n in c_names.items()}
    for name in OBJECT_STRUCTS:
        tid = by_name[name]
        res = xdphints("btf", "--file", layouts_obj, "--struct", name, "--format", "c", "--offsets")
        assert res.returncode == 0, res.stderr
        assert c_check.wrong_layouts("clang-bpf", res.stdout, c_check.layout_asserts(
            types, {tid: c_names[tid]}), tmp_path) == {}, name


def test_a_layout_no_c_has_is_said_in_the_c():
    """Members out of order (BTF allows it, C does not): the C says its layout is not
    the BTF's instead of passing for it."""
    from xdphints_cli.btf.writer import Builder

    b = Builder()
    u32 = b.add_int("unsigned int", 4)
    b.add_struct("backwards", 8, [("second", u32, 32), ("first", u32, 0)])
    b.add_struct("forwards", 8, [("first", u32, 0), ("second", u32, 32)])
    spec = b.spec()
    assert "no C found that gives this struct its BTF layout" in \
        cformat.dump_c(spec, [spec.find("backwards", "struct").id])
    assert "no C found" not in cformat.dump_c(spec, [spec.find("forwards", "struct").id])
