"""dump --attached with hints programs whose metadata has no trailing btf_id, written
in the style of the kernel's xdp_hw_metadata selftest (tests/hints/progs/hw_meta.c:
unions of value and error code, a hint_valid mask last), loaded dev-bound through
libbpf: --struct NAME decodes them; without it nothing is passed off as a btf_id."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys

import pytest

from test_dump import _cmd, _env, finish, run_dump
from test_dump_attached import build

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "hints"))
from libbpf_loader import load_dev_bound  # noqa: E402

pytestmark = pytest.mark.privileged
PORT = 9091
ENODATA = 61
SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for sp in (41000, 41001):
    s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s2.bind(('', sp))
    for _ in range(int(sys.argv[2])):
        s2.sendto(b'x' * 20, (sys.argv[1], 9091))
"""


@contextlib.contextmanager
def attached_hw_meta(pair, tmp_path, variant: str):
    """hw_meta.c attached dev-bound to the veth: with the struct in its BTF (a map's
    value type) or only in its DWARF. Yields the object's path."""
    from xdphints_cli.process import netns
    from xdphints_cli.bpf.link import XdpLink

    from conftest import need_metadata_area

    need_metadata_area()        # hw_meta.c reserves the metadata area, as the selftest does
    obj = build("hw_meta.c", tmp_path, *(["-DMETA_IN_BTF"] if variant == "btf" else []))
    if variant == "dwarf":
        dump = subprocess.run(["bpftool", "btf", "dump", "file", obj], capture_output=True,
                              text=True, check=True).stdout
        assert "'xdp_meta'" not in dump          # only the DWARF has it
    with netns.inside(pair.ns):
        ifindex = socket.if_nametoindex(pair.dev)
        with load_dev_bound(obj, ifindex) as fd, XdpLink.attach(fd, ifindex):
            yield obj


@pytest.fixture(params=["btf", "dwarf"])
def hw_meta(request, veth, tmp_path):
    with attached_hw_meta(veth, tmp_path, request.param) as obj:
        yield request.param, obj


def capture(pair, *args, count=4):
    pair.run_peer("sysctl", "-qw", f"net.ipv6.conf.{pair.peer}.disable_ipv6=1")
    p = subprocess.Popen(_cmd(pair.ns, "-d", pair.dev, "--queue", "0", "--attached", "-j",
                              "-c", str(count), *args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), bufsize=0)
    line = b""
    while not line.endswith(b"\n"):     # byte by byte: communicate() reads the fd, not a buffer
        c = os.read(p.stderr.fileno(), 1)
        if not c:
            break
        line += c
    assert b"dumping" in line, line + p.communicate(timeout=30)[1]
    pair.run_peer(sys.executable, "-c", SENDER, pair.addr, str(count // 2))
    rc, out, err = finish(p)
    err = (line + err).decode()
    assert rc == 0, err
    return [json.loads(x) for x in out.decode().splitlines()], err


def test_struct_decodes_a_selftest_style_layout(veth, hw_meta):
    variant, obj = hw_meta
    args = ["--struct", "xdp_meta"] + (["--btf", obj] if variant == "dwarf" else [])
    pkts, err = capture(veth, *args)
    where = f"{obj} (DWARF)" if variant == "dwarf" else "the program's BTF"
    assert f"metadata as struct xdp_meta from {where}" in err
    hashes = {}
    for pk in pkts:
        meta = pk["metadata"]
        assert set(meta) == {"struct", "fields"} and meta["struct"] == "xdp_meta"   # no btf-id
        f = meta["fields"]
        # a union's members are all true readings of the same bytes: all shown
        assert f["rx_hash_type"] == f["rx_hash_err"] == 8            # XDP_RSS_TYPE_L4_ANY
        assert f["rx_vlan_tag_err"] == -ENODATA                       # veth: no tag
        assert f["hint_valid"] == 3                                   # TS | RSS, no VLAN
        assert f["xdp_timestamp"] > 0 and f["rx_hash"] != 0
        hashes.setdefault(pk["src-port"], set()).add(f["rx_hash"])
    assert len(hashes) == 2 and all(len(h) == 1 for h in hashes.values())    # per flow
    assert hashes[41000] != hashes[41001]
    assert "metadata xdp_meta: 4" in err


def test_without_struct_nothing_is_taken_for_a_btf_id(veth, hw_meta):
    pkts, err = capture(veth)
    assert "has no hints struct" in err and "--struct NAME" in err, err
    assert err.count("has no hints struct") == 1                       # said once
    for pk in pkts:
        assert set(pk["metadata"]) == {"raw"}                          # never a btf-id
        raw = bytes.fromhex(pk["metadata"]["raw"])
        assert len(raw) == 32                                          # the whole struct
        assert int.from_bytes(raw[-4:], "little") == 3                 # hint_valid
    assert "btf-id 3" not in err and "metadata unknown-layout: 4" in err


def test_struct_not_found_names_where_it_looked(veth, tmp_path):
    with attached_hw_meta(veth, tmp_path, "dwarf"):
        r = run_dump(veth, "-d", veth.dev, "--queue", "0", "--attached", "--struct", "xdp_meta")
    assert r.returncode == 5, r.stderr
    assert r.stderr.strip() == ("xdphints: error: no struct xdp_meta in the program's BTF, "
                                "vmlinux BTF")


def test_struct_options_need_attached(veth):
    for args in (["--struct", "x"], ["--attached", "--btf", "f.o"]):
        r = run_dump(veth, "-d", veth.dev, "--queue", "0", *args)
        assert r.returncode == 2, r.stderr


def test_btf_file_struct_from_dwarf_matches_the_btf_layout(tmp_path):
    """`btf --file OBJ --struct NAME` finds a DWARF-only struct, says so, and its members
    are those clang's BTF gives the same struct when it has it."""
    from conftest import xdphints

    (tmp_path / "dwarf").mkdir()
    only_dwarf = build("hw_meta.c", tmp_path / "dwarf")
    with_btf = build("hw_meta.c", tmp_path, "-DMETA_IN_BTF")
    got = json.loads(xdphints("-j", "btf", "--file", only_dwarf, "--struct", "xdp_meta").stdout)
    want = json.loads(xdphints("-j", "btf", "--file", with_btf, "--struct", "xdp_meta").stdout)
    assert got["source"]["layout"] == "dwarf" and want["source"]["layout"] == "btf"
    assert "btf-id" not in got["type"]          # the synthesized ids mean nothing to the file
    key = ("name", "type", "offset", "size", "bit-offset", "bit-size")
    assert ([{k: m[k] for k in key} for m in got["type"]["members"]]
            == [{k: m[k] for k in key} for m in want["type"]["members"]])
    text = xdphints("btf", "--file", only_dwarf, "--struct", "xdp_meta")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == f"struct xdp_meta from the DWARF of {only_dwarf} (its BTF has none)"
    r = xdphints("btf", "--file", only_dwarf, "--struct", "nosuch")
    assert r.returncode == 5 and "no struct nosuch in its BTF or its DWARF" in r.stderr
