"""Decoding of kernel replies veth cannot produce (a PHC, hardware filters, TSCONFIG).

The replies are built byte for byte in the layout net/ethtool/{tsinfo,tsconfig,bitset}.c
emits: verbose bitsets (no COMPACT flag) as a NOMASK list of {index, name} bits.
"""

from __future__ import annotations

import errno
import struct

import pytest

from xdphints_cli.device.state import DeviceReport
from xdphints_cli.errors import KernelError
from xdphints_cli.netlink import ethtool_msgs as m
from xdphints_cli.netlink.ethtool import Features, TsConfig, TsInfo
from xdphints_cli.netlink.rtnl import Link, XdpAttachment
from xdphints_cli.netlink.socket import _extack
from xdphints_cli.netlink.netdev import NetdevInfo, flag_names, XDP_FEATURES
from xdphints_cli.device.readiness import verdicts
from xdphints_cli.device.state import HwtstampState

SOF = ["hardware-transmit", "software-transmit", "hardware-receive", "software-receive",
       "software-system-clock", "hardware-legacy-clock", "hardware-raw-clock"]
RX_FILTERS = ["none", "all", "some", "ptpv1-l4-event", "ptpv1-l4-sync", "ptpv1-l4-delay-req",
              "ptpv2-l4-event", "ptpv2-l4-sync", "ptpv2-l4-delay-req", "ptpv2-l2-event"]
TX_TYPES = ["off", "on", "onestep-sync", "onestep-p2p"]


def nomask_bitset(size: int, names, set_bits):
    """A verbose NOMASK bitset as the kernel sends it: only the set bits, each with its name."""
    bits = [("ETHTOOL_A_BITSET_BITS_BIT", {"attrs": [("ETHTOOL_A_BITSET_BIT_INDEX", i),
                                                     ("ETHTOOL_A_BITSET_BIT_NAME", names[i])]})
            for i in set_bits]
    return {"attrs": [("ETHTOOL_A_BITSET_NOMASK", True), ("ETHTOOL_A_BITSET_SIZE", size),
                      ("ETHTOOL_A_BITSET_BITS", {"attrs": bits})]}


def kernel_reply(msg_class, cmd: int, attrs) -> bytes:
    msg = msg_class()
    msg["cmd"] = cmd
    msg["version"] = 1
    msg["attrs"] = attrs
    msg["header"]["type"] = 21  # the family id; any value decodes the same
    msg.encode()
    return bytes(msg.data)


def decode(msg_class, data: bytes):
    msg = msg_class(data)
    msg.decode()
    return msg


HEADER = ("ETHTOOL_A_TSINFO_HEADER", {"attrs": [("ETHTOOL_A_HEADER_DEV_INDEX", 4),
                                                ("ETHTOOL_A_HEADER_DEV_NAME", "eth0")]})


def test_tsinfo_with_phc_and_hardware_filters():
    data = kernel_reply(m.tsinfo_msg, m.TSINFO_GET_REPLY, [
        HEADER,
        ("ETHTOOL_A_TSINFO_TIMESTAMPING", nomask_bitset(19, SOF, [0, 1, 2, 3, 4, 6])),
        ("ETHTOOL_A_TSINFO_TX_TYPES", nomask_bitset(4, TX_TYPES, [0, 1])),
        ("ETHTOOL_A_TSINFO_RX_FILTERS", nomask_bitset(16, RX_FILTERS, [0, 1, 9])),
        ("ETHTOOL_A_TSINFO_PHC_INDEX", 2),
        ("ETHTOOL_A_TSINFO_HWTSTAMP_PROVIDER", {"attrs": [("ETHTOOL_A_TS_HWTSTAMP_PROVIDER_INDEX", 2),
                                                          ("ETHTOOL_A_TS_HWTSTAMP_PROVIDER_QUALIFIER", 0)]}),
        ("ETHTOOL_A_TSINFO_HWTSTAMP_SOURCE", 1),
    ])
    ts = TsInfo.from_reply(decode(m.tsinfo_msg, data))
    assert ts.capabilities == ("hardware-transmit", "software-transmit", "hardware-receive",
                               "software-receive", "software-system-clock", "hardware-raw-clock")
    assert ts.tx_types == ("off", "on")
    assert ts.rx_filters == ("none", "all", "ptpv2-l2-event")
    assert ts.phc_index == 2
    assert ts.provider.to_json() == {"phc-index": 2, "qualifier": "precise"}
    assert ts.source == "netdev"
    assert ts.hardware_rx and ts.hardware_tx


def test_tsinfo_without_hardware_omits_optional_attributes():
    data = kernel_reply(m.tsinfo_msg, m.TSINFO_GET_REPLY, [
        HEADER, ("ETHTOOL_A_TSINFO_TIMESTAMPING", nomask_bitset(19, SOF, [1, 3, 4]))])
    ts = TsInfo.from_reply(decode(m.tsinfo_msg, data))
    assert ts.phc_index is None and ts.tx_types == () and ts.rx_filters == ()
    assert not ts.hardware_rx


def test_tsconfig_reply():
    data = kernel_reply(m.tsconfig_msg, m.TSCONFIG_GET_REPLY, [
        ("ETHTOOL_A_TSCONFIG_HEADER", {"attrs": [("ETHTOOL_A_HEADER_DEV_INDEX", 4)]}),
        ("ETHTOOL_A_TSCONFIG_HWTSTAMP_PROVIDER", {"attrs": [("ETHTOOL_A_TS_HWTSTAMP_PROVIDER_INDEX", 0),
                                                            ("ETHTOOL_A_TS_HWTSTAMP_PROVIDER_QUALIFIER", 0)]}),
        ("ETHTOOL_A_TSCONFIG_TX_TYPES", nomask_bitset(4, TX_TYPES, [1])),
        ("ETHTOOL_A_TSCONFIG_RX_FILTERS", nomask_bitset(16, RX_FILTERS, [1])),
        ("ETHTOOL_A_TSCONFIG_HWTSTAMP_FLAGS", nomask_bitset(1, ["bonded-phc-index"], [])),
    ])
    cfg = TsConfig.from_reply(decode(m.tsconfig_msg, data))
    assert (cfg.tx_type, cfg.rx_filter, cfg.flags) == ("on", "all", ())
    assert cfg.provider.index == 0


def test_features_value_mask_and_lists():
    """HW is value/mask (value = changeable); WANTED and ACTIVE are NOMASK lists."""
    names = ["rx-checksum", "rx-hashing", "rx-vlan-hw-parse", "rx-gro"]
    hw = {"attrs": [("ETHTOOL_A_BITSET_SIZE", 4), ("ETHTOOL_A_BITSET_BITS", {"attrs": [
        ("ETHTOOL_A_BITSET_BITS_BIT", {"attrs": [("ETHTOOL_A_BITSET_BIT_INDEX", i),
                                                 ("ETHTOOL_A_BITSET_BIT_NAME", n)]
                                       + ([("ETHTOOL_A_BITSET_BIT_VALUE", True)] if n != "rx-hashing" else [])})
        for i, n in enumerate(names)]})]}
    data = kernel_reply(m.features_msg, m.FEATURES_GET_REPLY, [
        ("ETHTOOL_A_FEATURES_HEADER", {"attrs": [("ETHTOOL_A_HEADER_DEV_INDEX", 4)]}),
        ("ETHTOOL_A_FEATURES_HW", hw),
        ("ETHTOOL_A_FEATURES_WANTED", nomask_bitset(4, names, [0, 2])),
        ("ETHTOOL_A_FEATURES_ACTIVE", nomask_bitset(4, names, [0, 3])),
    ])
    f = Features.from_reply(decode(m.features_msg, data))
    assert f.get("rx-hashing").fixed and not f.get("rx-hashing").active
    vlan = f.get("rx-vlan-hw-parse")
    assert (vlan.active, vlan.requested, vlan.fixed) == (False, True, False)
    assert f.get("rx-gro").active and not f.get("rx-gro").requested


def nlmsgerr(code: int, text: str, capped: bool = True) -> bytes:
    """NLMSG_ERROR as the kernel sends it with NETLINK_EXT_ACK and NETLINK_CAP_ACK."""
    orig = struct.pack("=IHHII", 36, 21, 5, 7, 0)  # the request's header only (capped)
    msg = text.encode() + b"\0"
    tlv = struct.pack("=HH", 4 + len(msg), 1) + msg
    tlv += b"\0" * ((4 - len(tlv) % 4) % 4)
    body = struct.pack("=i", code) + orig + tlv
    flags = 0x200 | (0x100 if capped else 0)
    return struct.pack("=IHHII", 16 + len(body), 2, flags, 7, 0) + body


def test_extack_text_is_read():
    data = nlmsgerr(-errno.ENODEV, "no device matches ifindex")
    assert _extack(data, 0, len(data), 0x300) == "no device matches ifindex"
    assert _extack(data, 0, len(data), 0x100) is None  # no ACK_TLVS flag: no text
    err = KernelError("reading offloads of eth9", -errno.ENODEV, "no device matches ifindex")
    assert str(err) == "reading offloads of eth9: no device matches ifindex (ENODEV)"
    assert err.exit_code == 5
    assert KernelError("x", errno.EOPNOTSUPP).exit_code == 3


def test_unknown_feature_bits_are_numbers_not_dropped():
    assert flag_names(0x23 | 0x400, XDP_FEATURES) == ("basic", "redirect", "rx-sg", "0x400")
    info = NetdevInfo(xdp_features=0x23, xdp_rx_metadata=0x7 | 0x8, xsk_features=0x1)
    assert info.to_json()["xdp-rx-metadata-features"] == ["timestamp", "hash", "vlan-tag", "0x8"]


def _report(tsinfo, hwtstamp) -> DeviceReport:
    link = Link(4, "eth0", 1, "up", 1500, None, 8, 8, XdpAttachment("none"))
    return DeviceReport(link, driver="mlx5_core", netdev=NetdevInfo(0x2F, 7, 1), tsinfo=tsinfo,
                        hwtstamp=hwtstamp)


@pytest.mark.parametrize("rx_filter,state", [("none", "needs-enable"), ("all", "ready"),
                                             ("ptpv2-event", "ready")])
def test_timestamp_verdict_with_phc(rx_filter, state):
    ts = TsInfo(("hardware-receive", "hardware-raw-clock"), ("off", "on"), ("none", "all"), 0)
    (v,) = verdicts(_report(ts, HwtstampState("off", rx_filter, "tsconfig")), ["rx-timestamp"])
    assert v.state == state
    if state == "needs-enable":
        assert v.fix == "xdphints enable rx-timestamp -d eth0"
