"""`xdphints dump --attached`: a user's hints-hook program (tests/hints/progs/hook.c)
with an XSKMAP and two metadata structs, attached by iproute2 or bpftool; dump puts
its socket in the program's map, decodes by btf_id and leaves the program alone."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from conftest import need_metadata_area, need_tool

from test_dump import SCHEMA_PATH, _cmd, _env, finish, run_dump

pytestmark = pytest.mark.privileged

PROGS = os.path.join(os.path.dirname(__file__), "hints", "progs")
SENDER = """
import socket, sys
dst, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(count):
    for port in [int(p) for p in sys.argv[3].split(',')]:
        s.sendto(b'x' * 32, (dst, port))
"""
EVEN, ODD, UNKNOWN = 1000, 1001, 7777      # xdp_hints_a, xdp_hints_b, btf_id 0xdead


def build(src: str, out_dir, *extra: str) -> str:
    clang = need_tool("clang")
    obj = os.path.join(str(out_dir), os.path.splitext(src)[0] + ".o")
    args = [clang, "-O2", "-g", "-target", "bpf", *extra]
    multiarch = f"/usr/include/{platform.machine()}-linux-gnu"
    if os.path.isdir(multiarch):
        args.append("-I" + multiarch)          # <asm/types.h> for <linux/bpf.h>
    r = subprocess.run(args + ["-c", os.path.join(PROGS, src), "-o", obj],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"clang failed:\n{r.stderr}")
    return obj


@pytest.fixture
def hook_obj(tmp_path) -> str:
    need_metadata_area()        # hook.c puts its structs in the metadata area
    return build("hook.c", tmp_path)


def attach_ip(pair, obj: str) -> int:
    """Attach with iproute2's libbpf loader; the program id."""
    pair.run("ip", "link", "set", "dev", pair.dev, "xdpdrv", "obj", obj, "sec", "xdp")
    return prog_id(pair)


def prog_id(pair):
    links = json.loads(pair.run("ip", "-j", "link", "show", pair.dev).stdout)
    xdp = links[0].get("xdp")
    return xdp["prog"]["id"] if xdp and "prog" in xdp else None


def start(pair, *args) -> subprocess.Popen:
    """Start dump; return once its socket is in the map (the announce line)."""
    pair.run_peer("sysctl", "-qw", f"net.ipv6.conf.{pair.peer}.disable_ipv6=1")
    p = subprocess.Popen(_cmd(pair.ns, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=_env())
    line = p.stderr.readline()
    if "dumping" not in line:
        out, err = p.communicate(timeout=60)
        raise AssertionError(f"dump did not start: {line}{err}{out}")
    return p


def send(pair, count, ports=(EVEN, ODD, UNKNOWN)):
    pair.run_peer(sys.executable, "-c", SENDER, pair.addr, str(count),
                  ",".join(map(str, ports)))


def check_packets(out, n):
    pkts = [json.loads(line) for line in out.splitlines()]
    assert len(pkts) == 3 * n
    by_port = {}
    for pk in pkts:
        by_port.setdefault(pk["dst-port"], []).append(pk["metadata"])
    a, b, u = by_port[EVEN], by_port[ODD], by_port[UNKNOWN]
    assert len(a) == len(b) == len(u) == n
    for m in a:
        assert m["struct"] == "xdp_hints_a"
        assert m["fields"] == {"stamp": 0x1122334455667788, "flow": EVEN, "btf_id": m["btf-id"]}
    for m in b:
        assert m["struct"] == "xdp_hints_b"
        assert m["fields"] == {"port": ODD, "pad": 0, "btf_id": m["btf-id"]}
    assert a[0]["btf-id"] != b[0]["btf-id"]
    for m in u:      # 0xdead names no struct: the bytes, never "btf-id 57005"
        assert set(m) == {"raw"}
        assert bytes.fromhex(m["raw"]) == (UNKNOWN.to_bytes(2, "little") + b"\x5a\x5a"
                                           + (0xDEAD).to_bytes(4, "little"))
    return pkts


def test_attached_decodes_both_structs_and_leaves_program(veth, hook_obj):
    pid = attach_ip(veth, hook_obj)
    p = start(veth, "-d", veth.dev, "--queue", "0", "--attached", "-j", "-c", "15")
    send(veth, 5)
    rc, out, err = finish(p)
    assert rc == 0, err
    pkts = check_packets(out, 5)
    jsonschema = pytest.importorskip("jsonschema")
    with open(SCHEMA_PATH) as f:
        validator = jsonschema.Draft202012Validator(json.load(f))
    for pk in pkts:
        validator.validate(pk)
    assert "xdp_hints_a: 5" in err and "xdp_hints_b: 5" in err and "unknown-layout: 5" in err
    assert prog_id(veth) == pid                       # still attached, same program
    # the slot is empty again: a second dump puts its socket there with BPF_NOEXIST
    p = start(veth, "-d", veth.dev, "--queue", "0", "--attached", "-c", "3")
    send(veth, 1)
    rc, out, err = finish(p)
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    assert any("struct xdp_hints_a" in x and "flow 1000" in x for x in lines)
    assert any("metadata (unknown layout) 611e5a5aadde0000" in x for x in lines)
    assert prog_id(veth) == pid


def test_attached_refuses_program_without_xskmap(veth, tmp_path):
    obj = build("nomap.c", tmp_path)
    pid = attach_ip(veth, obj)
    r = run_dump(veth, "-d", veth.dev, "--queue", "0", "--attached")
    assert r.returncode == 3, r.stderr
    assert "no XSKMAP" in r.stderr
    assert prog_id(veth) == pid


def test_attached_without_program(veth):
    r = run_dump(veth, "-d", veth.dev, "--queue", "0", "--attached")
    assert r.returncode == 5, r.stderr
    assert "no XDP program attached" in r.stderr


@pytest.mark.parametrize("extra", [["--match", "udp"], ["--sample", "2"],
                                   ["--enable-timestamps"]])
def test_attached_usage_errors(veth, extra):
    r = run_dump(veth, "-d", veth.dev, "--queue", "0", "--attached", *extra)
    assert r.returncode == 2, r.stderr
    assert "--attached" in r.stderr
    # the reason fits the option: timestamping does not configure the built-in program
    assert ("built-in program" in r.stderr) == (extra[0] != "--enable-timestamps"), r.stderr


def test_pinned_needs_attached(veth):
    r = run_dump(veth, "-d", veth.dev, "--queue", "0", "--pinned", "/sys/fs/bpf/x")
    assert r.returncode == 2, r.stderr


@pytest.fixture
def bpffs(tmp_path):
    d = tmp_path / "bpffs"
    d.mkdir()
    subprocess.run(["mount", "-t", "bpf", "bpf", str(d)], check=True)
    try:
        yield str(d)
    finally:
        subprocess.run(["umount", str(d)], check=False)


@pytest.mark.parametrize("what", ["prog", "map"])
def test_pinned_program_or_xskmap(veth, hook_obj, bpffs, what):
    bpftool = need_tool("bpftool")
    prog_path, maps = os.path.join(bpffs, "hook"), os.path.join(bpffs, "maps")
    subprocess.run([bpftool, "prog", "load", hook_obj, prog_path, "type", "xdp",
                    "pinmaps", maps], check=True)
    veth.run("ip", "link", "set", "dev", veth.dev, "xdpdrv", "pinned", prog_path)
    pid = prog_id(veth)
    path = prog_path if what == "prog" else os.path.join(maps, "xsks")
    p = start(veth, "-d", veth.dev, "--queue", "0", "--attached", "--pinned", path, "-j",
              "-c", "6")
    send(veth, 2)
    rc, out, err = finish(p)
    assert rc == 0, err
    check_packets(out, 2)
    assert prog_id(veth) == pid


def test_attached_through_xdp_loader(veth, hook_obj):
    """xdp-loader (libxdp) as the peer tool. On this kind of VM libxdp cannot use its
    multi-program dispatcher (its freplace compatibility check gets EPERM, as fentry
    does) and falls back to attaching the program alone, which is what this covers."""
    need_tool("xdp-loader")
    # libxdp wants a bpffs; `ip netns exec` gives the command its own mount namespace
    veth.run("sh", "-c", f"mount -t bpf bpf /sys/fs/bpf && xdp-loader load -m native {veth.dev} {hook_obj}")
    pid = prog_id(veth)
    assert pid is not None
    p = start(veth, "-d", veth.dev, "--queue", "0", "--attached", "-j", "-c", "6")
    send(veth, 2)
    rc, out, err = finish(p)
    assert rc == 0, err
    check_packets(out, 2)
    assert prog_id(veth) == pid


def test_pinned_path_that_is_not_a_bpf_object(veth, bpffs, tmp_path):
    """A directory, the bpffs root or a file elsewhere: not a pinned BPF object (exit
    5), not "permission denied" as the kernel's EACCES would suggest."""
    os.mkdir(os.path.join(bpffs, "dir"))
    plain = tmp_path / "plain"
    plain.write_text("x")
    for path in (bpffs, os.path.join(bpffs, "dir"), str(plain), str(tmp_path)):
        r = run_dump(veth, "-d", veth.dev, "--queue", "0", "--attached", "--pinned", path)
        assert r.returncode == 5, (path, r.stderr)
        assert r.stderr.strip() == f"xdphints: error: {path} is not a pinned BPF object"


PACED_SENDER = """
import socket, sys, time
dst, count, burst = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(count):
    s.sendto(b'x' * 32, (dst, 9999))
    if i % burst == burst - 1:
        time.sleep(0.01)
"""


def test_packets_without_metadata_never_show_an_earlier_packets(veth, tmp_path):
    """partial.c writes metadata (its own sequence number) on two packets of three and
    redirects the third bare. Far more packets than the UMEM has frames (16384 of
    2 KiB at MTU 1500), so frames are reused: a bare packet must show no metadata, not
    what the frame's previous packet left in front of it."""
    need_metadata_area()
    obj = build("partial.c", tmp_path, "-mcpu=v3")
    attach_ip(veth, obj)
    n = 40000
    # a permanent neighbour entry: packets queued behind ARP resolution could be dropped
    mac = veth.run("cat", f"/sys/class/net/{veth.dev}/address").stdout.strip()
    veth.run_peer("ip", "neigh", "replace", veth.addr, "lladdr", mac, "dev", veth.peer)
    veth.run_peer("sysctl", "-qw", f"net.ipv6.conf.{veth.peer}.disable_ipv6=1")
    # stdout to a file: a pipe nobody reads while the sender runs would fill, and dump's
    # bounded writer would then (rightly) hold up the receive loop
    lines = tmp_path / "dump.jsonl"
    with open(lines, "w") as f:
        p = subprocess.Popen(_cmd(veth.ns, "-d", veth.dev, "--queue", "0", "--attached", "-j",
                                  "-c", str(n)), stdout=f, stderr=subprocess.PIPE, text=True,
                             env=_env())
    first = p.stderr.readline()
    assert "dumping" in first, first + p.communicate(timeout=60)[1]
    # paced (at most ~10k pps): the per-packet --attached path must keep up even on a
    # loaded machine, or ring-full drops would make the counts inexact
    veth.run_peer(sys.executable, "-c", PACED_SENDER, veth.addr, str(n), "100")
    try:
        rc, _out, err = finish(p, timeout=120)
    except subprocess.TimeoutExpired:
        p.terminate()
        rc, _out, err = finish(p)
        raise AssertionError(f"{len(lines.read_text().splitlines())} lines; {err}")
    assert rc == 0, err
    metas = [json.loads(line)["metadata"] for line in lines.read_text().splitlines()]
    assert len(metas) == n
    assert "rx_ring_full 0" in err and "rx_dropped 0" in err, err   # every packet seen
    bare = [m for m in metas if m is None]
    assert len(bare) == n // 3
    seqs = [m["fields"]["seq"] for m in metas if m is not None]
    assert len(set(seqs)) == len(seqs) == n - n // 3            # no value ever repeats
    assert all(s % 3 != 0 for s in seqs)                         # seq = n + 1, n % 3 != 2
    assert f"{n // 3} packets without hints metadata" in err
