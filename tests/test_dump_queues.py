"""`dump --queue all` / `--queue 0,2`: one AF_XDP socket per queue in one XSKMAP; a
veth with 4 RX queues, flows from several source ports (veth delivers on the RX queue
matching the sender's TX queue, which the sender picks by the flow's skb hash)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from test_dump import finish, send_udp, start_dump, xdp_attached

pytestmark = pytest.mark.privileged
SRC_PORTS = tuple(range(41000, 41016))


def test_queue_all_sees_several_queues(veth_factory):
    pair = veth_factory(rx_queues=4)
    n = 5 * len(SRC_PORTS)
    p = start_dump(pair, "-d", pair.dev, "--queue", "all", "--count", str(n), "-j")
    send_udp(pair, 5, src_ports=SRC_PORTS)
    rc, out, err = finish(p)
    assert rc == 0, err
    pkts = [json.loads(line) for line in out.splitlines()]
    assert len(pkts) == n
    by_port = {}
    for pk in pkts:
        assert 0 <= pk["queue"] < 4 and pk["rx-hash"]["status"] == "ok"
        by_port.setdefault(pk["src-port"], set()).add(pk["queue"])
    assert all(len(qs) == 1 for qs in by_port.values())          # a flow stays on its queue
    queues = Counter(pk["queue"] for pk in pkts)
    assert len(queues) > 1, queues
    assert "queues 0,1,2,3" in err
    assert not xdp_attached(pair)


def test_queue_list_captures_only_those_queues(veth_factory):
    pair = veth_factory(rx_queues=4)
    p = start_dump(pair, "-d", pair.dev, "--queue", "0,2", "--quiet", "-j", "--duration", "3")
    send_udp(pair, 5, src_ports=SRC_PORTS)
    rc, out, err = finish(p)
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["queues"] == [0, 2]
    assert 0 < summary["packets"] < 5 * len(SRC_PORTS)   # the other queues' flows went on


def test_queue_list_out_of_range(veth_factory):
    pair = veth_factory(rx_queues=2)
    from test_dump import run_dump
    res = run_dump(pair, "-d", pair.dev, "--queue", "0,3")
    assert res.returncode == 5 and "xh0 has 2 active RX queues (0-1); queue 3 is not one of them" in res.stderr


# --- the active RX queue count: devices made the ordinary way ------------------------

def _plain_veth(pair):
    """A second veth pair made as users do, with no queue counts: IFLA_NUM_RX_QUEUES
    is the number of CPUs, one queue is active."""
    pair.run("ip", "link", "add", "pl0", "type", "veth", "peer", "name", "pl1")
    for dev, addr in (("pl0", "198.51.100.1/24"), ("pl1", "198.51.100.2/24")):
        pair.run("ip", "addr", "add", addr, "dev", dev)
        pair.run("ip", "link", "set", dev, "up")
    return "pl0"


def _ethtool_current(pair, dev):
    """{rx, tx, combined}: the current counts `ethtool -l` prints (n/a left out)."""
    out = pair.run("ethtool", "-l", dev).stdout.split("Current hardware settings:")[1]
    got = {}
    for line in out.splitlines():
        key, _, val = line.partition(":")
        if key.strip().lower() in ("rx", "tx", "combined") and val.strip() != "n/a":
            got[key.strip().lower()] = int(val)
    return got


def _show_queues(pair, dev):
    from conftest import xdphints

    r = xdphints("show", dev, "-j", ns=pair.ns)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["queues"]


def test_default_veth_active_queue_count(veth):
    from test_dump import run_dump

    dev = _plain_veth(veth)
    import os
    assert int(veth.run("cat", f"/sys/class/net/{dev}/queues/../ifindex").stdout) > 0
    links = json.loads(veth.run("ip", "-d", "-j", "link", "show", dev).stdout)
    assert links[0]["num_rx_queues"] == os.cpu_count()
    q = _show_queues(veth, dev)
    eth = _ethtool_current(veth, dev)
    assert {k: q[k] for k in eth} == eth == {"rx": 1, "tx": 1}
    assert q["active-rx"] == 1 and q["source"] == "channels"
    r = run_dump(veth, "-d", dev, "--queue", "1")
    assert r.returncode == 5, r.stderr
    assert r.stderr.strip() == ("xdphints: error: pl0 has 1 active RX queue (0); queue 1 is "
                                "not one of them")
    veth.run("sysctl", "-qw", "net.ipv6.conf.pl1.disable_ipv6=1")
    r = run_dump(veth, "-d", dev, "--queue", "all", "--duration", "0.5", "--quiet", "-j")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["queue"] == 0 and "queues" not in summary
    assert "queue 0" in r.stderr


def test_veth_after_ethtool_L(veth_factory):
    from test_dump import run_dump

    pair = veth_factory(rx_queues=4, tx_queues=4)
    pair.run("ethtool", "-L", pair.dev, "rx", "2")
    # veth does native XDP only with as many RX queues as its peer has TX queues
    pair.run_peer("ethtool", "-L", pair.peer, "tx", "2")
    assert _ethtool_current(pair, pair.dev)["rx"] == 2
    q = _show_queues(pair, pair.dev)
    assert q["rx"] == 2 and q["active-rx"] == 2
    r = run_dump(pair, "-d", pair.dev, "--queue", "2")
    assert r.returncode == 5 and "xh0 has 2 active RX queues (0-1)" in r.stderr, r.stderr
    pair.run_peer("sysctl", "-qw", f"net.ipv6.conf.{pair.peer}.disable_ipv6=1")
    r = run_dump(pair, "-d", pair.dev, "--queue", "all", "--duration", "0.5", "--quiet", "-j")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["queues"] == [0, 1]


MQ_TAP = """
import fcntl, os, struct, sys
fds = []
for _ in range(int(sys.argv[2])):
    fd = os.open('/dev/net/tun', os.O_RDWR)
    fcntl.ioctl(fd, 0x400454CA, struct.pack('16sH', sys.argv[1].encode(), 0x0002 | 0x1000 | 0x0100))
    fds.append(fd)
print('ready', flush=True)
sys.stdin.read()
"""


def test_multiqueue_tap_active_queue_count(veth):
    """A multi-queue tap is allocated 256 queues; those with a file open are active."""
    import subprocess
    import sys

    from test_dump import run_dump

    holder = subprocess.Popen(["ip", "netns", "exec", veth.ns, sys.executable, "-c", MQ_TAP,
                               "xhmq0", "3"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        veth.run("ip", "link", "set", "xhmq0", "up")
        links = json.loads(veth.run("ip", "-d", "-j", "link", "show", "xhmq0").stdout)
        assert links[0]["num_rx_queues"] == 256
        q = _show_queues(veth, "xhmq0")
        assert _ethtool_current(veth, "xhmq0") == {"combined": 3}
        assert q["combined"] == 3 and q["active-rx"] == 3 and "rx" not in q
        r = run_dump(veth, "-d", "xhmq0", "--queue", "3")
        assert r.returncode == 5, r.stderr
        assert "xhmq0 has 3 active RX queues (0-2); queue 3 is not one of them" in r.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
