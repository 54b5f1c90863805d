"""Maps and object introspection against bpftool."""

from __future__ import annotations

import struct

import pytest

from conftest import need_tool

from bpftest_helpers import KFUNCS, bpftool_json, vmlinux_func_ids
from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.btf_object import btf_blob
from xdphints_cli.bpf.info import btf_fd_by_id, btf_info, map_fd_by_id, map_info, next_ids, prog_fd_by_id
from xdphints_cli.bpf.insn import R0, R1, R2, exit_, ld_map_fd, mov64_imm
from xdphints_cli.bpf.maps import Map
from xdphints_cli.bpf.prog import Program
from xdphints_cli.errors import NotFoundError

pytestmark = pytest.mark.privileged


def test_array_map_crud_and_info():
    with Map.create(sc.BPF_MAP_TYPE_HASH, 4, 8, 16, name="xh_hash") as m:
        assert m.lookup(struct.pack("=I", 1)) is None
        m.update(struct.pack("=I", 1), b"abcdefgh")
        m.update(struct.pack("=I", 2), b"ABCDEFGH")
        assert m.lookup(struct.pack("=I", 1)) == b"abcdefgh"
        assert sorted(m.keys()) == [struct.pack("=I", 1), struct.pack("=I", 2)]
        assert m.delete(struct.pack("=I", 1)) is True
        assert m.delete(struct.pack("=I", 1)) is False
        info = m.info()
        tool = bpftool_json("map", "show", "id", str(info.id))
        assert (tool["type"], tool["name"]) == ("hash", "xh_hash") == (info.type_name, info.name)
        assert (tool["bytes_key"], tool["bytes_value"], tool["max_entries"]) == (4, 8, 16)
        with map_fd_by_id(info.id) as fd:
            assert map_info(fd.fd) == info
        with pytest.raises(ValueError):
            m.update(b"\0", b"abcdefgh")


def test_xskmap_and_program_map_ids():
    with Map.create(sc.BPF_MAP_TYPE_XSKMAP, 4, 4, 4, name="xh_xsks") as xsks, \
            Map.create(sc.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="xh_arr") as arr:
        assert xsks.info().type_name == "xskmap"
        prog = [ld_map_fd(R1, xsks.fd), ld_map_fd(R2, arr.fd), mov64_imm(R0, 2), exit_()]
        with Program.load(prog) as p:
            info = p.info()
            tool = bpftool_json("prog", "show", "id", str(info.id))
        assert sorted(info.map_ids) == sorted([xsks.info().id, arr.info().id])
        assert sorted(tool["map_ids"]) == sorted(info.map_ids)
        arr.update_u32(0, 42)
        assert arr.lookup_u32(0) == 42


def test_ids_and_missing_ids():
    with Program.load([mov64_imm(R0, 2), exit_()]) as p:
        assert p.info().id in set(next_ids("prog"))
    assert 1 in set(next_ids("btf"))
    with pytest.raises(NotFoundError):
        prog_fd_by_id(0x7FFFFFF0)


def test_vmlinux_btf_blob():
    blob = btf_blob(1)
    assert struct.unpack_from("<H", blob)[0] == 0xEB9F
    with btf_fd_by_id(1) as fd:
        info = btf_info(fd.fd)
    assert info.name == "vmlinux" and info.kernel_btf and info.btf_size == len(blob)
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        assert f.read() == blob


def test_kfunc_ids_match_bpftool():
    ids = vmlinux_func_ids(KFUNCS)
    assert set(ids) == set(KFUNCS)
    import subprocess
    dump = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                          check=True, capture_output=True, text=True).stdout
    for name, tid in ids.items():
        assert f"[{tid}] FUNC '{name}'" in dump


def test_type_tables():
    assert sc.type_name(sc.PROG_TYPE_NAMES, sc.BPF_PROG_TYPE_XDP) == "xdp"
    assert sc.type_name(sc.MAP_TYPE_NAMES, sc.BPF_MAP_TYPE_XSKMAP) == "xskmap"
    assert sc.type_name(sc.MAP_TYPE_NAMES, sc.BPF_MAP_TYPE_RINGBUF) == "ringbuf"
    assert sc.type_name(sc.LINK_TYPE_NAMES, sc.BPF_LINK_TYPE_TCX) == "tcx"
    assert sc.type_name(sc.PROG_TYPE_NAMES, 999) == "type 999"
    assert sc.type_value(sc.PROG_TYPE_NAMES, "BPF_PROG_TYPE_SCHED_CLS") == 3


PIN_CHILD = """
import sys
from xdphints_cli.bpf.info import obj_get, obj_pin, prog_info
from xdphints_cli.bpf.prog import Program
from xdphints_cli.bpf.insn import mov64_imm, exit_
from xdphints_cli.errors import NotFoundError
d = sys.argv[1]
with Program.load([mov64_imm(0, 2), exit_()], name="xh_pinned") as p:
    obj_pin(p.fd, d + "/p")
    with obj_get(d + "/p") as fd:
        assert prog_info(fd.fd).id == p.info().id
try:
    obj_get(d + "/missing")
except NotFoundError:
    print("ok")
"""


def test_pin_and_obj_get(tmp_path):
    """bpffs mounted in a private mount namespace (nothing leaks to the host)."""
    import os
    import subprocess
    import sys
    need_tool("unshare")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = 'mount -t bpf bpf "$1" && exec "$2" -c "$3" "$1"'
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                        str(tmp_path), sys.executable, PIN_CHILD],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=repo),
                       timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
