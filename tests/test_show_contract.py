"""`show -j`: every key that is absent is either optional by nature (README.md lists
them) or its section is under `unavailable` with the reason; checked on the device
kinds people have."""

from __future__ import annotations

import json
import os
import re

import pytest

from conftest import NO_CAPS, REPO_ROOT, sh, unique_name, xdphints

pytestmark = pytest.mark.privileged

TOP_KEYS = ("ifname", "ifindex", "driver", "operstate", "mtu", "queues", "xsk-queues", "xdp", "xdp-features",
            "xdp-zc-max-segs", "xdp-rx-metadata-features", "xsk-features", "timestamping", "hwtstamp-config",
            "offloads", "hints")
TIMESTAMPING_KEYS = ("capabilities", "phc-index", "tx-types", "rx-filters", "hwtstamp-provider", "hwtstamp-source")
# the name under `unavailable` -> the keys it accounts for
SECTIONS = {"xdp-features": ("xdp-features", "xdp-rx-metadata-features", "xsk-features", "xdp-zc-max-segs"),
            "timestamping": ("timestamping",), "hwtstamp-config": ("hwtstamp-config",),
            "offloads": ("offloads",), "xsk-queues": ("xsk-queues",)}


def optional_by_nature() -> set:
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        readme = f.read()
    m = re.search(r"Optional by nature,(.*?)\n\n", readme, re.S)
    assert m, "README.md does not say which show -j keys are optional by nature"
    return set(re.findall(r"`([a-z.-]+)`", m.group(1)))


def absent_without_reason(doc: dict) -> list:
    reasons = doc.get("unavailable", {})
    explained = {k for section, keys in SECTIONS.items() if section in reasons for k in keys}
    missing = [k for k in TOP_KEYS if k not in doc and k not in explained]
    if "timestamping" in doc:
        missing += [f"timestamping.{k}" for k in TIMESTAMPING_KEYS if k not in doc["timestamping"]]
    return [k for k in missing if k not in optional_by_nature()]


@pytest.fixture(scope="module")
def kinds():
    """One namespace with a device of each kind this kernel builds: lo, veth, bridge,
    macvlan, macvtap, tap (no dummy, vlan, ipvlan or bond modules here)."""
    ns = unique_name("xdph-k")
    sh("ip", "netns", "add", ns)
    try:
        for cmd in (("link", "add", "name", "va", "type", "veth", "peer", "name", "vb"),
                    ("link", "add", "name", "br0", "type", "bridge"),
                    ("link", "add", "name", "mv0", "link", "va", "type", "macvlan"),
                    ("link", "add", "name", "mt0", "link", "vb", "type", "macvtap"),
                    ("tuntap", "add", "dev", "tp0", "mode", "tap")):
            sh("ip", "-n", ns, *cmd)
        yield ns, ("lo", "va", "br0", "mv0", "mt0", "tp0")
    finally:
        sh("ip", "netns", "del", ns, check=False)


def test_every_absent_key_is_optional_or_explained(kinds):
    ns, devices = kinds
    for dev in devices:
        for unprivileged in (False, True):
            res = xdphints("-j", "show", dev, ns=ns, unprivileged=unprivileged)
            assert res.returncode == 0, (dev, res.stderr)
            doc = json.loads(res.stdout)
            assert absent_without_reason(doc) == [], (dev, unprivileged, doc)


def test_macvlan_hwtstamp_config_falls_back_to_the_ioctl(kinds):
    """TSCONFIG_GET answers EINVAL on macvlan and macvtap: SIOCGHWTSTAMP is asked next,
    as after EOPNOTSUPP, and the reason says both."""
    ns, _ = kinds
    for dev in ("mv0", "mt0"):
        doc = json.loads(xdphints("-j", "show", dev, ns=ns).stdout)
        why = doc["unavailable"]["hwtstamp-config"]
        assert why.startswith("ethtool TSCONFIG_GET gave EINVAL and SIOCGHWTSTAMP is not supported (EOPNOTSUPP)"), why


@pytest.fixture
def uneven_veth():
    """qa with 1 RX queue whose peer qb uses 3 TX queues (`ethtool -L qb tx 3`): the
    kernel clears qa's xdp-features for that configuration."""
    ns = unique_name("xdph-q")
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "add", "name", "qa", "numrxqueues", "1", "type", "veth", "peer", "name", "qb",
           "numtxqueues", "4")
        sh("ethtool", "-L", "qb", "tx", "3", ns=ns)
        yield ns
    finally:
        sh("ip", "netns", "del", ns, check=False)


def test_veth_xdp_off_for_its_queues_is_not_blamed_on_the_driver(uneven_veth):
    ns = uneven_veth
    doc = json.loads(xdphints("-j", "show", "qa", ns=ns).stdout)
    assert doc["xdp-features"] == []
    for verdict in doc["hints"].values():
        assert verdict["state"] == "unsupported"
        assert "has no native XDP support" not in verdict["reason"]
        assert verdict["reason"].startswith("the kernel reports no native XDP for qa (xdp-features lacks basic")
        assert "(qa has 1 RX queue, its peer qb has 3 TX queues); XDP on a veth needs at least as many RX " \
               "queues as its peer has TX queues" in verdict["reason"]
    res = xdphints("check", "-d", "qa", ns=ns)
    assert res.returncode == 3 and "its peer qb has 3 TX queues" in res.stdout
    # the other way round the kernel is content: qb has at least as many RX queues as qa has TX queues
    assert json.loads(xdphints("-j", "show", "qb", ns=ns).stdout)["xdp-features"][0] == "basic"
