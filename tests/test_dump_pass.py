"""`xdphints dump --pass` end to end on veth: packets reach the stack, the hints and
the stack's view come through a tcx program and a ring buffer."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import need_metadata_area, need_tool
from test_dump import SCHEMA_PATH, finish, send_udp, start_dump
from xdphints_cli.hints.program import COUNT_RECORDS

pytestmark = pytest.mark.privileged

RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(5)
n = 0
print('ready', flush=True)
try:
    while n < int(sys.argv[3]):
        s.recv(2048)
        n += 1
except socket.timeout:
    pass
print(n)
"""
TCP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
print('ready', flush=True)
s.settimeout(10)
c, _ = s.accept()
data = b''
while not data.endswith(b'end'):
    chunk = c.recv(65536)
    if not chunk:
        break
    data += chunk
c.sendall(data[::-1])
c.close()
"""
TCP_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
msg = b'x' * 100000 + b'end'
c.sendall(msg)
back = b''
while len(back) < len(msg):
    chunk = c.recv(65536)
    if not chunk:
        break
    back += chunk
print('ok' if back == msg[::-1] else 'bad %d' % len(back))
"""


def _in_ns(ns, *args):
    return ["ip", "netns", "exec", ns, sys.executable, *args]


def _receiver(pair, port, count):
    p = subprocess.Popen(_in_ns(pair.ns, "-c", RECEIVER, pair.addr, str(port), str(count)),
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


TRANSPORTS = ["metadata", "fingerprint"]


def _transport(name):
    """--transport NAME, skipping the metadata transport where the kernel refuses it."""
    if name == "metadata":
        need_metadata_area()
    return ("--transport", name)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pass_udp_socket_gets_every_datagram_and_hashes_agree(veth, transport):
    import jsonschema

    with open(SCHEMA_PATH) as f:
        validator = jsonschema.Draft202012Validator(json.load(f))
    per_flow, ports = 20, (40000, 40001, 40002)
    total = per_flow * len(ports)
    rx = _receiver(veth, 9999, total)
    p = start_dump(veth, "-d", veth.dev, "--queue", "all", "--pass", "--match", "udp:9999",
                   "--count", str(total), "-j", "--hex", *_transport(transport))
    send_udp(veth, per_flow, src_ports=ports, port=9999)
    rc, out, err = finish(p)
    assert rc == 0, err
    assert int(rx.communicate(timeout=30)[0].split()[-1]) == total   # the stack got them all
    pkts = [json.loads(line) for line in out.splitlines()]
    assert len(pkts) == total
    by_flow = {}
    for pk in pkts:
        validator.validate(pk)
        assert pk["rx-hash"]["status"] == "ok"
        assert pk["stack"]["hash"] == pk["rx-hash"]["hash"]
        assert pk["stack"]["vlan-present"] is False
        assert pk["queue"] == 0 and len(pk["data"]) == 2 * 74
        by_flow.setdefault(pk["src-port"], set()).add(pk["rx-hash"]["hash"])
    assert set(by_flow) == set(ports)
    assert all(len(h) == 1 for h in by_flow.values())
    assert len({next(iter(h)) for h in by_flow.values()}) == len(ports)
    assert f"{total} records, 0 records dropped" in err


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pass_ping_and_tcp_keep_working(veth, transport):
    p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--pass", "--quiet", "-j",
                   *_transport(transport))
    try:
        ping = veth.run_peer("ping", "-c", "3", "-i", "0.2", "-W", "2", veth.addr, check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        srv = subprocess.Popen(_in_ns(veth.ns, "-c", TCP_SERVER, veth.addr, "7777"),
                               stdout=subprocess.PIPE, text=True)
        assert srv.stdout.readline().strip() == "ready"
        cli = veth.run_peer(sys.executable, "-c", TCP_CLIENT, veth.addr, "7777")
        assert cli.stdout.strip() == "ok"
        srv.wait(10)
    finally:
        p.send_signal(signal.SIGINT)
    rc, out, err = finish(p)
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["pass"]["records"] >= 3 + 10      # the pings and the TCP segments
    assert summary["pass"]["records"] == summary["packets"]
    assert summary["transport"]["name"] == transport


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pass_kill9_leaves_neither_program(veth, transport):
    bpftool = need_tool("bpftool")
    p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--pass", *_transport(transport))
    line = p.stderr.readline()
    m = re.search(r"XDP program id (\d+).*tcx program id (\d+)", line)
    assert m, line
    ids = m.groups()
    p.kill()
    p.wait(10)
    assert "prog/xdp" not in veth.run("ip", "link", "show", veth.dev).stdout
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [i for i in ids
                 if subprocess.run([bpftool, "prog", "show", "id", i], capture_output=True).returncode == 0]
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, f"programs still loaded: {alive}"   # so neither is attached either


def test_pass_ring_overflow_is_counted_not_hidden(veth):
    """dump stopped (SIGSTOP) while packets arrive: the ring fills, records are
    dropped and counted; every packet still reaches the stack."""
    n = 30000
    p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--pass", "--match", "udp:9999",
                   "--quiet", "-j")
    p.send_signal(signal.SIGSTOP)
    try:
        send_udp(veth, n, port=9999)
    finally:
        p.send_signal(signal.SIGCONT)
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    rc, out, err = finish(p)
    assert rc == 0, err
    s = json.loads(out)
    c = s["pass"]
    assert c["marked"] == n
    assert c["ring-dropped"] > 0
    assert c["records"] + c["ring-dropped"] == n
    assert s["packets"] == c["records"]


@pytest.mark.parametrize("args,message", [
    (("--pass", "--transport", "headroom"), "--transport headroom changes the frame"),
    (("--pass", "--transport", "tail"), "--transport tail changes the frame"),
    (("--transport", "fingerprint"), "--transport fingerprint is for --pass"),
    (("--attached", "--transport", "metadata"), "--transport cannot be used with --attached"),
    (("--transport", "nowhere"), "'nowhere' is not one of"),
])
def test_transport_that_cannot_apply_is_a_usage_error(veth, args, message):
    from conftest import xdphints

    res = xdphints("dump", "-d", veth.dev, "--queue", "0", *args, ns=veth.ns)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2 and "Traceback" not in res.stderr


def test_pass_with_attached_is_a_usage_error(veth):
    from conftest import xdphints

    res = xdphints("dump", "-d", veth.dev, "--queue", "0", "--pass", "--attached", ns=veth.ns)
    assert res.returncode == 2
    assert "--pass cannot be used with --attached" in res.stderr


def _fake_marked(cap, n):
    """Set COUNT_MARKED as a driver that loses the metadata area on the way to the
    stack leaves it (veth keeps it, so the XDP program's own count is overwritten)."""
    import struct as st

    from xdphints_cli.bpf import percpu
    from xdphints_cli.hints.program import COUNT_MARKED

    ncpu = percpu.possible_cpus()
    cap.counters.value_size = 8 * ncpu       # a per-CPU update takes every CPU's value
    cap.counters.update(st.pack("=I", COUNT_MARKED), st.pack(f"={ncpu}Q", n, *[0] * (ncpu - 1)))


def _open_pass(veth, transport, warnings):
    from xdphints_cli.hints import capture
    from xdphints_cli.hints.pass_capture import PassCapture

    target = capture.resolve_target(veth.dev, None, warnings.append)
    return PassCapture(target, None, 128, warn=warnings.append, transport=transport)


def test_metadata_that_never_reaches_tc_moves_auto_to_fingerprints(veth):
    """Packets marked by XDP, none seen by tc (counters set as such a driver leaves
    them): auto replaces both programs with the fingerprint transport's and says why;
    the packets sent afterwards come through it."""
    from xdphints_cli.process import netns
    from xdphints_cli.hints import transport as T
    from xdphints_cli.hints.pass_capture import MARKED_PROBE

    need_metadata_area()
    warnings = []
    with netns.inside(veth.ns), _open_pass(veth, "auto", warnings) as cap:
        assert cap.transport is T.METADATA
        old = (cap.prog_id, cap.tc_prog_id)
        cap._check()
        assert cap.transport is T.METADATA and not warnings
        _fake_marked(cap, MARKED_PROBE)
        cap._check()
        assert cap.transport is T.FINGERPRINT
        assert (cap.prog_id, cap.tc_prog_id) != old and all(old)
        assert f"{veth.dev} (driver veth) does not reach tc" in warnings[-1]
        assert "switched to the fingerprint transport" in warnings[-1]
        assert "does not reach tc" in cap.transport_json()["failed"][0]
        send_udp(veth, 5)
        recs = [r for b in cap.batches(count=5, duration=10) for r in cap.decode(b)]
    assert len(recs) == 5 and all(r.hints["rx-hash"].status == "ok" for r in recs)
    assert cap.counts[COUNT_RECORDS] == 5


def test_forced_metadata_that_never_reaches_tc_is_exit_3_naming_the_driver(veth):
    from xdphints_cli.process import netns
    from xdphints_cli.errors import EXIT_UNSUPPORTED, NotSupportedError
    from xdphints_cli.hints.pass_capture import MARKED_PROBE

    need_metadata_area()
    with netns.inside(veth.ns), _open_pass(veth, "metadata", []) as cap:
        _fake_marked(cap, MARKED_PROBE)
        with pytest.raises(NotSupportedError) as ei:
            cap._check()
    assert ei.value.exit_code == EXIT_UNSUPPORTED
    assert f"{veth.dev} (driver veth) does not reach tc" in str(ei.value)
    assert "--transport metadata" in str(ei.value)


def test_pass_reads_the_ring_across_its_wrap(veth):
    """More records than the 4 MiB ring holds pass through it while dump reads: each
    one decodes (every rx-hash ok, as many as records), none is lost without a count."""
    n = 40000
    p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--pass", "--match", "udp:9999",
                   "--quiet", "-j")
    send_udp(veth, n, src_ports=(40000, 40001), port=9999)
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    rc, out, err = finish(p)
    assert rc == 0, err
    s = json.loads(out)
    c = s["pass"]
    assert c["marked"] == 2 * n and c["records"] + c["ring-dropped"] == 2 * n
    assert c["records"] * (88 + 128 + 8) > 4 << 20          # more than one lap of the ring
    assert s["hints"]["rx-hash"] == {"ok": c["records"]}
    assert s["hints"]["rx-vlan"] == {"ENODATA": c["records"]}


def test_pass_queue_filter_and_queue_key(veth_factory):
    """--queue with --pass filters in the XDP program; each record carries the queue
    the XDP program ran on; veth leaves the sender's TX queue, the same number, in
    skb->queue_mapping (no +1: it does not record an RX queue)."""
    from test_dump_queues import SRC_PORTS

    pair = veth_factory(rx_queues=4)
    n = 5 * len(SRC_PORTS)
    p = start_dump(pair, "-d", pair.dev, "--queue", "all", "--pass", "--match", "udp",
                   "--count", str(n), "-j")
    send_udp(pair, 5, src_ports=SRC_PORTS)
    rc, out, err = finish(p)
    assert rc == 0, err
    pkts = [json.loads(line) for line in out.splitlines()]
    by_port = {}
    for pk in pkts:
        by_port.setdefault(pk["src-port"], set()).add(pk["queue"])
        assert pk["stack"]["queue-mapping"] == pk["queue"]
    assert all(len(qs) == 1 for qs in by_port.values())
    queues = {next(iter(qs)) for qs in by_port.values()}
    assert len(queues) > 1, queues
    wanted = sorted(queues)[:1]

    p = start_dump(pair, "-d", pair.dev, "--queue", str(wanted[0]), "--pass", "--match", "udp",
                   "--duration", "3", "-j")
    send_udp(pair, 5, src_ports=SRC_PORTS)
    rc, out, err = finish(p)
    assert rc == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    assert got and {pk["queue"] for pk in got} == set(wanted)
    assert len(got) == 5 * sum(1 for qs in by_port.values() if qs == set(wanted))
