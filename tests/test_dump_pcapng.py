"""`dump -w FILE`: a pcapng file tshark reads back: count, ports, queue, RX hash
option and the hints comment."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import need_tool

from test_dump import finish, send_udp, start_dump

pytestmark = pytest.mark.privileged


def tshark_fields(path, *fields):
    cmd = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [line.split("\t") for line in res.stdout.splitlines()]


def test_pcapng_reads_back_in_tshark(veth_factory, tmp_path):
    need_tool("tshark")
    pair = veth_factory(rx_queues=2)
    path = tmp_path / "cap.pcapng"
    p = start_dump(pair, "-d", pair.dev, "--queue", "all", "--count", "12", "-w", str(path))
    send_udp(pair, 3, src_ports=(40000, 40001, 40002, 40003), port=9999)
    rc, out, err = finish(p)
    assert rc == 0, err
    assert out == ""                                        # -w: no per-packet output
    rows = tshark_fields(path, "udp.srcport", "udp.dstport", "frame.interface_queue",
                         "frame.comment", "frame.len", "frame.interface_name")
    assert len(rows) == 12
    by_port = {}
    for sport, dport, queue, comment, flen, ifname in rows:
        assert dport == "9999" and ifname == pair.dev and flen == "74"
        assert queue in ("0", "1")
        by_port.setdefault(sport, set()).add(queue)
        assert comment.startswith("btf-id ") and "rx-hash 0x" in comment
        assert "rx-timestamp none" in comment and "rx-vlan ENODATA" in comment
    assert sorted(by_port) == ["40000", "40001", "40002", "40003"]
    assert all(len(q) == 1 for q in by_port.values())
    # the EPB hash option holds the same hash as the comment
    pkts = json.loads(subprocess.run(["tshark", "-r", str(path), "-T", "json"], capture_output=True,
                                     text=True, timeout=60).stdout)
    raw = json.dumps(pkts[0])
    comment = rows[0][3]
    h = comment.split("rx-hash 0x", 1)[1].split()[0]
    assert h.lower() in raw.lower().replace(":", ""), raw[:2000]


def test_pcapng_unwritable_path(veth):
    from test_dump import run_dump
    res = run_dump(veth, "-d", veth.dev, "--queue", "0", "--count", "1", "-w", "/nonexistent/x.pcapng")
    assert res.returncode != 0 and "cannot create /nonexistent/x.pcapng" in res.stderr
