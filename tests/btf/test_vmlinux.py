"""The reader against the running kernel's BTF, checked with bpftool's raw JSON dump."""

from __future__ import annotations

import random

import pytest

from xdphints_cli.btf import types as T
from xdphints_cli.btf import wire

NAMED = ("sk_buff", "xdp_md", "xdp_buff", "net_device")


def _sample_structs(spec, n=200, seed=20240601):
    ids = [t for t in spec.own_ids()
           if spec.kind_of(t) in (wire.KIND_STRUCT, wire.KIND_UNION)]
    picked = random.Random(seed).sample(ids, min(n, len(ids)))
    picked += [spec.find(name, "struct").id for name in NAMED]
    return picked


def test_type_count_and_kinds_match_bpftool(vmlinux, bpftool_vmlinux):
    assert vmlinux.n_types - 1 == len(bpftool_vmlinux)
    for tid in range(1, vmlinux.n_types, 97):
        assert wire.KIND_NAMES[vmlinux.kind_of(tid)] == bpftool_vmlinux[tid]["kind"]
        name = vmlinux.name_of(tid) or "(anon)"
        assert name == bpftool_vmlinux[tid]["name"]


def test_struct_layouts_match_bpftool(vmlinux, bpftool_vmlinux):
    for tid in _sample_structs(vmlinux):
        t = vmlinux[tid]
        ref = bpftool_vmlinux[tid]
        assert isinstance(t, T.Composite)
        assert (t.name or "(anon)", t.size) == (ref["name"], ref["size"])
        got = [(m.name or "(anon)", m.type, m.bit_offset, m.bitfield_size)
               for m in t.members]
        want = [(m["name"], m["type_id"], m["bits_offset"], m.get("bitfield_size", 0))
                for m in ref["members"]]
        assert got == want, t.name


def test_sizes_agree_with_bpftool_members(vmlinux, bpftool_vmlinux):
    """size_of of each member type fits the struct and matches bpftool's INT sizes."""
    for tid in _sample_structs(vmlinux, 50, seed=7):
        t = vmlinux[tid]
        for m in t.members:
            if m.bitfield_size:
                continue
            size = vmlinux.size_of(m.type)
            assert m.bit_offset // 8 + size <= t.size, (t.name, m.name)
            r = vmlinux.resolve(m.type)
            if bpftool_vmlinux.get(r, {}).get("kind") == "INT":
                assert size == bpftool_vmlinux[r]["size"]


def test_every_type_materialises(vmlinux, bpftool_vmlinux):
    for tid in range(1, vmlinux.n_types, 13):
        t = vmlinux[tid]
        ref = bpftool_vmlinux[tid]
        assert t.id == tid and t.kind_name == ref["kind"]
        if isinstance(t, T.Enum):
            # bpftool 7.1's JSON sign-extends a 4-byte unsigned enum value to 64 bits
            # (BLK_SEG_BOUNDARY_MASK 0xffffffff prints as 2**64-1; its text dump says
            # 4294967295): compare within the enum's size
            mask = (1 << (8 * ref["size"])) - 1 if ref.get("encoding") == "UNSIGNED" else -1
            assert [(v.name, v.value) for v in t.values] == \
                [(v["name"], v["val"] & mask) for v in ref["values"]]
        elif isinstance(t, T.FuncProto):
            assert t.return_type == ref["ret_type_id"]
            assert [p.type for p in t.params] + ([0] if t.variadic else []) == \
                [p["type_id"] for p in ref["params"]]
        elif isinstance(t, T.Array):
            assert (t.type, t.index_type, t.nelems) == \
                (ref["type_id"], ref["index_type_id"], ref["nr_elems"])
        elif isinstance(t, T.Int):
            assert (t.size, t.bits, t.bit_offset) == \
                (ref["size"], ref["nr_bits"], ref["bits_offset"])


def test_lookup_and_names(vmlinux):
    skb = vmlinux.find("sk_buff", "struct")
    assert vmlinux.by_name("sk_buff", wire.KIND_STRUCT) == [skb]
    assert vmlinux.by_name("no_such_type_xyz") == []
    xdp_md = vmlinux.find("xdp_md", "struct")
    assert [(m.name, m.offset) for m in xdp_md.members][:3] == \
        [("data", 0), ("data_end", 4), ("data_meta", 8)]
    assert vmlinux.size_of(xdp_md.id) == 24
    dev = next(m for m in skb.members if m.name == "sk")
    assert vmlinux.type_name(dev.type) == "struct sock *"
    cb = next(m for m in skb.members if m.name == "cb")
    assert vmlinux.type_name(cb.type) == "char[48]"
    u32 = vmlinux.find("u32", "typedef")
    assert vmlinux.type_name(vmlinux.resolve(u32.id)) == "unsigned int"
    from xdphints_cli.errors import NotFoundError

    with pytest.raises(NotFoundError):
        vmlinux.find("no_such_type_xyz")


def test_bitfields_in_sk_buff(vmlinux):
    skb = vmlinux.find("sk_buff", "struct")
    cloned = next(m for m in skb.members if m.name == "cloned")
    assert cloned.bitfield_size == 1 and cloned.bit_offset % 8 == 0
