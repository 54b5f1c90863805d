"""dump tells, once each, of changes to the device's hints config made under it
(the tcpdump scenario: another process turns something off while packets flow)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from test_dump import finish, send_udp, start_dump

pytestmark = pytest.mark.privileged

FLOOD = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    s.sendto(b'x' * 32, (sys.argv[1], 9999))
    time.sleep(0.002)
"""


def wait_for(p, pattern: str, seen: list, limit: float = 20.0) -> bool:
    """Read dump's stderr until a line matches `pattern` (a bound for a broken build,
    not a timing assertion); what was read is kept in `seen`."""
    fd = p.stderr.fileno()
    os.set_blocking(fd, False)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if any(re.search(pattern, line) for line in "".join(seen).splitlines()):
            return True
        select.select([fd], [], [], 0.2)
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            return False
        seen.append(chunk.decode())
    return False


def test_dump_warns_once_per_change_when_rx_vlan_is_turned_off_under_it(veth):
    p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--quiet", "-j")
    flood = subprocess.Popen(["ip", "netns", "exec", veth.peer_ns, sys.executable, "-c", FLOOD, veth.addr, "60"])
    try:
        seen: list = []
        veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
        assert wait_for(p, "rx-vlan-hw-parse was turned off", seen), seen
        veth.run("ethtool", "-K", veth.dev, "rx-checksum", "off")      # no hint depends on it
        veth.run("ethtool", "-K", veth.dev, "rxvlan", "on")
        assert wait_for(p, "rx-vlan-hw-parse was turned on", seen), seen
    finally:
        flood.kill()
        flood.wait()
    p.send_signal(signal.SIGINT)
    wait_for(p, r"^$never", seen, limit=30)     # the rest of stderr, to its end
    out = p.stdout.read()
    rc = p.wait(timeout=30)
    p.stdout.close()
    p.stderr.close()
    err = "".join(seen)
    assert rc == 0, err
    offs = [line for line in err.splitlines() if "rx-vlan-hw-parse was turned off" in line]
    ons = [line for line in err.splitlines() if "rx-vlan-hw-parse was turned on" in line]
    assert len(offs) == 1 and len(ons) == 1, err
    assert "rx-checksum" not in err
    m = re.match(r"xdphints: warning: \d\d:\d\d:\d\d\.\d{6}, after (\d+) packets: rx-vlan-hw-parse was turned off "
                 rf"on {veth.dev} \(the rx-vlan hint depends on it", offs[0])
    assert m, offs[0]
    summary = json.loads(out)
    changes = summary["config-changes"]
    assert [c["changed"] for c in changes] == [{"rx-vlan-hw-parse": False}, {"rx-vlan-hw-parse": True}]
    assert [c["event"] for c in changes] == ["features", "features"]
    assert changes[0]["packets"] == int(m.group(1))
    assert changes[0]["packets"] <= changes[1]["packets"] <= summary["packets"]
    assert summary["packets"] > changes[0]["packets"]      # packets kept flowing after the change
    assert re.fullmatch(r"\d+\.\d{9}", changes[0]["time"])


def test_no_change_no_notice(veth):
    p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--count", "5", "--quiet", "-j")
    send_udp(veth, 5)
    rc, out, err = finish(p)
    assert rc == 0, err
    assert json.loads(out)["config-changes"] == []
    assert "changed" not in err
