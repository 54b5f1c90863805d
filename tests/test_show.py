"""`xdphints show` against the real kernel, compared with ethtool and ip."""

from __future__ import annotations

import json

import pytest

from conftest import sh, xdphints

pytestmark = pytest.mark.privileged

# ethtool -k prints some features under their legacy names
ETHTOOL_K_NAMES = {"rx-hashing": "receive-hashing", "rx-vlan-hw-parse": "rx-vlan-offload",
                   "rx-checksum": "rx-checksumming", "rx-vlan-stag-hw-parse": "rx-vlan-stag-hw-parse"}


def show_json(ns: str, *args: str) -> dict:
    res = xdphints("-j", "show", *args, ns=ns)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    return json.loads(res.stdout)


def ethtool_T(ns: str, dev: str) -> dict:
    """Parse `ethtool -T` into its sections."""
    out = sh("ethtool", "-T", dev, ns=ns).stdout
    sections: dict = {}
    current = None
    for line in out.splitlines()[1:]:
        if line.startswith("\t"):
            sections[current].append(line.strip().split()[0])
        elif ":" in line:
            key, _, value = line.partition(":")
            current = key.strip()
            sections[current] = [value.strip()] if value.strip() else []
    return sections


def test_show_veth_matches_peer_tools(veth):
    data = show_json(veth.ns, veth.dev)
    link = json.loads(sh("ip", "-d", "-j", "link", "show", veth.dev, ns=veth.ns).stdout)[0]
    assert data["ifname"] == veth.dev == link["ifname"]
    assert data["ifindex"] == link["ifindex"]
    assert data["driver"] == "veth"
    assert data["mtu"] == link["mtu"]
    assert data["operstate"] == link["operstate"].lower()
    assert data["xdp"] == {"mode": "none", "programs": []}
    assert data["xsk-queues"] == []
    # veth implements all three metadata kfuncs and basic XDP (fact sheet: features 0x23)
    assert data["xdp-rx-metadata-features"] == ["timestamp", "hash", "vlan-tag"]
    assert "basic" in data["xdp-features"] and "redirect" in data["xdp-features"]

    ts = ethtool_T(veth.ns, veth.dev)
    assert data["timestamping"]["capabilities"] == ts["Capabilities"]
    assert "phc-index" not in data["timestamping"] and ts["PTP Hardware Clock"] == ["none"]
    assert data["timestamping"]["rx-filters"] == [] and ts["Hardware Receive Filter Modes"] == ["none"]
    assert data["timestamping"]["tx-types"] == [] and ts["Hardware Transmit Timestamp Modes"] == ["none"]
    # veth has no hwtstamp config at all: absent, with the reason, never invented
    assert "hwtstamp-config" not in data
    assert "EOPNOTSUPP" in data["unavailable"]["hwtstamp-config"]

    k = json.loads(sh("ethtool", "--json", "-k", veth.dev, ns=veth.ns).stdout)[0]
    for ours, theirs in ETHTOOL_K_NAMES.items():
        assert data["offloads"][ours] == k[theirs], ours

    channels = sh("ethtool", "-l", veth.dev, ns=veth.ns).stdout.split("Current hardware settings:")[1]
    rx_current = int(channels.split("RX:")[1].split()[0])
    assert data["queues"]["rx"] == rx_current and data["queues"]["source"] == "channels"

    hints = data["hints"]
    assert hints["rx-timestamp"]["state"] == "unsupported"
    assert hints["rx-vlan"]["state"] == "ready"
    assert hints["rx-hash"]["state"] == "ready"


def test_show_verdict_follows_offload(veth):
    sh("ethtool", "-K", veth.dev, "rxvlan", "off", ns=veth.ns)
    data = show_json(veth.ns, veth.dev)
    assert data["offloads"]["rx-vlan-hw-parse"]["active"] is False
    assert data["hints"]["rx-vlan"]["state"] == "needs-enable"
    assert data["hints"]["rx-vlan"]["fix"] == f"xdphints enable rx-vlan -d {veth.dev}"


def test_show_lo(veth):
    data = show_json(veth.ns, "lo")
    assert data["ifname"] == "lo" and data["ifindex"] == 1
    assert "driver" not in data  # lo has neither ethtool driver info nor a link kind
    assert data["xdp-rx-metadata-features"] == [] and data["xdp-features"] == []
    # lo has no ethtool channels: queue counts come from rtnetlink, and that is said
    assert data["queues"]["source"] == "rtnetlink" and data["queues"]["rx"] >= 1
    assert "channels" in data["unavailable"]
    assert {h["state"] for h in data["hints"].values()} == {"unsupported"}
    text = xdphints("show", "lo", ns=veth.ns)
    assert text.returncode == 0 and "the kernel reports no native XDP for lo" in text.stdout


def test_show_json_flag_after_subcommand_and_pretty(veth):
    a = show_json(veth.ns, veth.dev)
    b = xdphints("show", veth.dev, "--json", ns=veth.ns)
    c = xdphints("-p", "show", "-d", veth.dev, ns=veth.ns)
    assert json.loads(b.stdout)["ifindex"] == a["ifindex"]
    assert c.stdout.startswith("{\n  ") and json.loads(c.stdout)["ifindex"] == a["ifindex"]


def test_show_list(veth):
    rows = show_json(veth.ns)
    names = [r["ifname"] for r in rows]
    assert names == ["lo", veth.dev]
    row = rows[1]
    assert row["driver"] == "veth" and row["xdp-mode"] == "none" and row["hw-timestamping"] is False
    text = xdphints("show", ns=veth.ns)
    assert text.returncode == 0
    assert text.stdout.splitlines()[0].split()[:3] == ["IFACE", "DRIVER", "STATE"]
    assert any(line.split()[0] == veth.dev and "timestamp hash vlan-tag" in line for line in text.stdout.splitlines())


def test_show_text_has_every_section(veth):
    out = xdphints("show", veth.dev, ns=veth.ns).stdout
    for label in ("Queues:", "AF_XDP sockets on queues:", "XDP:", "XDP features:", "RX metadata kfuncs:",
                  "XSK features:", "Timestamping capabilities:", "PTP hardware clock:", "Hwtstamp config:",
                  "rx-hashing:", "rx-vlan-hw-parse:", "Hints:", "rx-timestamp", "unsupported"):
        assert label in out, label
    assert "\x1b[" not in out  # no colour when not a TTY


def test_offload_rows_give_ethtools_names(veth):
    """Each offload row is the kernel's name; where `ethtool -k` prints another, the row
    gives it and the short name `ethtool -K` takes (checked by switching the offload
    with it), so grepping for ethtool's name finds the row."""
    import re

    from xdphints_cli.device.features import SHOWN_OFFLOADS

    ethtool_k = {ln.split(":")[0].strip() for ln in sh("ethtool", "-k", veth.dev, ns=veth.ns).stdout.splitlines()[1:]}
    rows = {ln.split(":")[0].strip(): ln for ln in xdphints("show", veth.dev, ns=veth.ns).stdout.splitlines()}
    for name in SHOWN_OFFLOADS:
        legacy, row = ETHTOOL_K_NAMES[name], rows[name]
        assert legacy in ethtool_k, legacy
        if legacy == name:
            assert "ethtool" not in row, row
            continue
        m = re.search(r"\(ethtool -k (\S+), -K (\S+)\)$", row)
        assert m and m.group(1) == legacy, row
        if show_json(veth.ns, veth.dev)["offloads"][name]["fixed"]:
            continue
        for value in ("off", "on"):
            sh("ethtool", "-K", veth.dev, m.group(2), value, ns=veth.ns)
            assert show_json(veth.ns, veth.dev)["offloads"][name]["active"] is (value == "on"), (name, value)


def test_netns_option(veth):
    # -n enters the namespace in-process, like ip -n: the test's devices are found there
    res = xdphints("-n", veth.ns, "-j", "show", "-d", veth.dev)
    assert res.returncode == 0 and json.loads(res.stdout)["ifname"] == veth.dev
    rows = json.loads(xdphints("-n", veth.peer_ns, "-j", "show").stdout)
    assert [r["ifname"] for r in rows] == ["lo", veth.peer]


def test_unknown_device_and_bad_input(veth):
    res = xdphints("show", "nosuchdev0", ns=veth.ns)
    assert res.returncode == 5
    assert res.stderr == "xdphints: error: no such device: nosuchdev0\n"
    res = xdphints("-j", "show", "nosuchdev0", ns=veth.ns)
    assert res.returncode == 5 and json.loads(res.stdout)["error"] == "no such device: nosuchdev0"
    res = xdphints("-n", "xdph-no-such-netns", "show")
    assert res.returncode == 5 and res.stderr.count("\n") == 1 and "not found" in res.stderr
    # a word that is no command is a device (`xdphints DEV`), unless it is a near miss
    assert xdphints("nosuchcommand", ns=veth.ns).returncode == 5
    for args in (["show", "--bogus"], ["shwo"], ["show", "a", "-d", "b"], ["-n"]):
        res = xdphints(*args, ns=veth.ns)
        assert res.returncode == 2, args
        assert res.stderr.startswith("xdphints: error: ") and res.stderr.count("\n") == 1, res.stderr
        assert "Traceback" not in res.stderr


def test_unprivileged_show_reports_what_it_can(veth):
    res = xdphints("-j", "show", veth.dev, ns=veth.ns, unprivileged=True)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["xdp-rx-metadata-features"] == ["timestamp", "hash", "vlan-tag"]
    assert data["offloads"]["rx-vlan-hw-parse"]["active"] is True
