"""Kernel BTF: kfunc fast path, kfunc listing, xdp_rss_hash_type, module split BTF,
modules without BTF."""

from __future__ import annotations

import gzip
import json
import os

import pytest

from conftest import xdphints
from xdphints_cli.errors import BTFError, NotFoundError
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


def test_built_in_modules_are_said_to_be_in_vmlinux():
    """A module built into the kernel has no BTF of its own: `--module` says its types
    are in vmlinux's, for one /sys/module shows (parameters, no initstate) and for veth
    where the kernel's config has it built in."""
    shown = [n for n in sorted(os.listdir(sources.SYS_MODULE))
             if not os.path.exists(os.path.join(sources.SYS_MODULE, n, "initstate"))
             and not os.path.exists(os.path.join(sources.KERNEL_BTF_DIR, n))]
    if not shown:
        pytest.skip("no built-in module in /sys/module")
    res = xdphints("btf", "--module", shown[0])
    assert res.returncode == 5 and res.stderr == (
        f"xdphints: error: module '{shown[0]}' is built into the kernel: its types are in "
        "vmlinux's BTF (use --kernel)\n")
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            built_in = "CONFIG_VETH=y\n" in f.read()
    except OSError:
        built_in = False
    if built_in:
        res = xdphints("-j", "btf", "--module", "veth")
        assert res.returncode == 5 and "built in" in res.stderr and "(use --kernel)" in res.stderr
        assert json.loads(res.stdout)["exit-code"] == 5


def test_why_a_module_has_no_btf(tmp_path, monkeypatch):
    """Each case on a made-up /sys and /lib/modules: loaded without BTF, built in with
    parameters, built in listed in modules.builtin only, no loadable modules at all,
    and not there."""
    sys_module, btf_dir, lib = tmp_path / "module", tmp_path / "btf", tmp_path / "lib"
    (sys_module / "loaded").mkdir(parents=True)
    (sys_module / "loaded" / "initstate").write_text("live\n")
    (sys_module / "with_params" / "parameters").mkdir(parents=True)
    btf_dir.mkdir()
    release = lib / os.uname().release
    release.mkdir(parents=True)
    (release / "modules.builtin").write_text("kernel/drivers/net/veth.ko\nkernel/net/nf-nat.ko\n")
    proc_modules = tmp_path / "modules"
    proc_modules.write_text("")
    for attr, value in (("SYS_MODULE", sys_module), ("KERNEL_BTF_DIR", btf_dir), ("MODULES_DIR", lib),
                        ("PROC_MODULES", proc_modules)):
        monkeypatch.setattr(sources, attr, str(value))

    def why(name):
        with pytest.raises(NotFoundError) as e:
            sources.module(name)
        return str(e.value)

    assert "'loaded' is loaded but has no BTF" in why("loaded")
    assert "'with_params' is built into the kernel" in why("with_params")
    assert "'veth' is built into the kernel" in why("veth")
    assert "'nf_nat' is built into the kernel" in why("nf-nat")
    assert why("absent") == "no BTF for module 'absent' (is it loaded?)"
    proc_modules.unlink()
    assert "this kernel has no loadable modules" in why("absent")
