"""plan -> apply -> verify -> rollback without hardware (no NIC with a PHC exists here).

Kernel replies are written byte for byte in the layout net/ethtool/{tsconfig,tsinfo,
strset,features,bitset}.c emits (verbose bitsets, NLA_F_NESTED on nests), decoded
through our from_reply classes, and fed to KernelBackend through a fake Netlink that
also records the requests, so TSCONFIG_SET and SIOCSHWTSTAMP encoding is checked too.
Offload logic and rollback run on a small in-memory backend.
"""

from __future__ import annotations

import errno
import os
import signal
import struct
import subprocess
import sys
from typing import Dict, List, Optional

import pytest

from xdphints_cli.device import planner

from xdphints_cli.ioctl import hwtstamp
from xdphints_cli.device.planner import FeatureError, HwState, KernelBackend
from xdphints_cli.errors import KernelError, PermissionDeniedError, UsageError
from xdphints_cli.netlink import ethtool
from xdphints_cli.netlink import ethtool_msgs as m
from xdphints_cli.netlink.rtnl import Link, XdpAttachment

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NLA_F_NESTED = 0x8000
GENL_FAMILY = 0x1D

RX_FILTERS = ["none", "all", "some", "ptpv1-l4-event", "ptpv1-l4-sync", "ptpv1-l4-delay-req",
              "ptpv2-l4-event", "ptpv2-l4-sync", "ptpv2-l4-delay-req", "ptpv2-l2-event", "ptpv2-l2-sync",
              "ptpv2-l2-delay-req", "ptpv2-event", "ptpv2-sync", "ptpv2-delay-req", "ntp-all"]
TX_TYPES = ["off", "on", "onestep-sync", "onestep-p2p"]
SOF = ["hardware-transmit", "software-transmit", "hardware-receive", "software-receive",
       "software-system-clock", "hardware-legacy-clock", "hardware-raw-clock"]


# --- a minimal netlink writer/reader, independent of pyroute2 --------------------

def nla(atype: int, payload: bytes, nested: bool = False) -> bytes:
    hdr = struct.pack("=HH", 4 + len(payload), atype | (NLA_F_NESTED if nested else 0))
    return hdr + payload + b"\0" * (-len(payload) % 4)


def u32(atype: int, value: int) -> bytes:
    return nla(atype, struct.pack("=I", value))


def strz(atype: int, value: str) -> bytes:
    return nla(atype, value.encode() + b"\0")


def flag(atype: int) -> bytes:
    return nla(atype, b"")


def nest(atype: int, *children: bytes) -> bytes:
    return nla(atype, b"".join(children), nested=True)


def bitset_nomask(atype: int, names: List[str], set_names: List[str]) -> bytes:
    """ethnl_put_bitset32(mask=NULL, compact=false): NOMASK, SIZE, then the set bits."""
    bits = [nest(1, u32(1, names.index(n)), strz(2, n)) for n in set_names]
    return nest(atype, flag(1), u32(2, len(names)), nest(3, *bits))


def bitset_masked(atype: int, names: List[str], values: List[str]) -> bytes:
    """A value/mask verbose bitset (FEATURES_HW): every known bit, VALUE on the set ones."""
    bits = [nest(1, u32(1, i), strz(2, n), *([flag(3)] if n in values else [])) for i, n in enumerate(names)]
    return nest(atype, u32(2, len(names)), nest(3, *bits))


def header(ifindex: int = 4, ifname: str = "eth0") -> bytes:
    return nest(1, u32(1, ifindex), strz(2, ifname))


def genl(cmd: int, *attrs: bytes) -> bytes:
    payload = struct.pack("=BBH", cmd, 1, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(payload), GENL_FAMILY, 0, 1, 0) + payload


def parse_attrs(data: bytes) -> List[tuple]:
    """[(type without flags, nested flag, payload)]."""
    out, pos = [], 0
    while pos + 4 <= len(data):
        length, atype = struct.unpack_from("=HH", data, pos)
        assert length >= 4
        out.append((atype & 0x3FFF, bool(atype & NLA_F_NESTED), data[pos + 4:pos + length]))
        pos += (length + 3) & ~3
    return out


def attr(attrs: List[tuple], atype: int) -> Optional[tuple]:
    found = [a for a in attrs if a[0] == atype]
    assert len(found) <= 1
    return found[0] if found else None


def strset_reply(set_id: int, names: List[str]) -> bytes:
    strings = [nest(1, u32(1, i), strz(2, n)) for i, n in enumerate(names)]
    return genl(m.STRSET_GET_REPLY, nest(1),
                nest(2, nest(1, u32(1, set_id), u32(2, len(names)), nest(3, *strings))))


def tsinfo_reply(tx_types=("off", "on", "onestep-sync", "onestep-p2p"),
                 rx_filters=("none", "all", "ptpv2-l2-event", "ptpv2-event", "ntp-all"),
                 caps=("hardware-transmit", "hardware-receive", "hardware-raw-clock"), phc=0) -> bytes:
    attrs = [header(), bitset_nomask(2, SOF, list(caps))]
    if tx_types:
        attrs.append(bitset_nomask(3, TX_TYPES, list(tx_types)))
    if rx_filters:
        attrs.append(bitset_nomask(4, RX_FILTERS, list(rx_filters)))
    if phc is not None:
        attrs.append(u32(5, phc))
    return genl(m.TSINFO_GET_REPLY, *attrs)


def tsconfig_reply(cmd: int, tx_type: str, rx_filter: str, phc: int = 0) -> bytes:
    """tsconfig_fill_reply(): TX_TYPES, RX_FILTERS (one bit each), then the provider nest."""
    return genl(cmd, header(), bitset_nomask(3, TX_TYPES, [tx_type]), bitset_nomask(4, RX_FILTERS, [rx_filter]),
                nest(2, u32(1, phc), u32(2, 0)))


# --- a fake Netlink that answers with recorded replies --------------------------

class FakeFamily:
    def __init__(self, ops):
        self.id = GENL_FAMILY
        self.ops = ops

    def has_op(self, cmd: int) -> bool:
        return cmd in self.ops


class FakeDevice:
    """Kernel-side state of one device with a PHC, answering like net/ethtool does."""

    def __init__(self, tx_type="on", rx_filter="none", widen=None, tsconfig=True, set_reply=True,
                 get_errno=None):
        self.tx_type = tx_type
        self.rx_filter = rx_filter
        self.widen = widen or {}  # requested rx-filter -> the one the driver applies
        self.tsconfig = tsconfig
        self.set_reply = set_reply
        self.get_errno = get_errno
        self.requests: List[bytes] = []

    def handle(self, cmd: int, raw: bytes) -> List[bytes]:
        attrs = parse_attrs(raw[20:])
        if cmd == m.STRSET_GET:
            (sset,) = [a for a in parse_attrs(attr(attrs, 2)[2]) if a[0] == 1]
            set_id = struct.unpack("=I", attr(parse_attrs(sset[2]), 1)[2])[0]
            names = {m.ETH_SS_TS_RX_FILTERS: RX_FILTERS, m.ETH_SS_TS_TX_TYPES: TX_TYPES}[set_id]
            return [strset_reply(set_id, names)]
        if cmd == m.TSINFO_GET:
            return [tsinfo_reply()]
        if cmd == m.TSCONFIG_GET:
            if self.get_errno:
                raise KernelError("reading the timestamping config of eth0", self.get_errno)
            return [tsconfig_reply(m.TSCONFIG_GET_REPLY, self.tx_type, self.rx_filter)]
        if cmd == m.TSCONFIG_SET:
            # ethnl_set_tsconfig(): merge each given (one-bit, NOMASK) bitset into the current config
            for atype in (3, 4):
                a = attr(attrs, atype)
                if a is None:
                    continue
                inner = parse_attrs(a[2])
                assert attr(inner, 1) is not None, "a NOMASK list replaces the whole bitset"
                bits = [b for b in parse_attrs(attr(inner, 3)[2]) if b[0] == 1]
                assert len(bits) == 1, "exactly one tx-type / rx-filter"
                name = attr(parse_attrs(bits[0][2]), 2)[2].rstrip(b"\0").decode()
                if atype == 3:
                    self.tx_type = name
                else:
                    self.rx_filter = self.widen.get(name, name)
            if not self.set_reply:
                return []
            return [tsconfig_reply(m.TSCONFIG_SET_REPLY, self.tx_type, self.rx_filter)]
        raise AssertionError(f"unexpected ethtool command {cmd}")


class FakeSocket:
    def __init__(self, dev: FakeDevice):
        self.dev = dev
        self.sent: List[tuple] = []

    def request(self, family_id, msg, reply_class, what, dump=False):
        msg["header"]["type"] = family_id
        msg["header"]["flags"] = 5
        msg["header"]["sequence_number"] = 1
        msg.encode()
        raw = bytes(msg.data)
        self.sent.append((msg["cmd"], raw))
        replies = []
        for data in self.dev.handle(msg["cmd"], raw):
            reply = reply_class(data)
            reply.decode()
            replies.append(reply)
        return replies


class FakeNetlink:
    def __init__(self, dev: FakeDevice, ops=None):
        self.genl = FakeSocket(dev)
        default_ops = {m.STRSET_GET, m.FEATURES_GET, m.FEATURES_SET, m.TSINFO_GET, m.TSCONFIG_GET, m.TSCONFIG_SET}
        self._family = FakeFamily(default_ops if ops is None else ops)

    def family(self, name):
        assert name == "ethtool"
        return self._family

    def sent(self, cmd: int) -> List[bytes]:
        return [raw for c, raw in self.genl.sent if c == cmd]


def make_link() -> Link:
    return Link(ifindex=4, ifname="eth0", flags=1, operstate="up", mtu=1500, kind=None, num_rx_queues=4,
                num_tx_queues=4, xdp=XdpAttachment("none"))


def kernel_backend(dev: FakeDevice, ops=None, **kw):
    nl = FakeNetlink(dev, ops)
    return KernelBackend(nl, make_link(), "mlx5_core", **kw), nl


# --- decoding recorded replies ------------------------------------------------------

def test_recorded_tsconfig_reply_decodes():
    msg = m.tsconfig_msg(tsconfig_reply(m.TSCONFIG_GET_REPLY, "onestep-sync", "ptpv2-event", phc=3))
    msg.decode()
    cfg = ethtool.TsConfig.from_reply(msg)
    assert (cfg.tx_type, cfg.rx_filter) == ("onestep-sync", "ptpv2-event")
    assert cfg.provider.index == 3 and cfg.provider.qualifier == "precise"


def test_recorded_features_reply_decodes_fixed_and_changeable():
    names = ["rx-checksum", "rx-hashing", "rx-vlan-hw-parse", "rx-vlan-stag-hw-parse"]
    data = genl(m.FEATURES_GET_REPLY, header(),
                bitset_masked(2, names, ["rx-checksum", "rx-vlan-hw-parse", "rx-vlan-stag-hw-parse"]),
                bitset_nomask(3, names, ["rx-checksum", "rx-vlan-hw-parse"]),
                bitset_nomask(4, names, ["rx-checksum", "rx-vlan-hw-parse"]),
                bitset_nomask(5, names, []))
    msg = m.features_msg(data)
    msg.decode()
    feats = ethtool.Features.from_reply(msg)
    assert feats.get("rx-hashing") == ethtool.Feature("rx-hashing", False, False, True)
    assert feats.get("rx-vlan-hw-parse") == ethtool.Feature("rx-vlan-hw-parse", True, True, False)
    assert feats.get("rx-vlan-stag-hw-parse").active is False

    backend = FakeBackend(feats)
    with pytest.raises(FeatureError) as e:
        planner.plan(backend, "enable", ["rx-hash"])
    assert e.value.reason == "fixed" and e.value.exit_code == 3
    assert "eth0: rx-hash: fixed: rx-hashing is off [fixed]" in str(e.value)


# --- TSCONFIG_SET: encoding, widening, no narrowing ---------------------------------

def _tsconfig_set_attrs(raw: bytes) -> List[tuple]:
    nlmsg_len, nlmsg_type = struct.unpack_from("=IH", raw)
    assert nlmsg_len == len(raw) and nlmsg_type == GENL_FAMILY
    assert raw[16] == m.TSCONFIG_SET and raw[17] == 1  # genl cmd, version
    return parse_attrs(raw[20:])


def test_enable_rx_timestamp_tsconfig_request_encoding():
    dev = FakeDevice(tx_type="on", rx_filter="none")
    backend, nl = kernel_backend(dev)
    result = planner.apply(backend, planner.plan(backend, "enable", ["rx-timestamp"]))
    (raw,) = nl.sent(m.TSCONFIG_SET)
    attrs = _tsconfig_set_attrs(raw)
    hdr = attr(attrs, 1)
    assert hdr[1], "the header is a nest with NLA_F_NESTED"
    assert struct.unpack("=I", attr(parse_attrs(hdr[2]), 1)[2])[0] == 4  # DEV_INDEX
    assert attr(attrs, 3) is None, "tx-type not sent: the kernel keeps the current one"
    rx = attr(attrs, 4)
    assert rx[1]
    inner = parse_attrs(rx[2])
    assert attr(inner, 1) == (1, False, b"")  # NOMASK flag
    (bit,) = parse_attrs(attr(inner, 3)[2])
    assert attr(parse_attrs(bit[2]), 2)[2] == b"all\0"
    step = result.steps[0]
    assert (step.before, step.after, step.changed, step.via) == ("none", "all", True, "tsconfig")
    assert dev.tx_type == "on"
    assert result.to_json(4)["features"]["rx-timestamp"] == {
        "setting": "rx-filter", "before": "none", "requested": "all", "after": "all", "changed": True,
        "via": "tsconfig"}


def test_driver_widening_is_reported():
    dev = FakeDevice(rx_filter="none", widen={"ptpv2-event": "all"})
    backend, _ = kernel_backend(dev)
    result = planner.apply(backend, planner.plan(backend, "enable", ["rx-timestamp"], rx_filter="ptpv2-event"))
    step = result.steps[0]
    assert (step.requested, step.after, step.changed) == ("ptpv2-event", "all", True)
    assert "widened" in step.note and "ptpv2-event" in step.note


def test_driver_reporting_some_counts_as_widening():
    dev = FakeDevice(rx_filter="none", widen={"ptpv2-l2-event": "some"})
    backend, _ = kernel_backend(dev)
    step = planner.apply(backend, planner.plan(backend, "enable", ["rx-timestamp"],
                                             rx_filter="ptpv2-l2-event")).steps[0]
    assert step.after == "some" and "widened" in step.note


def test_no_narrowing_of_an_existing_all_filter():
    dev = FakeDevice(rx_filter="all")
    backend, nl = kernel_backend(dev)
    result = planner.apply(backend, planner.plan(backend, "enable", ["rx-timestamp"], rx_filter="ptpv2-event"))
    step = result.steps[0]
    assert (step.before, step.after, step.changed) == ("all", "all", False)
    assert "not narrowed" in step.note and "ptp4l" in step.note
    assert nl.sent(m.TSCONFIG_SET) == []
    assert dev.rx_filter == "all"


def test_no_narrowing_of_a_ptp_filter_that_includes_the_request():
    dev = FakeDevice(rx_filter="ptpv2-event")
    backend, nl = kernel_backend(dev)
    step = planner.plan(backend, "enable", ["rx-timestamp"], rx_filter="ptpv2-l2-event").steps[0]
    assert not step.changed and "not narrowed" in step.note
    # the default (all) includes ptpv2-event: that widens
    step = planner.plan(backend, "enable", ["rx-timestamp"]).steps[0]
    assert step.changed and (step.before, step.after) == ("ptpv2-event", "all")


def test_unrelated_existing_filter_is_not_replaced():
    dev = FakeDevice(rx_filter="ntp-all")
    backend, nl = kernel_backend(dev)
    with pytest.raises(FeatureError) as e:
        planner.plan(backend, "enable", ["rx-timestamp"], rx_filter="ptpv2-event")
    assert e.value.reason == "conflict" and e.value.exit_code == 1
    assert "--rx-filter all" in str(e.value)
    assert nl.sent(m.TSCONFIG_SET) == []


def test_rx_filter_includes_table():
    inc = planner.rx_filter_includes
    assert inc("all", "ptpv2-l4-sync") and inc("ptpv2-event", "ptpv2-l2-delay-req")
    assert inc("ptpv2-l4-event", "ptpv2-l4-sync") and not inc("ptpv2-l4-event", "ptpv2-l2-sync")
    assert not inc("ptpv2-event", "all") and not inc("ntp-all", "ptpv2-event") and inc("ntp-all", "none")


def test_device_applying_something_else_is_a_failure_and_rolled_back():
    dev = FakeDevice(rx_filter="none", widen={"ptpv2-event": "ptpv1-l4-event"})
    backend, nl = kernel_backend(dev)
    with pytest.raises(FeatureError) as e:
        planner.apply(backend, planner.plan(backend, "enable", ["rx-timestamp"], rx_filter="ptpv2-event"))
    assert e.value.exit_code == 1
    assert "applied ptpv1-l4-event" in str(e.value) and "restored rx-timestamp to none" in str(e.value)
    assert dev.rx_filter == "none"


def test_set_without_reply_is_read_back():
    dev = FakeDevice(rx_filter="none", set_reply=False, widen={"ptpv2-event": "all"})
    backend, nl = kernel_backend(dev)
    step = planner.apply(backend, planner.plan(backend, "enable", ["rx-timestamp"], rx_filter="ptpv2-event")).steps[0]
    assert step.after == "all" and "widened" in step.note
    assert len(nl.sent(m.TSCONFIG_GET)) == 2  # plan, then the read-back


def test_disable_rx_timestamp_warns_and_keeps_tx_type():
    dev = FakeDevice(tx_type="onestep-sync", rx_filter="ptpv2-event")
    backend, nl = kernel_backend(dev)
    result = planner.apply(backend, planner.plan(backend, "disable", ["rx-timestamp"]))
    step = result.steps[0]
    assert (step.before, step.after, step.changed) == ("ptpv2-event", "none", True)
    assert "PTP daemons" in step.warning and "eth0" in step.warning
    assert dev.tx_type == "onestep-sync" and dev.rx_filter == "none"
    assert attr(_tsconfig_set_attrs(nl.sent(m.TSCONFIG_SET)[0]), 3) is None


def test_tx_timestamp_never_downgrades_a_one_step_type():
    dev = FakeDevice(tx_type="onestep-sync", rx_filter="all")
    backend, nl = kernel_backend(dev)
    step = planner.plan(backend, "enable", ["tx-timestamp"]).steps[0]
    assert not step.changed and "not downgraded" in step.note
    dev.tx_type = "on"
    result = planner.apply(backend, planner.plan(backend, "enable", ["tx-timestamp"], tx_type="onestep-p2p"))
    assert result.steps[0].after == "onestep-p2p" and dev.rx_filter == "all"
    attrs = _tsconfig_set_attrs(nl.sent(m.TSCONFIG_SET)[-1])
    assert attr(attrs, 4) is None and attr(attrs, 3) is not None


def test_both_timestamp_features_in_one_call():
    dev = FakeDevice(tx_type="off", rx_filter="none")
    backend, nl = kernel_backend(dev)
    result = planner.apply(backend, planner.plan(backend, "enable", ["rx-timestamp", "tx-timestamp"]))
    assert [s.after for s in result.steps] == ["all", "on"]
    assert (dev.tx_type, dev.rx_filter) == ("on", "all")


# --- the SIOCSHWTSTAMP fallback ----------------------------------------------------------

class FakeIoctl:
    """SIOCGHWTSTAMP/SIOCSHWTSTAMP on raw struct hwtstamp_config values."""

    def __init__(self, cfg: hwtstamp.HwtstampConfig, widen: Optional[Dict[int, int]] = None):
        self.cfg = cfg
        self.widen = widen or {}
        self.set_requests: List[hwtstamp.HwtstampConfig] = []

    def get(self, ifname: str) -> hwtstamp.HwtstampConfig:
        assert ifname == "eth0"
        return self.cfg

    def set(self, ifname: str, cfg: hwtstamp.HwtstampConfig) -> hwtstamp.HwtstampConfig:
        self.set_requests.append(cfg)
        self.cfg = hwtstamp.HwtstampConfig(cfg.flags, cfg.tx_type, self.widen.get(cfg.rx_filter, cfg.rx_filter))
        return self.cfg  # the kernel copies the applied config back


@pytest.mark.parametrize("why", ["eopnotsupp", "enodev", "too-old"])
def test_ioctl_fallback_request_encoding_and_widening(why):
    dev = FakeDevice(get_errno={"eopnotsupp": errno.EOPNOTSUPP, "enodev": errno.ENODEV}.get(why))
    ops = None
    if why == "too-old":
        ops = {m.STRSET_GET, m.FEATURES_GET, m.FEATURES_SET, m.TSINFO_GET}
    io = FakeIoctl(hwtstamp.HwtstampConfig(flags=1, tx_type=1, rx_filter=0), widen={12: 1})
    backend, nl = kernel_backend(dev, ops, ioctl_get=io.get, ioctl_set=io.set)
    result = planner.apply(backend, planner.plan(backend, "enable", ["rx-timestamp"], rx_filter="ptpv2-event"))
    (req,) = io.set_requests
    # flags and tx-type kept, rx-filter = HWTSTAMP_FILTER_PTP_V2_EVENT (12), by the kernel's string set
    assert req == hwtstamp.HwtstampConfig(1, 1, 12)
    assert req.pack() == struct.pack("<iii", 1, 1, 12)
    step = result.steps[0]
    assert (step.via, step.before, step.after) == ("ioctl", "none", "all") and "widened" in step.note
    assert nl.sent(m.TSCONFIG_SET) == []


def test_ioctl_without_support_is_unsupported():
    def no_ioctl(ifname):
        raise KernelError("SIOCGHWTSTAMP of eth0", errno.EOPNOTSUPP)

    dev = FakeDevice(get_errno=errno.EOPNOTSUPP)
    backend, _ = kernel_backend(dev, ioctl_get=no_ioctl)
    with pytest.raises(FeatureError) as e:
        planner.plan(backend, "enable", ["rx-timestamp"])
    assert e.value.exit_code == 3 and "SIOCGHWTSTAMP is not supported" in str(e.value)


@pytest.mark.privileged
def test_siocshwtstamp_layout_as_the_kernel_reads_it(veth):
    """net_hwtstamp_validate() runs before the driver: an out-of-range value at our
    rx_filter/tx_type offsets gives ERANGE, a bad flag EINVAL, a valid config reaches
    veth and gets EOPNOTSUPP. So the kernel reads the fields where we put them."""
    from xdphints_cli.process import netns

    def errno_of(cfg):
        with netns.inside(veth.ns):
            try:
                hwtstamp.set_config(veth.dev, cfg, ifindex=veth.ifindex())
            except KernelError as e:
                return e.errno
        return 0

    assert errno_of(hwtstamp.HwtstampConfig(0, 0, 15)) == errno.EOPNOTSUPP  # NTP_ALL, the last filter
    assert errno_of(hwtstamp.HwtstampConfig(0, 0, 16)) == errno.ERANGE
    assert errno_of(hwtstamp.HwtstampConfig(0, 4, 0)) == errno.ERANGE
    assert errno_of(hwtstamp.HwtstampConfig(0, 3, 1)) == errno.EOPNOTSUPP
    assert errno_of(hwtstamp.HwtstampConfig(1 << 8, 0, 0)) == errno.EINVAL


def test_ifreq_layout():
    req = hwtstamp.ifreq("eth0", 0x1122334455667788)
    assert len(req) == 40 and req[:5] == b"eth0\0"
    assert struct.unpack_from("=Q", req, 16)[0] == 0x1122334455667788


# --- input errors --------------------------------------------------------------------

def test_unknown_filter_lists_the_kernels_names():
    backend, _ = kernel_backend(FakeDevice())
    with pytest.raises(UsageError) as e:
        planner.plan(backend, "enable", ["rx-timestamp"], rx_filter="ptp-everything")
    assert e.value.exit_code == 2 and "ptpv2-event" in str(e.value) and "eth0: rx-timestamp" in str(e.value)


def test_filter_the_device_does_not_list_is_unsupported():
    backend, _ = kernel_backend(FakeDevice())
    with pytest.raises(FeatureError) as e:
        planner.plan(backend, "enable", ["rx-timestamp"], rx_filter="ptpv1-l4-sync")
    assert e.value.exit_code == 3 and "does not offer rx-filter ptpv1-l4-sync" in str(e.value)


def test_no_hardware_timestamping_names_tsinfo():
    class NoHw(FakeDevice):
        def handle(self, cmd, raw):
            if cmd == m.TSINFO_GET:
                return [tsinfo_reply(tx_types=(), rx_filters=(), caps=("software-receive",), phc=None)]
            return super().handle(cmd, raw)

    backend, _ = kernel_backend(NoHw())
    with pytest.raises(FeatureError) as e:
        planner.plan(backend, "enable", ["rx-timestamp"])
    msg = str(e.value)
    assert e.value.exit_code == 3 and "no hardware RX timestamping" in msg
    assert "ethtool TSINFO: capabilities software-receive" in msg and "PTP hardware clock none" in msg


@pytest.mark.parametrize("kw,names", [
    ({"rx_filter": "all"}, ["rx-vlan"]),
    ({"tx_type": "on"}, ["rx-timestamp"]),
])
def test_filter_options_need_their_feature(kw, names):
    with pytest.raises(UsageError):
        planner.plan(FakeBackend(), "enable", names, **kw)


def test_filter_option_with_disable_is_a_usage_error():
    with pytest.raises(UsageError):
        planner.plan(FakeBackend(), "disable", ["rx-timestamp"], rx_filter="all")


# --- offloads, idempotence, rollback on an in-memory backend ------------------------------

class FakeBackend(planner.Backend):
    ifname = "eth0"
    driver = "fake"

    def __init__(self, feats: Optional[ethtool.Features] = None, fail_on: Optional[Dict[str, Exception]] = None,
                 ignore: Optional[set] = None):
        if feats is None:
            feats = ethtool.Features({n: ethtool.Feature(n, a, a, fx) for n, a, fx in (
                ("rx-hashing", False, True), ("rx-vlan-hw-parse", False, False),
                ("rx-vlan-stag-hw-parse", False, False))})
        self.state = dict(feats.features)
        self.fail_on = fail_on or {}
        self.ignore = ignore or set()
        self.calls: List[Dict[str, bool]] = []

    def features(self):
        return ethtool.Features(dict(self.state))

    def set_features(self, values):
        self.calls.append(dict(values))
        for name, on in values.items():
            if name in self.fail_on:
                err = self.fail_on[name]
                raise err() if callable(err) else err
            cur = self.state[name]
            if cur.fixed or name in self.ignore:  # accepted, silently not changed (veth)
                self.state[name] = ethtool.Feature(name, cur.active, on if not cur.fixed else cur.requested,
                                                   cur.fixed)
                continue
            self.state[name] = ethtool.Feature(name, on, on, False)


def test_offload_enable_and_idempotent_repeat():
    b = FakeBackend()
    result = planner.apply(b, planner.plan(b, "enable", ["rx-vlan"]))
    assert (result.steps[0].before, result.steps[0].after, result.steps[0].changed) == ("off", "on", True)
    again = planner.apply(b, planner.plan(b, "enable", ["rx-vlan"]))
    assert not again.steps[0].changed and len(b.calls) == 1


def test_dry_run_plan_changes_nothing():
    b = FakeBackend()
    planned = planner.plan(b, "enable", ["rx-vlan", "rx-vlan-stag"])
    assert [s.changed for s in planned.steps] == [True, True] and b.calls == []
    assert planned.to_json()["dry-run"] is True


def test_fixed_feature_in_a_multi_feature_call_changes_nothing():
    b = FakeBackend()
    with pytest.raises(FeatureError) as e:
        planner.plan(b, "enable", ["rx-vlan", "rx-hash"])
    assert e.value.exit_code == 3 and "no feature was changed (rx-vlan stays off)" in str(e.value)
    assert b.calls == []


def test_disabling_an_off_fixed_feature_is_a_no_op():
    b = FakeBackend()
    step = planner.apply(b, planner.plan(b, "disable", ["rx-hash"])).steps[0]
    assert not step.changed and "[fixed]" in step.note and b.calls == []


def test_failure_restores_what_this_call_changed():
    b = FakeBackend(fail_on={"rx-vlan-stag-hw-parse": KernelError("changing offloads of eth0", errno.EINVAL,
                                                                  "bit name not found")})
    with pytest.raises(FeatureError) as e:
        planner.apply(b, planner.plan(b, "enable", ["rx-vlan", "rx-vlan-stag"]))
    msg = str(e.value)
    assert msg.startswith("eth0: rx-vlan: failed:") and "bit name not found (EINVAL)" in msg
    assert "changing rx-vlan-hw-parse, rx-vlan-stag-hw-parse (ethtool FEATURES_SET)" in msg
    # the kernel rejects a FEATURES_SET as a whole: nothing was changed, nothing to restore
    assert msg.endswith("nothing had been changed yet")
    assert b.calls == [{"rx-vlan-hw-parse": True, "rx-vlan-stag-hw-parse": True}]


def test_not_permitted_names_cap_net_admin_and_exits_4():
    b = FakeBackend(fail_on={"rx-vlan-hw-parse": PermissionDeniedError("changing offloads of eth0: EPERM")})
    with pytest.raises(FeatureError) as e:
        planner.apply(b, planner.plan(b, "enable", ["rx-vlan"]))
    assert e.value.exit_code == 4 and "not permitted" in str(e.value) and "CAP_NET_ADMIN" in str(e.value)


def test_accepted_but_not_applied_is_verified_and_rolled_back():
    b = FakeBackend(ignore={"rx-vlan-stag-hw-parse"})
    with pytest.raises(FeatureError) as e:
        planner.apply(b, planner.plan(b, "enable", ["rx-vlan", "rx-vlan-stag"]))
    msg = str(e.value)
    assert msg.startswith("eth0: rx-vlan-stag: failed:")
    assert "rx-vlan-stag-hw-parse is off" in msg and "restored rx-vlan to off, rx-vlan-stag to off" in msg
    assert b.state["rx-vlan-stag-hw-parse"].requested is False  # the wanted bit is put back too
    assert b.calls == [{"rx-vlan-hw-parse": True, "rx-vlan-stag-hw-parse": True},
                       {"rx-vlan-hw-parse": False, "rx-vlan-stag-hw-parse": False}]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_during_apply_rolls_back(signum):
    class Interrupted(FakeBackend):
        def set_features(self, values):
            super().set_features(values)
            if len(self.calls) == 1:
                os.kill(os.getpid(), signum)  # delivered here, between request and read-back
                os.kill(os.getpid(), signum)  # a second one must not stop the rollback

    b = Interrupted()
    before = signal.getsignal(signum)
    with pytest.raises(FeatureError) as e:
        planner.apply(b, planner.plan(b, "enable", ["rx-vlan", "rx-vlan-stag"]))
    assert e.value.exit_code == 128 + signum
    assert f"interrupted: {signal.Signals(signum).name}; restored rx-vlan to off, rx-vlan-stag to off" in str(e.value)
    assert not b.state["rx-vlan-hw-parse"].active and not b.state["rx-vlan-stag-hw-parse"].active
    assert signal.getsignal(signum) is before


def test_a_failed_restore_is_reported():
    class Stuck(FakeBackend):
        def set_features(self, values):
            if values.get("rx-vlan-hw-parse") is False:
                raise KernelError("changing offloads of eth0", errno.EBUSY)
            super().set_features(values)

    b = Stuck(ignore={"rx-vlan-stag-hw-parse"})
    with pytest.raises(FeatureError) as e:
        planner.apply(b, planner.plan(b, "enable", ["rx-vlan", "rx-vlan-stag"]))
    assert "could NOT restore rx-vlan" in str(e.value) and "EBUSY" in str(e.value)


def test_mixed_timestamp_and_offload_rollback():
    """rx-timestamp set through TSCONFIG, then an offload fails: the rx-filter is put back."""
    dev = FakeDevice(rx_filter="none")

    class Mixed(KernelBackend):
        def __init__(self):
            super().__init__(FakeNetlink(dev), make_link(), "mlx5_core")
            self.offloads = FakeBackend(fail_on={"rx-vlan-hw-parse": KernelError("x", errno.EINVAL)})

        def features(self):
            return self.offloads.features()

        def set_features(self, values):
            self.offloads.set_features(values)

    b = Mixed()
    with pytest.raises(FeatureError) as e:
        planner.apply(b, planner.plan(b, "enable", ["rx-timestamp", "rx-vlan"]))
    assert "restored rx-timestamp to none" in str(e.value) and dev.rx_filter == "none"


def test_hwstate_is_frozen():
    with pytest.raises(Exception):
        HwState("on", "all", "tsconfig").rx_filter = "none"


# --- the CLI modules stay light -------------------------------------------------

def test_help_imports_neither_pyroute2_nor_rich():
    code = ("import sys\n"
            "from xdphints_cli.cli import enable, check\n"
            "from click.testing import CliRunner\n"
            "from xdphints_cli.cli.main import cli\n"
            "for c in ('enable', 'disable', 'check'):\n"
            "    r = CliRunner().invoke(cli, [c, '--help'])\n"
            "    assert r.exit_code == 0, r.output\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('pyroute2', 'rich')]\n"
            "assert not bad, bad\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert p.returncode == 0, p.stderr


# --- enable as check sees it (device/hint_plan.py), on recorded NIC replies ------------------

def _nic_report(backend, xdp_rx_metadata: int = 7):
    """check's view of the recorded NIC: the device's replies read back through the backend."""
    from xdphints_cli.device.state import DeviceReport, HwtstampState
    from xdphints_cli.netlink.netdev import NetdevInfo

    hw = backend.hwtstamp()
    return DeviceReport(make_link(), driver="mlx5_core", netdev=NetdevInfo(0x2F, xdp_rx_metadata, 1),
                        tsinfo=backend.tsinfo(), hwtstamp=HwtstampState(hw.tx_type, hw.rx_filter, hw.via))


def test_a_ready_ptp_filter_is_left_alone_by_enable():
    from xdphints_cli.device.hint_plan import plan_enable
    from xdphints_cli.device.readiness import verdicts

    dev = FakeDevice(rx_filter="ptpv2-event")
    backend, nl = kernel_backend(dev)
    report = _nic_report(backend)
    assert verdicts(report, ["rx-timestamp"])[0].state == "ready"
    result = planner.apply(backend, plan_enable(backend, report, ["rx-timestamp"]))
    step = result.steps[0]
    assert (step.before, step.after, step.changed) == ("ptpv2-event", "ptpv2-event", False)
    assert step.note.startswith("ready: bpf_xdp_metadata_rx_timestamp implemented, rx-filter ptpv2-event")
    assert nl.sent(m.TSCONFIG_SET) == [] and dev.rx_filter == "ptpv2-event"
    # an explicit filter is a request for that filter: it widens
    step = plan_enable(backend, report, ["rx-timestamp"], rx_filter="all").steps[0]
    assert step.changed and (step.before, step.after) == ("ptpv2-event", "all")


def test_needs_enable_on_a_nic_is_planned_as_before():
    from xdphints_cli.device.hint_plan import plan_enable

    dev = FakeDevice(rx_filter="none")
    backend, nl = kernel_backend(dev)
    result = planner.apply(backend, plan_enable(backend, _nic_report(backend), ["rx-timestamp"]))
    assert result.steps[0].changed and dev.rx_filter == "all"


def test_a_driver_without_the_kfunc_is_refused_before_anything_changes():
    from xdphints_cli.device.hint_plan import plan_enable

    dev = FakeDevice(rx_filter="none")
    backend, nl = kernel_backend(dev)
    report = _nic_report(backend, xdp_rx_metadata=0)   # hardware timestamping, but no kfunc
    with pytest.raises(FeatureError) as e:
        plan_enable(backend, report, ["rx-timestamp", "tx-timestamp"])
    assert e.value.exit_code == 3
    assert str(e.value) == ("eth0: rx-timestamp: unsupported: driver mlx5_core does not implement "
                            "bpf_xdp_metadata_rx_timestamp (xdp-rx-metadata-features lacks timestamp; kfunc "
                            "since Linux 6.3); no feature was changed")
    assert nl.sent(m.TSCONFIG_SET) == []
    # a bad filter name is a usage error first, whatever the device can do
    with pytest.raises(UsageError):
        plan_enable(backend, report, ["rx-timestamp"], rx_filter="ptp-everything")
