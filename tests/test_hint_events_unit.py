"""Which events touch hints and how monitor and dump word them, on made-up events
(the kernel side is tested in test_events.py, test_monitor.py, test_dump_notices.py)."""

from __future__ import annotations

import re

from xdphints_cli.cli.monitor import notice_json, notice_text
from xdphints_cli.device.hint_events import Notice, hint_offload_changes, touches_hints
from xdphints_cli.device.readiness import Verdict
from xdphints_cli.hints.config_watch import describe
from xdphints_cli.netlink.events import Event
from xdphints_cli.timestamps import wall_json, wall_text

T = 1796616330.581234


def ev(kind, detail=None, name="eth0"):
    return Event(kind, 4, name, detail or {}, T, "poll")


def test_only_offloads_a_hint_depends_on_touch_hints():
    gro = ev("features", {"changed": {"rx-gro": False, "tx-tcp-segmentation": True}})
    assert not touches_hints(gro)
    mixed = ev("features", {"changed": {"rx-gro": False, "rx-hashing": True}})
    assert touches_hints(mixed) and hint_offload_changes(mixed) == {"rx-hashing": True}
    assert all(touches_hints(ev(k)) for k in ("link-new", "link-del", "rename", "up", "down", "xdp", "hwtstamp"))


def test_text_lines():
    ready = (Verdict("rx-hash", "ready", "r"), Verdict("rx-vlan", "needs-enable", "off", "fix"))
    hw = Notice(ev("hwtstamp", {"old": {"tx-type": "off", "rx-filter": "all"},
                                "new": {"tx-type": "off", "rx-filter": "none"}}), ready)
    assert notice_text(hw) == (f"{wall_text(T)} eth0: hwtstamp: rx-filter all -> none, tx-type off; "
                               "hints: rx-hash ready, rx-vlan needs-enable")
    rep = Notice(ev("xdp", {"action": "replace", "programs": [{"mode": "drv", "id": 9}],
                            "previous": [{"mode": "drv", "id": 8}]}))
    assert notice_text(rep).endswith("eth0: xdp replace: drv id 9 (was drv id 8)")
    assert notice_text(Notice(ev("link-del", {"moved": True}))).endswith(
        "eth0: link moved to another network namespace")
    assert notice_text(Notice(ev("down", {"admin-up": True, "carrier": False}))).endswith("eth0: down (no carrier)")
    over = notice_text(Notice(Event("overflow", 0, "", {}, T, "rtnetlink")))
    assert over == f"{wall_text(T)} notifications were lost (socket overflow); the state was read again"


def test_json_lines():
    name = b"x\xff".decode("utf-8", "surrogateescape")
    n = Notice(ev("rename", {"old-name": name}, name=name), (Verdict("rx-hash", "ready", "r"),))
    out = notice_json(n)
    assert out == {"time": wall_json(T), "event": "rename", "ifindex": 4, "ifname": "x\\xff",
                   "ifname-bytes": "78ff", "old-name": "x\\xff", "old-name-bytes": "78ff", "via": "poll",
                   "hints": {"rx-hash": {"state": "ready", "reason": "r"}}}
    feat = notice_json(Notice(ev("features", {"changed": {"rx-gro": True, "rx-hashing": False}}),
                              changed={"rx-hashing": False}))
    assert feat["changed"] == {"rx-hashing": False} and "hints" not in feat


def test_times_as_dump_prints_them():
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.581234", wall_text(T))
    assert wall_json(T) == "1796616330.581234000"


def test_dump_notice_words():
    assert describe(ev("features", {"changed": {"rx-vlan-hw-parse": False}}), "xh0") == (
        "rx-vlan-hw-parse was turned off on xh0 (the rx-vlan hint depends on it: packets from now on "
        "may carry none)")
    assert describe(ev("features", {"changed": {"rx-gro": False}}), "xh0") is None
    off = describe(ev("hwtstamp", {"old": {"tx-type": "on", "rx-filter": "all"},
                                   "new": {"tx-type": "on", "rx-filter": "none"}}), "xh0")
    assert off == ("the hardware timestamping config of xh0 changed (rx-filter all -> none): packets from "
                   "now on carry no hardware RX timestamp")
    ptp = describe(ev("hwtstamp", {"old": None, "new": {"tx-type": "off", "rx-filter": "ptpv2-event"}}), "xh0")
    assert "only packets the ptpv2-event filter matches" in ptp
    assert describe(ev("rename", {"old-name": "a"}), "xh0") is None


def test_readiness_of_a_features_event_is_as_the_event_says():
    """A burst (off, on) read once shows the last state: each line's readiness takes the
    offloads its event names as that event has them, so a line never contradicts itself."""
    from xdphints_cli.device.hint_events import _as_of
    from xdphints_cli.device.readiness import verdicts
    from xdphints_cli.device.state import DeviceReport
    from xdphints_cli.netlink.ethtool import Feature, Features
    from xdphints_cli.netlink.netdev import NetdevInfo
    from xdphints_cli.netlink.rtnl import Link, XdpAttachment

    link = Link(4, "eth0", 1, "up", 1500, None, 1, 1, XdpAttachment("none"))
    now = Features({"rx-vlan-hw-parse": Feature("rx-vlan-hw-parse", True, True, False)})
    report = DeviceReport(link, driver="veth", netdev=NetdevInfo(0x23, 7, 0), features=now)
    off = hint_offload_changes(ev("features", {"changed": {"rx-vlan-hw-parse": False}}))
    (v,) = verdicts(_as_of(report, off), ["rx-vlan"])
    assert v.state == "needs-enable"
    (v,) = verdicts(_as_of(report, {}), ["rx-vlan"])
    assert v.state == "ready" and report.features.get("rx-vlan-hw-parse").active  # the reading is untouched
