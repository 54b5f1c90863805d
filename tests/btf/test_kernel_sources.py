"""Kernel BTF: kfunc fast path, kfunc listing, xdp_rss_hash_type, module split BTF."""

from __future__ import annotations

import os

import pytest

from xdphints_cli.errors import BTFError
from xdphints_cli.btf import hints, kfuncs, reader, sources, types as T, wire


def test_fast_kfunc_ids_match_full_parse(vmlinux):
    ids = kfuncs.xdp_metadata_kfunc_ids()
    assert set(ids) <= set(kfuncs.XDP_METADATA_KFUNCS)
    # 6.3 added timestamp and hash, 6.8 vlan_tag: a 6.18 kernel has all three.
    assert "bpf_xdp_metadata_rx_hash" in ids
    for name, tid in ids.items():
        t = vmlinux[tid]
        assert (t.kind, t.name) == (wire.KIND_FUNC, name)
        assert vmlinux.ids_by_name(name, "func")[0] == tid
    assert kfuncs.find_func_ids(["no_such_function_xyz"]) == {}
    assert kfuncs.find_func_ids(["sk_buff"]) == {}  # a struct, not a FUNC


def test_list_kfuncs(vmlinux):
    ks = {k.name: k for k in kfuncs.list_kfuncs(vmlinux, prefix="bpf_xdp_metadata_")}
    assert "bpf_xdp_metadata_rx_timestamp" in ks
    assert ks["bpf_xdp_metadata_rx_timestamp"].prototype == \
        "int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, u64 *timestamp)"
    assert all(isinstance(vmlinux[k.id], T.Func) for k in ks.values())
    assert ks["bpf_xdp_metadata_rx_hash"].to_json()["id"] == ks["bpf_xdp_metadata_rx_hash"].id


def test_rss_hash_types(vmlinux):
    table = kfuncs.xdp_rss_hash_types(vmlinux)
    assert table["XDP_RSS_L3_IPV4"] == 1 and table["XDP_RSS_L4_ICMP"] == 256
    assert table["XDP_RSS_TYPE_L4_IPV4_UDP"] == 41
    assert kfuncs.rss_hash_type_name(41, table) == "XDP_RSS_TYPE_L4_IPV4_UDP"
    assert kfuncs.rss_hash_type_name(9, table) == "XDP_RSS_L3_IPV4|XDP_RSS_L4"


def test_kernel_is_cached(vmlinux):
    assert sources.kernel() is vmlinux
    # vmlinux's structs that end in a u32 btf_id member (btf_field_kptr, bpf_iter_target_info,
    # an anonymous one) have tail padding after it: none is a hints struct
    assert [t.name for t in hints.hints_structs(vmlinux) if not t.name.startswith("xdp_hints")] == []


def test_module_btf_is_split(vmlinux):
    mods = sources.kernel_modules()
    if not mods:
        pytest.skip("no module BTF in /sys/kernel/btf (modules built in)")
    name = mods[0]
    spec = sources.module(name)
    assert spec.base is vmlinux and spec.start_id == vmlinux.n_types
    for tid in list(spec.own_ids())[:2000]:
        spec.type_name(tid)
    with open(os.path.join(sources.KERNEL_BTF_DIR, name), "rb") as f:
        blob = f.read()
    with pytest.raises(BTFError):
        reader.parse(blob)  # without vmlinux its ids and strings dangle


def test_vmlinux_is_mapped_and_parses_as_read(vmlinux, tmp_path):
    """Newer kernels (this 6.18 one) let /sys/kernel/btf/vmlinux be mapped
    (kernel/bpf/sysfs_btf.c): the mapping is what the parse uses, and it gives what
    reading the file gives."""
    import mmap

    blob = sources.kernel_blob()
    assert isinstance(blob, mmap.mmap)
    with open(sources.VMLINUX, "rb") as f:
        data = f.read()
    assert blob[:] == data
    read = reader.parse(data, kernel_verified=True)
    for name in ("sk_buff", "xdp_md", "bpf_xdp_metadata_rx_hash"):
        a, b = vmlinux.find(name), read.find(name)
        assert a == b and vmlinux.type_name(a.id) == read.type_name(b.id)
    # a file the kernel will not map is read instead
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert sources._map_or_read(str(empty)) == b""
