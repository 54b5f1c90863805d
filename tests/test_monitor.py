"""`xdphints monitor`: changes made by other processes in a throwaway namespace show as
lines (JSON lines with -j) with the hints' readiness after them."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time

import pytest

from conftest import NO_CAPS, REPO_ROOT, unique_name, xdphints
from event_helpers import build_hints_pass

pytestmark = pytest.mark.privileged


class Monitor:
    """`xdphints monitor ARGS` running in a namespace; lines() reads what it printed."""

    def __init__(self, ns: str, *args: str, with_n: bool = False, unprivileged: bool = False):
        env = dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT)
        env.pop("XDPHINTS_DEV", None)
        cmd = (NO_CAPS if unprivileged else []) + [sys.executable, "-m", "xdphints_cli", "monitor", *args]
        cmd = cmd + ["-n", ns] if with_n else ["ip", "netns", "exec", ns] + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self._buf = b""
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.ns = ns
        self.seen: list = []

    def ready(self, dev=None) -> None:
        """Wait until the monitor has read its baseline: a change made before that would
        be part of it. It is ready once it answers an event: a throwaway link's, or
        for a monitor of one device, that device going down and up."""
        probe = unique_name("mr")[:15]
        deadline = time.monotonic() + 30
        ip = ["ip", "netns", "exec", self.ns, "ip", "link"]
        while time.monotonic() < deadline and self.proc.poll() is None:
            if dev is None:
                subprocess.run(ip + ["add", probe, "type", "veth", "peer", "name", probe[:-1] + "Q"],
                               capture_output=True)
                subprocess.run(ip + ["del", probe], capture_output=True)
                if self.until(lambda line: probe in line, limit=1.0, keep=False):
                    return
            else:
                subprocess.run(ip + ["set", dev, "down"], capture_output=True)
                subprocess.run(ip + ["set", dev, "up"], capture_output=True)
                if self.until(lambda line: '"up"' in line or f"{dev}: up" in line, limit=1.0, keep=False):
                    return
        err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
        pytest.fail(f"monitor never reported its probe: {err}")

    def until(self, match, limit: float = 10.0, keep: bool = True):
        """The first new line that match(line) accepts; None after `limit` seconds (a
        bound for a broken build, not a timing assertion)."""
        deadline = time.monotonic() + limit
        while True:
            while b"\n" in self._buf:      # lines already read come first
                raw, self._buf = self._buf.split(b"\n", 1)
                line = raw.decode() + "\n"
                if keep:
                    self.seen.append(line)
                if match(line):
                    return line
            left = deadline - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                return None
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                return None
            self._buf += data

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=30)
        self.seen.extend((self._buf + out).decode().splitlines(keepends=True))
        return self.proc.returncode, err.decode()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def monitor_in(veth):
    started = []

    def start(*args: str, **kw) -> Monitor:
        m = Monitor(veth.ns, *args, **kw)
        started.append(m)
        m.ready(veth.dev if veth.dev in args else None)
        return m

    try:
        yield start
    finally:
        for m in started:
            m.kill()


def js(line):
    return json.loads(line) if line else None


def test_offload_change_by_ethtool_with_readiness_as_check_says(veth, monitor_in):
    m = monitor_in("-j")
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    got = js(m.until(lambda line: '"features"' in line and f'"{veth.dev}"' in line))
    assert got is not None, m.seen
    assert got["changed"] == {"rx-vlan-hw-parse": False} and got["via"] == "ethtool"
    check = json.loads(xdphints("-j", "check", "-d", veth.dev, ns=veth.ns).stdout)
    assert got["hints"] == check["hints"]
    assert got["hints"]["rx-vlan"]["state"] == "needs-enable"
    rc, err = m.stop()
    assert (rc, err) == (0, "")


def test_link_add_rename_down_delete(veth, monitor_in):
    m = monitor_in("-j")
    a, peer, renamed = unique_name("la")[:15], unique_name("lp")[:15], unique_name("lr")[:15]
    veth.run("ip", "link", "add", a, "type", "veth", "peer", "name", peer)
    veth.run("ip", "link", "set", a, "name", renamed)
    veth.run("ip", "link", "set", veth.dev, "down")
    veth.run("ip", "link", "del", renamed)
    assert m.until(lambda line: js(line)["event"] == "link-del" and js(line)["ifname"] == renamed), m.seen
    lines = [js(line) for line in m.seen]
    added = next(e for e in lines if e["event"] == "link-new" and e["ifname"] == a)
    assert added["up"] is False       # its readiness only if it was still there when read: it is deleted below
    (ren,) = [e for e in lines if e["event"] == "rename"]
    assert (ren["ifname"], ren["old-name"]) == (renamed, a)
    down = next(e for e in lines if e["event"] == "down" and e["ifname"] == veth.dev)
    assert down["admin-up"] is False and set(down["hints"]) == {"rx-timestamp", "rx-hash", "rx-vlan"}
    gone = next(e for e in lines if e["event"] == "link-del" and e["ifname"] == renamed)
    assert "hints" not in gone
    assert m.stop(signal.SIGINT)[0] == 0


def test_xdp_attach_names_program_and_hints_struct(veth, monitor_in, tmp_path):
    obj = build_hints_pass(tmp_path)
    m = monitor_in("-j", veth.dev)
    veth.run("ip", "link", "set", "dev", veth.dev, "xdpdrv", "obj", obj, "sec", "xdp")
    got = js(m.until(lambda line: js(line)["event"] == "xdp"))
    assert got is not None, m.seen
    shown = json.loads(xdphints("-j", "show", veth.dev, ns=veth.ns).stdout)["xdp"]["programs"]
    assert got["action"] == "attach" and got["programs"] == shown
    (prog,) = got["programs"]
    assert prog["name"] == "hints_pass"
    (hs,) = prog["hints-structs"]
    assert hs["name"] == "xdp_hints_monitor" and hs["btf-id"] > 0
    veth.run("ip", "link", "set", "dev", veth.dev, "xdpdrv", "off")
    got = js(m.until(lambda line: js(line)["event"] == "xdp"))
    assert got["action"] == "detach" and got["previous"] == [{"mode": "drv", "id": prog["id"]}]
    assert got["programs"] == []


def test_text_lines_for_one_device_only(veth, monitor_in, tmp_path):
    obj = build_hints_pass(tmp_path)
    m = monitor_in(veth.dev)
    other = unique_name("oo")[:15]
    veth.run("ip", "link", "add", other, "type", "veth", "peer", "name", unique_name("op")[:15])
    veth.run("ip", "link", "set", other, "down")
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    line = m.until(lambda line: "offloads" in line)
    assert line is not None, m.seen
    assert f" {veth.dev}: offloads: rx-vlan-hw-parse off; hints: " in line
    assert "rx-vlan needs-enable" in line
    veth.run("ip", "link", "set", "dev", veth.dev, "xdpdrv", "obj", obj, "sec", "xdp")
    line = m.until(lambda line: "xdp attach" in line)
    assert line is not None and "name hints_pass" in line and "hints xdp_hints_monitor (btf-id " in line
    m.stop()
    assert not any(other in line for line in m.seen), m.seen


def test_namespace_given_with_n(veth, monitor_in):
    """Started in the root namespace with -n: the events are the namespace's."""
    m = monitor_in("-j", veth.dev, with_n=True)
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    got = js(m.until(lambda line: js(line)["event"] == "features"))
    assert got is not None and got["ifname"] == veth.dev and got["changed"] == {"rx-vlan-hw-parse": False}
    assert got["hints"]["rx-vlan"]["fix"].startswith(f"xdphints -n {veth.ns} enable rx-vlan")
    assert m.stop()[0] == 0


def test_without_capabilities(veth, monitor_in, tmp_path):
    """No capability at all: the events and readiness still come; a program is named
    by its id only (its details need CAP_SYS_ADMIN, as for show)."""
    obj = build_hints_pass(tmp_path)
    m = monitor_in("-j", veth.dev, unprivileged=True)
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    veth.run("ip", "link", "set", "dev", veth.dev, "xdpdrv", "obj", obj, "sec", "xdp")
    got = js(m.until(lambda line: js(line)["event"] == "xdp"))
    assert got is not None, m.seen
    (prog,) = got["programs"]
    assert set(prog) == {"id", "mode"}
    assert any(js(line)["event"] == "features" for line in m.seen)
    assert got["hints"]["rx-vlan"]["state"] == "needs-enable"
    assert m.stop()[0] == 0


def test_reader_gone_ends_it_quietly(veth, monitor_in):
    m = monitor_in()
    m.proc.stdout.close()
    m.sel.close()
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    assert m.proc.wait(timeout=30) == 141
    assert m.proc.stderr.read() == b""


def test_bad_use(veth):
    assert xdphints("monitor", "nosuch0", ns=veth.ns).returncode == 5
    res = xdphints("monitor", "--interval", "0", ns=veth.ns)
    assert res.returncode == 2 and "--interval" in res.stderr
    res = xdphints("monitor", veth.dev, "-d", "other0", ns=veth.ns)
    assert res.returncode == 2
