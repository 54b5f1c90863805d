"""`xdphints apply` and `apply --watch` on veth pairs in throwaway namespaces, checked
with `ethtool -k` (a peer tool). veth has rx-vlan-hw-parse (changeable), rx-hashing
off [fixed] (check calls rx-hash ready) and no hardware timestamping (unsupported)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO_ROOT, sh, unique_name, xdphints

pytestmark = pytest.mark.privileged


def rxvlan(ns: str, dev: str) -> str:
    out = sh("ethtool", "-k", dev, ns=ns).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.startswith("rx-vlan-offload:"))


def ethtool_k(ns: str, dev: str) -> str:
    return sh("ethtool", "-k", dev, ns=ns).stdout


def hints_file(tmp_path, text: str, name: str = "hints.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def wait_for(predicate, deadline_s: float, what: str):
    """Poll until `predicate()` is true; the deadline is the issue's stated bound."""
    end = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s} s: {what}")
        time.sleep(0.05)


def add_veth(ns: str, name: str, peer: str) -> None:
    sh("ip", "-n", ns, "link", "add", name, "numrxqueues", "1", "numtxqueues", "1", "type", "veth",
       "peer", "name", peer, "numrxqueues", "1", "numtxqueues", "1")


def no_caps_in(ns: str, *args: str) -> subprocess.CompletedProcess:
    """The CLI inside namespace `ns` as root without any capability."""
    return subprocess.run(["ip", "netns", "exec", ns, "setpriv", "--inh-caps=-all", "--bounding-set=-all",
                           sys.executable, "-m", "xdphints_cli", *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT, NO_COLOR="1"), timeout=120)


# --- apply --------------------------------------------------------------------

def test_apply_converges_and_is_idempotent(veth, tmp_path):
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    path = hints_file(tmp_path, f'[device.{veth.dev}]\nhints = ["rx-vlan", "rx-hash"]\n')
    res = xdphints("-n", veth.ns, "apply", path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == f"{veth.dev}: changed (device.{veth.dev})"
    assert f"{veth.dev}: rx-vlan       ready (was needs-enable): rx-vlan-hw-parse off -> on" in res.stdout
    assert rxvlan(veth.ns, veth.dev) == "on"
    before = ethtool_k(veth.ns, veth.dev)
    again = xdphints("-n", veth.ns, "apply", path, "-j")
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    (dev,) = doc["devices"]
    assert dev["ifname"] == veth.dev and dev["ifindex"] == veth.ifindex()
    assert dev["status"] == "unchanged" and dev["changed"] is False
    assert {h: (v["before"], v["after"]) for h, v in dev["hints"].items()} == \
        {"rx-hash": ("ready", "ready"), "rx-vlan": ("ready", "ready")}
    assert ethtool_k(veth.ns, veth.dev) == before



@pytest.mark.parametrize("stdout,code,why", [("closed", 1, "Bad file descriptor (EBADF)"),
                                             ("full", 1, "No space left on device (ENOSPC)"),
                                             ("reader gone", 141, "Broken pipe (EPIPE)")])
def test_a_report_that_cannot_be_written_undoes_every_change(veth, tmp_path, stdout, code, why):
    """As enable's, apply's report is part of the change: the exit code never says
    "failed" of devices left changed (two devices, both put back)."""
    add_veth(veth.ns, "xw0", "xw1")
    for dev in (veth.dev, "xw0"):
        sh("ip", "-n", veth.ns, "link", "set", dev, "up")
        veth.run("ethtool", "-K", dev, "rxvlan", "off")
    path = hints_file(tmp_path, f'[device.{veth.dev}]\nhints = ["rx-vlan"]\n[device.xw0]\nhints = ["rx-vlan"]\n')
    cmd = ["ip", "netns", "exec", veth.ns, sys.executable, "-m", "xdphints_cli", "apply", path]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, NO_COLOR="1")
    if stdout == "closed":
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                           preexec_fn=lambda: os.close(1))
    elif stdout == "full":
        with open("/dev/full", "w") as full:
            p = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, env=env)
    else:
        r, w = os.pipe()
        os.close(r)                     # the reader is gone before anything is written
        p = subprocess.run(cmd, stdout=w, stderr=subprocess.PIPE, text=True, env=env)
        os.close(w)
    assert p.returncode == code, p.stderr
    assert f"cannot write to stdout: {why}" in p.stderr and p.stderr.count("restored rx-vlan to off") == 2
    assert rxvlan(veth.ns, veth.dev) == "off" and rxvlan(veth.ns, "xw0") == "off"
    # written, the change stands
    res = xdphints("-n", veth.ns, "apply", path)
    assert res.returncode == 0 and rxvlan(veth.ns, veth.dev) == "on" and rxvlan(veth.ns, "xw0") == "on"

def test_check_changes_nothing(veth, tmp_path):
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    path = hints_file(tmp_path, '[driver.veth]\nhints = ["rx-vlan"]\n')
    before = ethtool_k(veth.ns, veth.dev)
    res = xdphints("-n", veth.ns, "apply", "--check", path, "-j")
    assert res.returncode == 6, res.stderr
    (dev,) = json.loads(res.stdout)["devices"]
    assert dev["status"] == "would-change" and dev["sections"] == ["driver.veth"]
    assert dev["hints"]["rx-vlan"]["after"] == "needs-enable"
    assert ethtool_k(veth.ns, veth.dev) == before
    # without any capability too: planning only reads
    res = no_caps_in(veth.ns, "apply", "--check", path)
    assert res.returncode == 6 and "would-change" in res.stdout, res.stderr
    assert ethtool_k(veth.ns, veth.dev) == before
    assert xdphints("-n", veth.ns, "apply", path).returncode == 0
    res = xdphints("-n", veth.ns, "apply", "--check", path)
    assert res.returncode == 0 and res.stdout.startswith(f"{veth.dev}: unchanged (driver.veth)")


def test_a_bad_file_changes_nothing(veth, tmp_path):
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    before = ethtool_k(veth.ns, veth.dev)
    # the first table is good and would change the device: the file is refused whole
    path = hints_file(tmp_path, f'[device.{veth.dev}]\nhints = ["rx-vlan"]\n[device.other]\nhints = ["rx-vlam"]\n')
    res = xdphints("-n", veth.ns, "apply", path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == f"xdphints: error: {path}:4: device.other.hints: unknown hint 'rx-vlam'; hints: " \
                         "rx-timestamp, rx-hash, rx-vlan\n"
    assert ethtool_k(veth.ns, veth.dev) == before


def test_unsupported_absent_and_the_others_still_converge(veth, tmp_path):
    """rx-timestamp is unsupported on veth: that device is left as it was (all or
    nothing), another device still converges, an absent one is reported; the exit
    code is the worst: 3."""
    add_veth(veth.ns, "xo0", "xo1")
    for dev in (veth.dev, "xo0"):
        veth.run("ethtool", "-K", dev, "rxvlan", "off")
    path = hints_file(tmp_path, f'[device.{veth.dev}]\nhints = ["rx-vlan", "rx-timestamp"]\n'
                                '[device.xo0]\nhints = ["rx-vlan"]\n[device.gone0]\nhints = ["rx-vlan"]\n')
    res = xdphints("-n", veth.ns, "apply", path, "-j")
    assert res.returncode == 3, res.stderr
    devs = {d["ifname"]: d for d in json.loads(res.stdout)["devices"]}
    assert devs[veth.dev]["status"] == "unsupported" and devs[veth.dev]["exit-code"] == 3
    assert "rx-timestamp" in devs[veth.dev]["error"]
    assert devs["xo0"]["status"] == "changed" and devs["gone0"]["status"] == "absent"
    assert rxvlan(veth.ns, veth.dev) == "off" and rxvlan(veth.ns, "xo0") == "on"
    assert f"xdphints: error: {veth.dev}: rx-timestamp: unsupported" in res.stderr
    # without the unsupported device: the absent one decides, 5
    path = hints_file(tmp_path, '[device.xo0]\nhints = ["rx-vlan"]\n[device.gone0]\nhints = ["rx-vlan"]\n', "b.toml")
    res = xdphints("-n", veth.ns, "apply", path)
    assert res.returncode == 5 and "gone0: absent (device.gone0)" in res.stdout


def test_device_names_with_metacharacters(veth, tmp_path):
    name = "x$(id);\x1b`"
    sh("ip", "-n", veth.ns, "link", "add", name, "numrxqueues", "1", "numtxqueues", "1", "type", "veth",
       "peer", "name", "xm1", "numrxqueues", "1", "numtxqueues", "1")
    veth.run("ethtool", "-K", name, "rxvlan", "off")
    path = hints_file(tmp_path, '[device."x$(id);\\u001b`"]\nhints = ["rx-vlan"]\n')
    res = xdphints("-n", veth.ns, "apply", path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == 'x$(id);\\x1b`: changed (device."x$(id);\\u001b`")'
    assert "\x1b" not in res.stdout and rxvlan(veth.ns, name) == "on"
    assert json.loads(xdphints("-n", veth.ns, "apply", path, "-j").stdout)["devices"][0]["ifname"] == name


def test_unprivileged_apply_is_refused_before_a_change(veth, tmp_path):
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    path = hints_file(tmp_path, f'[device.{veth.dev}]\nhints = ["rx-vlan"]\n')
    res = xdphints("-n", veth.ns, "apply", path, unprivileged=True)
    # entering the namespace needs CAP_SYS_ADMIN; inside it, CAP_NET_ADMIN
    assert res.returncode == 4, res.stderr
    res = no_caps_in(veth.ns, "apply", path)
    assert res.returncode == 4 and "not permitted" in res.stderr and "CAP_NET_ADMIN" in res.stderr, res.stderr
    assert rxvlan(veth.ns, veth.dev) == "off"


# --- apply --watch -------------------------------------------------------------

class Watcher:
    """`apply --watch -j` in the namespace, its JSON lines collected as they come."""

    def __init__(self, ns: str, path: str):
        env = dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT)
        env.pop("XDPHINTS_DEV", None)
        self.p = subprocess.Popen([sys.executable, "-m", "xdphints_cli", "-n", ns, "apply", "--watch", path, "-j"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list = []
        self.err = ""
        self._out = threading.Thread(target=self._read, daemon=True)
        self._out.start()
        self._errt = threading.Thread(target=self._read_err, daemon=True)
        self._errt.start()

    def _read(self) -> None:
        for line in self.p.stdout:
            self.lines.append(json.loads(line))

    def _read_err(self) -> None:
        for line in self.p.stderr:
            self.err += line

    def events(self, event: str, **match) -> list:
        return [e for e in list(self.lines) if e.get("event") == event
                and all(e.get(k) == v for k, v in match.items())]

    def wait_event(self, event: str, deadline_s: float = 10, **match) -> dict:
        return wait_for(lambda: (self.events(event, **match) or [None])[-1], deadline_s, f"{event} {match}")

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        rc = self.p.wait(timeout=30)
        self._out.join(10)
        self._errt.join(10)
        return rc


@pytest.fixture
def watcher():
    made = []

    def start(ns, path):
        w = Watcher(ns, path)
        made.append(w)
        return w

    yield start
    for w in made:
        if w.p.poll() is None:
            w.p.kill()
            w.p.wait()


def test_watch_restores_drift_and_a_device_made_again(veth, tmp_path, watcher):
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    path = hints_file(tmp_path, f'[device.{veth.dev}]\nhints = ["rx-vlan"]\n')
    w = watcher(veth.ns, path)
    w.wait_event("start")
    wait_for(lambda: rxvlan(veth.ns, veth.dev) == "on", 3, "the first pass turns rx-vlan on")

    # another process turns the offload off: back on within 3 s, one repair line says so
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    wait_for(lambda: rxvlan(veth.ns, veth.dev) == "on", 3, "restored after ethtool -K rxvlan off")
    repair = w.wait_event("repair", cause={"event": "features", "via": "ethtool",
                                           "detail": {"changed": {"rx-vlan-hw-parse": False}},
                                           "changed-by": "unknown"})
    assert repair["ifname"] == veth.dev and repair["hints"]["rx-vlan"]["change"]["before"] == "off"

    # the device is deleted, and made again elsewhere with rx-vlan off, then moved in
    veth.run("ip", "link", "del", veth.dev)
    w.wait_event("absent", ifname=veth.dev)
    other = unique_name("xdph-o")  # holds the new device's peer: kept to the end
    sh("ip", "netns", "add", other)
    try:
        add_veth(other, veth.dev, "xn1")
        sh("ethtool", "-K", veth.dev, "rxvlan", "off", ns=other)
        sh("ip", "-n", other, "link", "set", veth.dev, "netns", veth.ns)
        wait_for(lambda: rxvlan(veth.ns, veth.dev) == "on", 3, "restored on the device made again")
        new_index = json.loads(veth.run("ip", "-j", "link", "show", "dev", veth.dev).stdout)[0]["ifindex"]
        assert w.wait_event("repair", ifindex=new_index)["cause"]["event"] == "link-new"

        # renamed to the listed name
        veth.run("ip", "link", "set", veth.dev, "name", "xr0")
        add_veth(veth.ns, "xt0", "xt1")
        veth.run("ethtool", "-K", "xt0", "rxvlan", "off")
        veth.run("ip", "link", "set", "xt0", "name", veth.dev)
        wait_for(lambda: rxvlan(veth.ns, veth.dev) == "on", 3, "restored on a device renamed to the listed name")
        assert rxvlan(veth.ns, "xr0") == "on"
        assert w.stop() == 0, w.err
    finally:
        sh("ip", "netns", "del", other, check=False)
    assert w.lines[-1]["event"] == "stop" and w.lines[-1]["signal"] == "SIGTERM"


def test_sighup_keeps_the_old_file_when_the_new_is_bad_and_sigterm_leaves_the_config(veth, tmp_path, watcher):
    path = hints_file(tmp_path, f'[device.{veth.dev}]\nhints = ["rx-vlan"]\n')
    w = watcher(veth.ns, path)
    w.wait_event("device", ifname=veth.dev)
    with open(path, "a") as f:
        f.write("oops = 1\n")
    w.p.send_signal(signal.SIGHUP)
    wait_for(lambda: "keeping the previous file" in w.err, 10, "the bad file refused")
    # the old file still holds
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    wait_for(lambda: rxvlan(veth.ns, veth.dev) == "on", 3, "the old file still repairs")
    assert not w.events("reload")
    # a good file that no longer lists rx-vlan: read on SIGHUP, and the drift stays
    with open(path, "w") as f:
        f.write(f'[device.{veth.dev}]\nhints = ["rx-hash"]\n')
    w.p.send_signal(signal.SIGHUP)
    w.wait_event("reload")
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    time.sleep(1.5)
    assert rxvlan(veth.ns, veth.dev) == "off"
    assert w.stop() == 0
    assert f"xdphints: warning: SIGHUP: {path}:3: device.{veth.dev}.oops: unknown key" in w.err
    assert w.err.count("\n") == 1, w.err
    # SIGTERM left the device as it was (rx-vlan off: nothing is undone at exit)
    assert rxvlan(veth.ns, veth.dev) == "off"


def test_watch_backs_off_from_a_fight(veth, tmp_path, watcher):
    from xdphints_cli.fleet.watch import REPAIR_LIMIT

    path = hints_file(tmp_path, f'[device.{veth.dev}]\nhints = ["rx-vlan"]\n')
    w = watcher(veth.ns, path)
    w.wait_event("device", ifname=veth.dev)
    stop = threading.Event()

    def fight():  # another process that keeps turning it off
        while not stop.is_set():
            sh("ethtool", "-K", veth.dev, "rxvlan", "off", ns=veth.ns, check=False)
            time.sleep(0.1)

    t = threading.Thread(target=fight)
    t.start()
    try:
        backoff = w.wait_event("backoff", 20, ifname=veth.dev)
        time.sleep(2)  # the fight goes on: no more repairs
    finally:
        stop.set()
        t.join()
    assert backoff["repairs"] == REPAIR_LIMIT and backoff["backoff-s"] > 0
    # each attempt is a line: restored (changed), or failed and rolled back when the other
    # process struck between the change and its read-back
    attempts = w.events("repair", ifname=veth.dev)
    assert len(attempts) == REPAIR_LIMIT and {a["status"] for a in attempts} <= {"changed", "failed"}
    assert rxvlan(veth.ns, veth.dev) == "off"     # left alone while backing off
    # SIGHUP: the operator asks to try again, so the backoff ends and the device is repaired
    w.p.send_signal(signal.SIGHUP)
    w.wait_event("reload")
    wait_for(lambda: rxvlan(veth.ns, veth.dev) == "on", 3, "repaired after SIGHUP")
    assert w.stop() == 0


def test_watch_without_cap_net_admin_is_refused_at_start(veth, tmp_path):
    path = hints_file(tmp_path, f'[device.{veth.dev}]\nhints = ["rx-vlan"]\n')
    res = no_caps_in(veth.ns, "apply", "--watch", path)
    assert res.returncode == 4 and res.stdout == ""
    assert res.stderr == ("xdphints: error: apply --watch needs CAP_NET_ADMIN (it changes offloads and "
                          "timestamping); missing: CAP_NET_ADMIN (run as root)\n")
