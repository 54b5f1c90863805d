"""check and enable agree, on every kind of device the suite can make and every hint:
what check calls ready, enable leaves alone (exit 0, not changed); what it calls
needs-enable, enable turns on (and check then calls it ready); what it calls
unsupported, enable refuses (exit 3) without changing anything. A playbook that checks
and then enables relies on exactly this."""

from __future__ import annotations

import json

import pytest

from conftest import sh, unique_name, xdphints

pytestmark = pytest.mark.privileged

HINTS = ("rx-timestamp", "rx-hash", "rx-vlan")


# device -> how to make it in the lab namespace; a kind this kernel was built without
# (dummy, 8021q here) is left out of the walk, said in the test's name by its absence
KINDS = {
    # veth with native XDP: its hints are ready or need enabling
    "va0": "link add va0 type veth peer name va1",
    # veth whose peer has more TX queues than it has RX queues: veth turns XDP off
    "vb0": "link add vb0 numrxqueues 1 numtxqueues 1 type veth peer name vb1 numrxqueues 1 numtxqueues 4",
    "br0": "link add br0 type bridge",
    "mv0": "link add link va1 name mv0 type macvlan mode bridge",
    "vx0": "link add vx0 type vxlan id 5 dstport 4789",
    "if0": "link add if0 type ifb",
    "tp0": "tuntap add mode tap tp0",
    "dm0": "link add dm0 type dummy",
    "va0.7": "link add link va0 name va0.7 type vlan id 7",
    "lo": "",
}


@pytest.fixture(scope="module")
def lab():
    """One namespace with one device of each kind this kernel can make, all up."""
    ns = unique_name("xdph-agree")
    sh("ip", "netns", "add", ns)
    try:
        made = []
        for dev, cmd in KINDS.items():
            if not cmd or sh("ip", "-n", ns, *cmd.split(), check=False).returncode == 0:
                made.append(dev)
        assert {"va0", "vb0", "br0", "lo"} <= set(made), made
        for dev in made + ["va1", "vb1"]:
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield ns, made
    finally:
        sh("ip", "netns", "del", ns, check=False)


DEVICES = tuple(KINDS)


def _device(lab, dev):
    ns, made = lab
    if dev not in made:
        pytest.skip(f"this kernel cannot make {KINDS[dev].split()[-1]} devices")
    return ns


def _json(p):
    assert "Traceback" not in p.stderr, p.stderr
    return json.loads(p.stdout)


def _offloads(ns: str, dev: str) -> str:
    return sh("ethtool", "-k", dev, ns=ns, check=False).stdout


@pytest.mark.parametrize("rx_vlan", ["on", "off"])
@pytest.mark.parametrize("dev", DEVICES)
def test_check_and_enable_agree(lab, dev, rx_vlan):
    ns = _device(lab, dev)
    # the starting state: rx-vlan on or off where the device lets it change
    sh("ethtool", "-K", dev, "rxvlan", rx_vlan, ns=ns, check=False)
    for hint in HINTS:
        check = xdphints("-j", "check", hint, "-d", dev, ns=ns)
        state = _json(check)["hints"][hint]["state"]
        before = _offloads(ns, dev)
        enable = xdphints("-j", "enable", hint, "-d", dev, ns=ns)
        what = f"{dev} {hint} (rx-vlan {rx_vlan}): check {state}, enable exit {enable.returncode}: {enable.stderr}"
        if state == "ready":
            assert check.returncode == 0 and enable.returncode == 0, what
            assert _json(enable)["changed"] is False, what
            assert _offloads(ns, dev) == before, what
        elif state == "needs-enable":
            assert check.returncode == 6 and enable.returncode == 0, what
            assert _json(enable)["changed"] is True, what
            again = xdphints("-j", "check", hint, "-d", dev, ns=ns)
            assert again.returncode == 0 and _json(again)["hints"][hint]["state"] == "ready", what
        else:
            assert state == "unsupported" and check.returncode == 3, what
            assert enable.returncode == 3, what
            out = _json(enable)
            assert out["exit-code"] == 3 and _json(check)["hints"][hint]["reason"] in out["error"], what
            assert _offloads(ns, dev) == before, what


@pytest.mark.parametrize("dev", DEVICES)
def test_check_available_and_enable_available_agree(lab, dev):
    ns = _device(lab, dev)
    sh("ethtool", "-K", dev, "rxvlan", "off", ns=ns, check=False)
    check = xdphints("-j", "check", "--available", "-d", dev, ns=ns)
    states = {h: v["state"] for h, v in _json(check)["hints"].items()}
    enable = xdphints("-j", "enable", "--available", "-d", dev, ns=ns)
    if set(states.values()) == {"unsupported"}:
        assert check.returncode == 3 and enable.returncode == 3, enable.stderr
        return
    assert check.returncode == (6 if "needs-enable" in states.values() else 0)
    assert enable.returncode == 0, enable.stderr
    out = _json(enable)
    assert out["changed"] is ("needs-enable" in states.values())
    assert set(out.get("unsupported", {})) == {h for h, s in states.items() if s == "unsupported"}
    after = xdphints("-j", "check", "--available", "-d", dev, ns=ns)
    assert after.returncode == 0 and _json(after)["state"] == "ready"
