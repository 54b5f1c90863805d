"""`xdphints btf`: hints structs from objects, the kernel, and loaded programs."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from btf.conftest import build_bpf, need_tool
from conftest import sh, xdphints
from xdphints_cli.btf import sources

HINTS_JSON_KEYS = {"name", "btf-id", "size", "members"}
MEMBER_KEYS = {"name", "type", "type-id", "offset", "size", "bit-offset", "bit-size"}
XDP_PASS = 2


def _need_vmlinux():
    if not os.path.exists(sources.VMLINUX):
        pytest.skip("kernel has no /sys/kernel/btf/vmlinux")


@pytest.fixture
def hints_object(tmp_path) -> str:
    return build_bpf("xdp_hints_example.c", tmp_path)


def _bpftool_types(path: str) -> dict:
    out = sh(need_tool("bpftool"), "-j", "btf", "dump", "file", path).stdout
    return {t["id"]: t for t in json.loads(out)["types"]}


# --- --file --------------------------------------------------------------------------

def test_file_json_matches_bpftool(hints_object):
    res = xdphints("-j", "btf", "--file", hints_object)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["source"] == {"type": "file", "path": hints_object}
    structs = {s["name"]: s for s in data["hints-structs"]}
    assert list(structs) == ["xdp_hints_example", "my_meta"]
    tool = _bpftool_types(hints_object)
    for s in structs.values():
        assert set(s) == HINTS_JSON_KEYS
        t = tool[s["btf-id"]]
        assert (t["kind"], t["name"], t["size"]) == ("STRUCT", s["name"], s["size"])
        ours = {m["name"]: m for m in s["members"]}
        for m in t["members"]:
            if m["name"] in ("", "(anon)"):
                continue  # the anonymous union is expanded into its members
            row = ours[m["name"]]
            assert set(row) == MEMBER_KEYS
            assert row["bit-offset"] == m["bits_offset"], m["name"]
            assert row["offset"] == m["bits_offset"] // 8
            if m.get("bitfield_size"):
                assert row["bit-size"] == m["bitfield_size"]
            assert row["type-id"] == m["type_id"]
        # anonymous union members sit at the union's offset
    ex = {m["name"]: m for m in structs["xdp_hints_example"]["members"]}
    assert (ex["word"]["offset"], ex["bytes"]["offset"], ex["btf_id"]["offset"]) == (28, 28, 36)
    assert ex["rx_timestamp"]["size"] == 8 and ex["tag"]["size"] == 6


def test_file_table_and_c(hints_object, tmp_path):
    res = xdphints("btf", "--file", hints_object)
    assert res.returncode == 0, res.stderr
    assert "struct xdp_hints_example  btf-id" in res.stdout and "size 40" in res.stdout
    assert "struct my_meta" in res.stdout and "not_hints" not in res.stdout
    lines: dict = {}
    for line in res.stdout.splitlines():  # xdp_hints_example first: its rows win
        if line.startswith("  "):
            lines.setdefault(line.split()[-1], line.split())
    assert lines["btf_id"][:3] == ["36", "4", "__u32"]
    assert lines["queue"][:3] == ["20:2", "6", "bits"]
    res = xdphints("btf", "--file", hints_object, "--format", "c", "--offsets")
    assert res.returncode == 0, res.stderr
    assert "struct xdp_hints_example {" in res.stdout and "/*    36     4 */" in res.stdout
    _gcc_ok(res.stdout, tmp_path)


def test_file_raw_btf_detected_by_content(hints_object, tmp_path):
    from xdphints_cli.btf.sources import elf_btf_section, read_file

    raw = tmp_path / "hints.o.btf"  # a misleading name on purpose
    raw.write_bytes(elf_btf_section(read_file(hints_object))[0])
    data = json.loads(xdphints("-j", "btf", "--file", str(raw)).stdout)
    assert [s["name"] for s in data["hints-structs"]] == ["xdp_hints_example", "my_meta"]


def test_file_errors(tmp_path):
    clang = need_tool("clang")
    nog = tmp_path / "nog.o"
    subprocess.run([clang, "-O2", "-target", "bpf", "-c", os.path.join(os.path.dirname(__file__), "btf", "progs",
                    "xdp_hints_example.c"), "-o", str(nog)], check=True)
    res = xdphints("btf", "--file", str(nog))
    assert res.returncode == 3 and "compile with clang -g" in res.stderr
    res = xdphints("btf", "--file", str(tmp_path / "missing.o"))
    assert res.returncode == 5 and "no such file" in res.stderr
    res = xdphints("-j", "btf", "--file", str(tmp_path / "missing.o"))
    assert json.loads(res.stdout)["exit-code"] == 5
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world")
    assert xdphints("btf", "--file", str(junk)).returncode == 1
    if os.geteuid() == 0:
        secret = tmp_path / "secret.o"
        secret.write_bytes(b"\x7fELF")
        secret.chmod(0)
        res = xdphints("btf", "--file", str(secret), unprivileged=True)
        assert res.returncode == 4 and "permission denied" in res.stderr


def test_file_that_is_not_a_regular_file(tmp_path):
    """A FIFO would block the read forever; a directory is no file either: exit 2."""
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))
    res = xdphints("btf", "--file", str(fifo))       # the runner's timeout catches a hang
    assert res.returncode == 2 and res.stderr.strip().endswith("is not a regular file (a BTF file or ELF object is expected)"), res.stderr
    res = xdphints("btf", "--file", str(tmp_path))
    assert res.returncode == 2 and "is a directory" in res.stderr, res.stderr


def test_usage_errors(hints_object):
    res = xdphints("btf", "--kernel", "--file", hints_object)
    assert res.returncode == 2 and "one source" in res.stderr
    assert xdphints("btf", "--kernel", "--struct", "x", "--all").returncode == 2
    assert xdphints("btf", "--file", hints_object, "--kfuncs").returncode == 2
    assert xdphints("btf", "--file", hints_object, "--offsets").returncode == 2


def test_all_lists_named_types(hints_object):
    data = json.loads(xdphints("-j", "btf", "--file", hints_object, "--all").stdout)
    tool = _bpftool_types(hints_object)
    named = {t["id"]: t for t in tool.values() if t.get("name") not in (None, "", "(anon)")}
    assert [r["btf-id"] for r in data["types"]] == sorted(named)
    for r in data["types"]:
        assert {"btf-id", "kind", "name"} <= set(r) <= {"btf-id", "kind", "name", "size"}
        assert r["kind"] == named[r["btf-id"]]["kind"].lower() and r["name"] == named[r["btf-id"]]["name"]
    text = xdphints("btf", "--file", hints_object, "--all").stdout
    assert "struct   not_hints" in text


def test_struct_in_file_and_close_names(hints_object):
    data = json.loads(xdphints("-j", "btf", "--file", hints_object, "--struct", "not_hints").stdout)
    assert data["type"]["kind"] == "struct" and data["type"]["size"] == 8
    assert [m["name"] for m in data["type"]["members"]] == ["btf_id", "other"]
    assert "struct not_hints {" in data["type"]["c"]
    res = xdphints("btf", "--file", hints_object, "--struct", "xdp_hint_example")
    assert res.returncode == 5 and "did you mean xdp_hints_example" in res.stderr


# --- same-name types, --id ------------------------------------------------------------

@pytest.fixture(scope="module")
def same_name_object(tmp_path_factory):
    """same_name.c built as two units linked into one object: two struct console."""
    d = tmp_path_factory.mktemp("same_name")
    units = [build_bpf("same_name.c", d, f"-DUNIT={n}", stem=f"unit{n}") for n in (1, 2)]
    obj = str(d / "same_name.o")
    sh(need_tool("bpftool"), "gen", "object", obj, *units)
    return obj


def _same_name_warning(name, ids, tool):
    listed = ", ".join(f"struct {i} ({tool[i]['size']} bytes)" for i in ids)
    return (f"xdphints: warning: {len(ids)} types named '{name}': {listed}; showing {ids[0]}, "
            "--id N shows another\n")


def test_same_name_structs_are_said_and_picked_by_id(same_name_object, tmp_path):
    from btf import c_check

    obj = same_name_object
    tool = _bpftool_types(obj)
    ids = sorted(i for i, t in tool.items() if (t["kind"], t["name"]) == ("STRUCT", "console"))
    assert len(ids) == 2 and tool[ids[0]]["size"] != tool[ids[1]]["size"]
    res = xdphints("btf", "--file", obj, "--struct", "console")
    assert res.returncode == 0 and res.stderr == _same_name_warning("console", ids, tool)
    assert f"struct console  btf-id {ids[0]}" in res.stdout
    data = json.loads(xdphints("-j", "btf", "--file", obj, "--struct", "struct console").stdout)
    assert data["type"]["btf-id"] == ids[0]
    assert data["same-name"] == [{"btf-id": i, "kind": "struct", "size": tool[i]["size"]} for i in ids]
    for i in ids:
        res = xdphints("-j", "btf", "--file", obj, "--id", str(i))
        assert res.returncode == 0 and res.stderr == "", res.stderr
        data = json.loads(res.stdout)
        assert (data["type"]["btf-id"], data["type"]["size"]) == (i, tool[i]["size"])
        assert "same-name" not in data
    res = xdphints("btf", "--file", obj, "--struct", str(ids[1]))
    assert res.returncode == 5 and f"--id {ids[1]}" in res.stderr
    # the header has both, the second as console___2, each with its own layout
    res = xdphints("btf", "--file", obj, "--all", "--format", "c")
    assert res.returncode == 0, res.stderr
    c_names = {ids[0]: "struct console", ids[1]: "struct console___2"}
    assert c_check.wrong_layouts("clang-bpf", res.stdout, c_check.layout_asserts(tool, c_names),
                                 tmp_path) == {}


def test_same_name_in_vmlinux_said_with_and_without_click():
    _need_vmlinux()
    tool = _bpftool_types(sources.VMLINUX)
    by_name: dict = {}
    for i, t in sorted(tool.items()):
        if t["kind"] == "STRUCT" and t["name"] != "(anon)":
            by_name.setdefault(t["name"], []).append(i)
    shared = sorted((n for n, ids in by_name.items() if len(ids) > 1), key=lambda n: (-len(by_name[n]), n))
    if not shared:
        pytest.skip("no two structs of this kernel share a name")
    name = shared[0]
    ids = by_name[name]
    fast = xdphints("btf", "--kernel", "--struct", name)        # entry.py, without click
    slow = xdphints("--no-color", "btf", "--kernel", "--struct", name)
    assert fast.returncode == slow.returncode == 0
    assert fast.stderr == slow.stderr == _same_name_warning(name, ids, tool)
    assert fast.stdout == slow.stdout
    for i in ids:
        data = json.loads(xdphints("-j", "btf", "--kernel", "--id", str(i)).stdout)
        assert (data["type"]["name"], data["type"]["size"]) == (name, tool[i]["size"])


def test_id_errors(hints_object):
    assert xdphints("btf", "--kernel", "--id", "5", "--struct", "x").returncode == 2
    assert xdphints("btf", "--kernel", "--id", "5", "--all").returncode == 2
    for bad in ("0", "x", "-1", "4294967296"):
        res = xdphints("btf", "--kernel", "--id", bad)
        assert res.returncode == 2 and "--id" in res.stderr, (bad, res.stderr)
    res = xdphints("btf", "--file", hints_object, "--id", "4294967295")
    assert res.returncode == 5 and res.stderr == "xdphints: error: no BTF type with id 4294967295\n"
    res = xdphints("-j", "btf", "--file", hints_object, "--id", "4294967295")
    assert json.loads(res.stdout)["exit-code"] == 5


def test_id_of_a_type_without_a_definition(hints_object):
    """An int or a pointer has no definition of its own: its C name."""
    tool = _bpftool_types(hints_object)
    ptr = min(i for i, t in tool.items() if t["kind"] == "PTR")
    res = xdphints("btf", "--file", hints_object, "--id", str(ptr))
    assert res.returncode == 0 and res.stdout.rstrip().endswith("*"), res.stdout


# --- --kernel, --kfuncs --------------------------------------------------------------

def _gcc_ok(source: str, tmp_path) -> None:
    gcc = need_tool("gcc")
    c = tmp_path / "out.c"
    c.write_text(source)
    r = subprocess.run([gcc, "-fsyntax-only", "-Wall", str(c)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_kernel_struct_xdp_md(tmp_path):
    _need_vmlinux()
    res = xdphints("btf", "--kernel", "--struct", "xdp_md")
    assert res.returncode == 0, res.stderr
    assert "struct xdp_md  btf-id" in res.stdout and "size 24" in res.stdout
    assert [line.split()[-1] for line in res.stdout.splitlines()[2:]] == [
        "data", "data_end", "data_meta", "ingress_ifindex", "rx_queue_index", "egress_ifindex"]
    res = xdphints("btf", "--kernel", "--struct", "xdp_md", "--format", "c")
    assert res.returncode == 0 and "struct xdp_md {" in res.stdout
    _gcc_ok(res.stdout, tmp_path)
    data = json.loads(xdphints("-j", "btf", "--kernel", "--struct", "struct xdp_md").stdout)
    assert data["source"]["type"] == "kernel"
    assert set(data["type"]) == {"name", "btf-id", "kind", "size", "members", "c"}
    assert data["type"]["members"][2]["name"] == "data_meta" and data["type"]["members"][2]["offset"] == 8


def test_kernel_unknown_struct_suggests():
    _need_vmlinux()
    res = xdphints("btf", "--kernel", "--struct", "sk_buf")
    assert res.returncode == 5 and "did you mean" in res.stderr and "sk_buff" in res.stderr


def test_kfuncs_match_bpftool():
    _need_vmlinux()
    bpftool = need_tool("bpftool")
    dump = subprocess.run([bpftool, "btf", "dump", "file", sources.VMLINUX], capture_output=True, text=True,
                          check=True).stdout
    want = {}
    for line in dump.splitlines():
        # bpf_xdp_metadata_kfunc_id is a FUNC too, but not a kfunc (no bpf_kfunc tag)
        if "FUNC 'bpf_xdp_metadata_rx_" in line and line.startswith("["):
            want[line.split("'")[1]] = int(line[1:line.index("]")])
    if not want:
        pytest.skip("kernel has no XDP metadata kfuncs")
    res = xdphints("-j", "btf", "--kfuncs")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    got = {k["name"]: k["btf-id"] for k in data["kfuncs"]}
    assert got == want
    assert {"bpf_xdp_metadata_rx_timestamp", "bpf_xdp_metadata_rx_hash", "bpf_xdp_metadata_rx_vlan_tag"} <= set(got)
    for k in data["kfuncs"]:
        assert set(k) == {"name", "btf-id", "prototype"} and k["prototype"].startswith("int " + k["name"] + "(")
    text = xdphints("btf", "--kfuncs").stdout
    for name, tid in want.items():
        assert any(line.split()[0] == str(tid) and name in line for line in text.splitlines()[1:])


# --- loaded programs -----------------------------------------------------------------

def _hints_btf():
    """struct xdp_hints_test {__u64 rx_timestamp; __u32 rx_hash; __u32 btf_id;} and a
    global FUNC int xdp_hints_test_prog(struct xdp_md *ctx) for func_info."""
    from xdphints_cli.btf import wire
    from xdphints_cli.btf.writer import Builder

    b = Builder()
    int_ = b.add_int("int", 4, signed=True)
    u32 = b.add_typedef("__u32", b.add_int("unsigned int", 4))
    u64 = b.add_typedef("__u64", b.add_int("unsigned long long", 8))
    hs = b.add_struct("xdp_hints_test", 16, [("rx_timestamp", u64, 0), ("rx_hash", u32, 64), ("btf_id", u32, 96)])
    ctx = b.add_ptr(b.add_fwd("xdp_md"))
    func = b.add_func("xdp_hints_test_prog", b.add_func_proto(int_, [("ctx", ctx)]), wire.LINKAGE_GLOBAL)
    return b.encode(), func, hs


@pytest.fixture
def attached(veth):
    """A trivial XDP program loaded with BTF (a hints struct) attached to veth.dev."""
    from xdphints_cli.process import netns
    from xdphints_cli.bpf.btf_object import load_btf
    from xdphints_cli.bpf.insn import R0, exit_, mov64_imm
    from xdphints_cli.bpf.link import XdpLink
    from xdphints_cli.bpf.prog import Program

    blob, func, hs = _hints_btf()
    with load_btf(blob) as btf:
        prog = Program.load([mov64_imm(R0, XDP_PASS), exit_()], name="xdph_hints", btf_fd=btf.fd,
                            func_info=[(0, func)])
    with prog:
        with netns.inside(veth.ns):
            link = XdpLink.attach(prog.fd, veth.ifindex())
        with link:
            yield veth, prog, hs


@pytest.mark.privileged
def test_program_by_prog_id_and_dev(attached):
    veth, prog, hs = attached
    pid = prog.info().id
    for args, ns in ((["--prog-id", str(pid)], ""), (["-d", veth.dev], veth.ns)):
        res = xdphints("-j", "btf", *args, ns=ns)
        assert res.returncode == 0, res.stderr
        data = json.loads(res.stdout)
        assert data["source"]["type"] == "program" and data["source"]["prog-id"] == pid
        # the program's BTF object id is btf-obj-id: btf-id is a type id in every JSON key
        assert data["source"]["btf-obj-id"] == prog.info().btf_id and "btf-id" not in data["source"]
        (s,) = data["hints-structs"]
        assert (s["name"], s["btf-id"], s["size"]) == ("xdp_hints_test", hs, 16)
        assert [(m["name"], m["offset"], m["size"]) for m in s["members"]] == [
            ("rx_timestamp", 0, 8), ("rx_hash", 8, 4), ("btf_id", 12, 4)]
    assert data["source"]["ifname"] == veth.dev and data["source"]["mode"] == "drv"
    text = xdphints("btf", "-d", veth.dev, ns=veth.ns).stdout
    assert f"program {pid} xdph_hints on {veth.dev} (drv)" in text and "struct xdp_hints_test" in text
    res = xdphints("btf", "--prog-id", str(pid), "--struct", "xdp_hint_test")
    assert res.returncode == 5 and "did you mean xdp_hints_test" in res.stderr


@pytest.mark.privileged
def test_show_lists_hints_structs(attached):
    veth, prog, hs = attached
    data = json.loads(xdphints("-j", "show", veth.dev, ns=veth.ns).stdout)
    (p,) = data["xdp"]["programs"]
    assert p["hints-structs"] == [{"name": "xdp_hints_test", "btf-id": hs, "size": 16}]
    assert p["btf-obj-id"] == prog.info().btf_id and "btf-id" not in p
    text = xdphints("show", veth.dev, ns=veth.ns).stdout
    assert f"btf-obj-id {prog.info().btf_id} " in text and f"hints xdp_hints_test (btf-id {hs}, 16 bytes)" in text


@pytest.mark.privileged
def test_program_without_btf(veth):
    from xdphints_cli.process import netns
    from xdphints_cli.bpf.insn import R0, exit_, mov64_imm
    from xdphints_cli.bpf.link import XdpLink
    from xdphints_cli.bpf.prog import Program

    with Program.load([mov64_imm(R0, XDP_PASS), exit_()], name="xdph_nobtf") as prog:
        with netns.inside(veth.ns):
            link = XdpLink.attach(prog.fd, veth.ifindex())
        with link:
            res = xdphints("btf", "-d", veth.dev, ns=veth.ns)
            assert res.returncode == 3, res.stderr
            assert "loaded without BTF" in res.stderr and "loader must provide BTF" in res.stderr
            res = xdphints("-j", "btf", "--prog-id", str(prog.info().id))
            assert res.returncode == 3 and json.loads(res.stdout)["exit-code"] == 3
            data = json.loads(xdphints("-j", "show", veth.dev, ns=veth.ns).stdout)
            assert "hints-structs" not in data["xdp"]["programs"][0]


@pytest.mark.privileged
def test_no_program_attached_and_unknown_id(veth):
    res = xdphints("btf", "-d", veth.dev, ns=veth.ns)
    assert res.returncode == 5 and f"no XDP program attached to {veth.dev}" in res.stderr
    res = xdphints("btf", "--prog-id", "5000000000")
    assert res.returncode == 2  # out of range for a u32 id is a usage error
    res = xdphints("btf", "--prog-id", "2147483647")
    assert res.returncode == 5


@pytest.mark.privileged
def test_pinned_program(attached, tmp_path):
    veth, prog, hs = attached
    bpffs = tmp_path / "bpffs"  # a private bpffs mount, removed afterwards
    bpffs.mkdir()
    if subprocess.run(["mount", "-t", "bpf", "bpf", str(bpffs)], capture_output=True).returncode:
        pytest.skip("cannot mount a bpffs")
    from xdphints_cli.bpf.info import obj_pin

    path = str(bpffs / "xdph_test")
    try:
        obj_pin(prog.fd, path)
        data = json.loads(xdphints("-j", "btf", "--pinned", path).stdout)
        assert data["source"]["path"] == path and data["hints-structs"][0]["btf-id"] == hs
        os.unlink(path)
        assert xdphints("btf", "--pinned", path).returncode == 5
    finally:
        subprocess.run(["umount", str(bpffs)], check=True)
