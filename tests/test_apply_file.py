"""The hints file of `xdphints apply`: refused whole, with file, line and key named,
before anything is read from or changed on a device; hostile files (FIFO, directory,
huge, symlinks, writable by others); matching [device] and [driver] tables."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import REPO_ROOT, xdphints
from xdphints_cli.fleet.desired import DesiredStateError, match, parse

GOOD = """\
# a fleet
[device.eth0]
hints = ["rx-timestamp", "rx-hash"]
rx-filter = "ptpv2-event"     # optional

[driver.mlx5_core]
hints = ["rx-hash"]
"""

# (file text, the line and the key the message must name, a word of the reason)
BAD = [
    (GOOD.replace("ptpv2-event", "ptp-v2-event"), 4, "device.eth0.rx-filter", "unknown rx-filter 'ptp-v2-event'"),
    (GOOD.replace('"rx-timestamp", "rx-hash"]', '"rx-timestamp", "rx-hsh"]'), 3, "device.eth0.hints", "unknown hint 'rx-hsh'"),
    (GOOD + "[driver.veth]\nhints = [\n  \"rx-vlan\",\n  \"rx-tstamp\",\n]\n", 11, "driver.veth.hints",
     "unknown hint 'rx-tstamp'"),
    (GOOD + "mode = 1\n", 8, "driver.mlx5_core.mode", "unknown key"),
    ("mode = 1\n" + GOOD, 1, "mode", "unknown key"),
    (GOOD.replace('rx-filter = "ptpv2-event"', "rx-filter = 9"), 4, "device.eth0.rx-filter", "must be a string"),
    (GOOD.replace('hints = ["rx-hash"]', 'hints = "rx-hash"'), 7, "driver.mlx5_core.hints", "must be an array"),
    (GOOD.replace('hints = ["rx-hash"]', 'hints = ["rx-hash", 1]'), 7, "driver.mlx5_core.hints", "must be an array"),
    (GOOD.replace('hints = ["rx-hash"]', "hints = []"), 7, "driver.mlx5_core.hints", "empty"),
    (GOOD.replace('hints = ["rx-hash"]', 'rx-filter = "all"'), 6, "driver.mlx5_core", "no hints"),
    (GOOD.replace('"rx-timestamp", ', ""), 4, "device.eth0.rx-filter", "goes with the hint rx-timestamp"),
    (GOOD.replace("ptpv2-event", "none"), 4, "device.eth0.rx-filter", "none means off"),
    (GOOD + '[device."a/b"]\nhints = ["rx-vlan"]\n', 8, 'device."a/b"', "no interface can have this name"),
    (GOOD + '[device."sixteen-bytes-xx"]\nhints = ["rx-vlan"]\n', 8, "device.sixteen-bytes-xx", "at most 15 bytes"),
    (GOOD + "[device]\neth1 = 3\n", 9, "device.eth1", "must be a table"),
    # a dotted key goes into the table above it, as TOML reads it
    (GOOD + 'device.eth2.hints = ["rx-vlan"]\n', 8, "driver.mlx5_core.device", "unknown key"),
    (GOOD + '[device.eth0]\nhints = ["rx-vlan"]\n', 8, None, "TOML syntax"),  # a table defined twice
    (GOOD + "[devices.eth0]\nhints = []\n", 8, "devices", "unknown key"),
    ('driver = { veth = { hints = ["rx-vlan"], extra = 1 } }\n', 1, "driver.veth.extra", "unknown key"),
    (GOOD.replace("[device.eth0]", "[device.eth0"), 2, None, "TOML syntax"),
]


@pytest.mark.parametrize("text,line,key,reason", BAD)
def test_a_bad_file_names_file_line_and_key(tmp_path, text, line, key, reason):
    path = tmp_path / "hints.toml"
    path.write_text(text)
    with pytest.raises(DesiredStateError) as e:
        parse(text.encode(), str(path))
    message = str(e.value)
    assert message.startswith(f"{path}:{line}:" if line else f"{path}:"), message
    if key:
        assert f": {key}: " in message, message
    assert reason in message, message
    # the command: one error line, exit 2, before any device is read (so also in --check)
    for args in (["apply", str(path)], ["apply", "--check", str(path)]):
        res = xdphints(*args)
        assert res.returncode == 2, res.stderr
        assert res.stderr == f"xdphints: error: {message}\n" and res.stdout == ""


def test_not_utf8_and_a_name_with_control_characters_are_shown_escaped(tmp_path):
    path = tmp_path / "h.toml"
    path.write_bytes(b'[device.eth0]\nhints = ["rx-vlan\xff"]\n')
    res = xdphints("apply", str(path))
    assert res.returncode == 2 and "h.toml:2: not UTF-8 (byte 0xff)" in res.stderr
    path.write_text('[device."e\\u001b[31m"]\nhints = ["rx-vlan"]\n[device.x]\nhints = ["bogus"]\n')
    res = xdphints("apply", str(path))
    assert res.returncode == 2 and "\x1b" not in res.stderr
    assert "h.toml:4: device.x.hints: unknown hint 'bogus'" in res.stderr


def test_the_example_file_is_valid():
    desired = parse(open(os.path.join(REPO_ROOT, "examples", "hints.toml"), "rb").read(), "hints.toml")
    assert [s.label for s in desired.sections] == ["device.eth0", "driver.mlx5_core"]


def test_hostile_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    res = xdphints("apply", str(fifo))          # must not wait for a writer
    assert res.returncode == 2 and "not a regular file (a FIFO)" in res.stderr
    res = xdphints("apply", str(tmp_path))
    assert res.returncode == 2 and "is a directory" in res.stderr
    res = xdphints("apply", str(tmp_path / "missing"))
    assert res.returncode == 5 and "missing: no such file" in res.stderr
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * (1 << 20) + "\n")
    res = xdphints("apply", "--check", str(huge))
    assert res.returncode == 2 and "a hints file is at most" in res.stderr
    good = tmp_path / "good.toml"
    good.write_text('[device.nosuch0]\nhints = ["rx-vlan"]\n')
    link = tmp_path / "link.toml"
    link.symlink_to(good)                       # a symlink to a file is followed, as configs are
    res = xdphints("apply", "--check", str(link))
    assert res.returncode == 5 and "nosuch0: absent" in res.stdout
    fifo_link = tmp_path / "fifo-link"
    fifo_link.symlink_to(fifo)
    assert "a FIFO" in xdphints("apply", str(fifo_link)).stderr
    os.chmod(good, 0o666)
    res = xdphints("apply", str(good))
    assert res.returncode == 2 and "writable by others than its owner (mode 0666)" in res.stderr
    os.chmod(good, 0o644)
    if os.geteuid() == 0:
        os.chown(good, 65534, 65534)
        res = xdphints("apply", str(good))
        assert res.returncode == 2 and "owned by uid 65534" in res.stderr
        os.chmod(good, 0o600)   # root without CAP_DAC_OVERRIDE cannot open nobody's 0600 file
        res = xdphints("apply", "--check", str(good), unprivileged=True)
        assert res.returncode == 4 and res.stderr == f"xdphints: error: {good}: cannot open it: permission denied\n"
    # nested past the recursion limit of the TOML parser: one line, exit 2
    deep = tmp_path / "deep.toml"
    deep.write_text('[device.v0]\nhints = ["rx-hash"]\nx = ' + "[" * 2000 + "]" * 2000 + "\n")
    for flag in ("--check", "-j"):
        res = xdphints("apply", flag, str(deep))
        assert res.returncode == 2 and "Traceback" not in res.stderr and len(res.stderr.splitlines()) == 1
        assert "arrays or inline tables nested too deeply for a hints file" in res.stderr
    res = xdphints("apply", "--check", "-", env={})
    assert res.returncode == 0 and "no device here matches it (it lists no [device] or [driver] table)" in res.stderr


def test_stdin_and_option_conflicts(tmp_path):
    cmd = [os.sys.executable, "-m", "xdphints_cli", "apply", "--check", "-"]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, NO_COLOR="1")
    res = subprocess.run(cmd, input='[device.nosuch0]\nhints = ["rx-hash"]\n', capture_output=True, text=True,
                         env=env)
    assert res.returncode == 5 and res.stdout.startswith("nosuch0: absent (device.nosuch0)")
    res = subprocess.run(cmd, input="[device.x\n", capture_output=True, text=True, env=env)
    assert res.returncode == 2 and res.stderr.startswith("xdphints: error: -:1:")
    res = xdphints("apply", "--watch", "-")
    assert res.returncode == 2 and "not stdin" in res.stderr
    path = tmp_path / "h.toml"
    path.write_text(GOOD)
    res = xdphints("apply", "--check", "--watch", str(path))
    assert res.returncode == 2 and "cannot be combined" in res.stderr
    assert xdphints("apply", "").returncode == 2


def test_device_and_driver_tables_both_hold():
    desired = parse(b"""
[device.eth0]
hints = ["rx-hash"]
[driver.ice]
hints = ["rx-timestamp", "rx-vlan"]
rx-filter = "ntp-all"
[device.eth1]
hints = ["rx-timestamp"]
rx-filter = "ptpv2-event"
[device.eth9]
hints = ["rx-hash"]
[driver.mlx5_core]
hints = ["rx-hash"]
""", "f")
    found = match(desired, [("eth1", 3, "ice"), ("eth0", 2, "ice"), ("lo", 1, None), ("eth2", 4, "igc")])
    by_name = {t.ifname: t for t in found.targets}
    assert list(by_name) == ["eth0", "eth1"]  # ifindex order; lo and eth2 are named by nothing
    # the union of the hints, in the hints table's order; the [device] rx-filter first
    assert by_name["eth0"].hints == ("rx-timestamp", "rx-hash", "rx-vlan")
    assert by_name["eth0"].rx_filter == "ntp-all" and by_name["eth0"].sources == ("device.eth0", "driver.ice")
    assert by_name["eth1"].hints == ("rx-timestamp", "rx-vlan") and by_name["eth1"].rx_filter == "ptpv2-event"
    assert [s.name for s in found.absent] == ["eth9"]
    assert [s.name for s in found.unmatched_drivers] == ["mlx5_core"]


def test_rate_limit_backs_off_and_forgives():
    from xdphints_cli.fleet import watch

    rl = watch._RateLimit()
    t = 1000.0
    waits = [rl.record("eth0", t + i) for i in range(watch.REPAIR_LIMIT)]
    assert waits[:-1] == [None] * (watch.REPAIR_LIMIT - 1) and waits[-1] == watch.BACKOFF
    assert rl.blocked("eth0", t + 10) and not rl.blocked("eth1", t + 10)
    # the fight resumes right after the backoff: twice as long
    t2 = t + watch.REPAIR_LIMIT + watch.BACKOFF
    assert rl.expire(t2 - 2) == [] and rl.expire(t2) == ["eth0"] and rl.expire(t2) == []
    assert not rl.blocked("eth0", t2)
    waits = [rl.record("eth0", t2 + i) for i in range(watch.REPAIR_LIMIT)]
    assert waits[-1] == 2 * watch.BACKOFF
    # a quiet window after it ended: back to the first backoff
    assert rl.expire(t2 + watch.REPAIR_LIMIT + 2 * watch.BACKOFF) == ["eth0"]
    t3 = t2 + watch.REPAIR_LIMIT + 2 * watch.BACKOFF + watch.REPAIR_WINDOW + 1
    waits = [rl.record("eth0", t3 + i) for i in range(watch.REPAIR_LIMIT)]
    assert waits[-1] == watch.BACKOFF


def test_the_watch_unit_verifies(tmp_path):
    """`systemd-analyze verify` on the unit as shipped, but for the program path:
    verify insists that ExecStart's program exists, and /usr/local/bin/xdphints is only
    there after install.sh, so a stand-in takes its place (the only change)."""
    from conftest import need_tool

    need_tool("systemd-analyze")
    with open(os.path.join(REPO_ROOT, "systemd", "xdphints-apply.service")) as f:
        unit = f.read()
    assert "\nExecStart=/usr/local/bin/xdphints apply --watch /etc/xdphints/hints.toml\n" in unit
    assert "\nExecReload=/bin/kill -HUP $MAINPID\n" in unit and "\nRestartPreventExitStatus=2\n" in unit
    stand_in = tmp_path / "bin" / "xdphints"
    stand_in.parent.mkdir()
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    (tmp_path / "xdphints-apply.service").write_text(unit.replace("/usr/local/bin/xdphints", str(stand_in)))
    # --man=no: Documentation= names xdphints(8), installed only by install.sh
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "xdphints-apply.service")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    # and verify does catch what a unit gets wrong (so the test above can fail)
    (tmp_path / "bad.service").write_text(unit.replace("[Service]", "[Service]\nNoSuchKey=1")
                                          .replace("/usr/local/bin/xdphints", str(stand_in)))
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "bad.service")],
                         capture_output=True, text=True, timeout=60)
    assert "Unknown key 'NoSuchKey'" in res.stderr


def test_watch_takes_a_polled_hwtstamp_change_as_drift_of_a_listed_device():
    """veth has no hardware timestamping, so the polled hwtstamp path is checked here on
    the event events.py reports for it: drift of a listed device, nothing for others."""
    from xdphints_cli.cli.app import App
    from xdphints_cli.fleet.desired import Target
    from xdphints_cli.fleet.watch import Watch
    from xdphints_cli.netlink.events import Event

    w = Watch(App(), "f", parse(b'[device.eth0]\nhints = ["rx-timestamp"]\n', "f"))
    w.targets = {5: Target("eth0", 5, "ice", ("rx-timestamp",), None, ("device.eth0",))}
    pending, rematch = {}, {}
    change = {"old": {"tx-type": "off", "rx-filter": "all"}, "new": {"tx-type": "off", "rx-filter": "none"}}
    w._classify(Event("hwtstamp", 5, "eth0", change, 0.0, "poll"), pending, rematch)
    w._classify(Event("hwtstamp", 6, "eth1", change, 0.0, "poll"), pending, rematch)
    assert list(pending) == [5] and not rematch
    cause, text = pending[5]
    assert cause == {"event": "hwtstamp", "via": "poll", "detail": change, "changed-by": "unknown"}
    assert text == "a hwtstamp config change (rx-filter all -> none, polled; by whom is unknown)"
    w._classify(Event("rename", 7, "eth0", {"old-name": "tmp0"}, 0.0, "rtnetlink"), pending, rematch)
    assert rematch[7][1] == "a rename from tmp0"
