"""`dump --match/--sample`: the program redirects only what was asked for; ARP, ping
and an unrelated TCP connection keep working while dump runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from test_dump import _env, finish, send_udp, start_dump, xdp_attached

pytestmark = pytest.mark.privileged

PING = """
import socket, struct, sys
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); r.settimeout(5)
for seq in range(3):
    body = struct.pack('!BBHHH', 8, 0, 0, 77, seq) + b'pingpong'
    r.sendto(body[:2] + struct.pack('!H', csum(body)) + body[4:], (sys.argv[1], 0))
    while True:
        d = r.recv(200)
        if d[20] == 0 and struct.unpack('!HH', d[24:28]) == (77, seq):
            break
print('ping ok')
"""
ECHO_SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 5555)); s.listen(1); print('ready', flush=True)
c, _ = s.accept()
while True:
    d = c.recv(100)
    if not d:
        break
    c.sendall(d)
"""
ECHO_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 5555), timeout=10)
for i in range(5):
    c.sendall(b'hello%d' % i)
    assert c.recv(100) == b'hello%d' % i
c.close(); print('echo ok')
"""


def test_ping_and_tcp_keep_working_and_only_the_port_is_seen(veth):
    veth.run("ip", "neigh", "flush", "dev", veth.dev)
    veth.run_peer("ip", "neigh", "flush", "dev", veth.peer)
    server = subprocess.Popen(["ip", "netns", "exec", veth.ns, sys.executable, "-c", ECHO_SERVER],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--match", "udp:9999",
                       "--count", "10", "-j")
        ping = veth.run_peer(sys.executable, "-c", PING, veth.addr, check=False)
        assert ping.stdout.strip() == "ping ok", ping.stderr          # ARP and ICMP passed on
        echo = veth.run_peer(sys.executable, "-c", ECHO_CLIENT, veth.addr, check=False)
        assert echo.stdout.strip() == "echo ok", echo.stderr
        send_udp(veth, 10, port=9998)
        send_udp(veth, 10, port=9999)
        rc, out, err = finish(p)
        assert rc == 0, err
        pkts = [json.loads(line) for line in out.splitlines()]
        assert len(pkts) == 10
        assert all(pk["dst-port"] == 9999 and pk["ip-proto"] == "UDP" for pk in pkts)
        assert "match udp:9999" in err
    finally:
        server.kill()
        server.wait()


def test_sample_sees_about_a_tenth(veth):
    p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--match", "udp:9999", "--sample", "10",
                   "--quiet", "-j")
    send_udp(veth, 1000, port=9999)
    time.sleep(1)                                # let the ring drain (no timing assertion)
    p.send_signal(signal.SIGINT)
    rc, out, err = finish(p)
    assert rc == 0, err
    summary = json.loads(out)
    assert 50 <= summary["packets"] <= 200, summary
    assert not xdp_attached(veth)


def test_bad_match_is_a_usage_error():
    for args in (["--match", "foo"], ["--match", "ip:80"], ["--sample", "0"]):
        res = subprocess.run([sys.executable, "-m", "xdphints_cli", "dump", "--queue", "0", *args],
                             capture_output=True, text=True, env=_env(), timeout=60)
        assert res.returncode == 2, (args, res.stderr)
