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
    assert res.returncode == 5 and "queue 3 does not exist" in res.stderr
