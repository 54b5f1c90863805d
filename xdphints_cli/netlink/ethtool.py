"""ethtool netlink queries and settings, returned as small frozen dataclasses.

Bitsets are requested in the verbose form, so every bit arrives with the
kernel's own name for it: no name table is hard-coded here.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

from xdphints_cli.errors import KernelTooOldError
from xdphints_cli.netlink import ethtool_msgs as m
from xdphints_cli.netlink.session import Netlink

FAMILY = "ethtool"

# The kernel release that added each request, for "kernel too old" messages.
_SINCE = {m.STRSET_GET: "5.6", m.FEATURES_GET: "5.7", m.FEATURES_SET: "5.7",
          m.CHANNELS_GET: "5.7", m.TSINFO_GET: "5.7", m.TSCONFIG_GET: "6.14",
          m.TSCONFIG_SET: "6.14"}
_OP_NAMES = {m.STRSET_GET: "STRSET_GET", m.FEATURES_GET: "FEATURES_GET",
             m.FEATURES_SET: "FEATURES_SET", m.CHANNELS_GET: "CHANNELS_GET",
             m.TSINFO_GET: "TSINFO_GET", m.TSCONFIG_GET: "TSCONFIG_GET",
             m.TSCONFIG_SET: "TSCONFIG_SET"}


@dataclass(frozen=True)
class Bitset:
    """A decoded verbose bitset. `known` lists every bit the kernel named (the mask)."""

    active: Tuple[str, ...]
    known: Tuple[str, ...] = ()

    @classmethod
    def from_nla(cls, attr) -> "Bitset":
        nomask = attr.get_attr("ETHTOOL_A_BITSET_NOMASK") is not None
        active: List[str] = []
        known: List[str] = []
        bits = attr.get_attr("ETHTOOL_A_BITSET_BITS")
        for bit in bits.get_attrs("ETHTOOL_A_BITSET_BITS_BIT") if bits else ():
            name = bit.get_attr("ETHTOOL_A_BITSET_BIT_NAME")
            if name is None:
                name = str(bit.get_attr("ETHTOOL_A_BITSET_BIT_INDEX"))
            known.append(name)
            if nomask or bit.get_attr("ETHTOOL_A_BITSET_BIT_VALUE") is not None:
                active.append(name)
        return cls(tuple(active), tuple(known))


def _names_bitset(names: Iterable[str], values: Dict[str, bool]):
    """A verbose value/mask bitset request naming each bit (names resolved by the kernel)."""
    bits = []
    for name in names:
        attrs = [("ETHTOOL_A_BITSET_BIT_NAME", name)]
        if values[name]:
            attrs.append(("ETHTOOL_A_BITSET_BIT_VALUE", True))
        bits.append(("ETHTOOL_A_BITSET_BITS_BIT", {"attrs": attrs}))
    return {"attrs": [("ETHTOOL_A_BITSET_BITS", {"attrs": bits})]}


def _request(nl: Netlink, cmd: int, msg_class, attrs, what: str, dump: bool = False):
    family = nl.family(FAMILY)
    if not family.has_op(cmd):
        raise KernelTooOldError(
            f"{what}: this kernel has no ethtool {_OP_NAMES[cmd]} (needs Linux {_SINCE[cmd]} or newer)")
    msg = msg_class()
    msg["cmd"] = cmd
    msg["version"] = 1
    msg["attrs"] = attrs
    return nl.genl.request(family.id, msg, msg_class, what, dump=dump)


def _header(ifindex: Optional[int], flags: int = 0):
    attrs = []
    if ifindex is not None:
        attrs.append(("ETHTOOL_A_HEADER_DEV_INDEX", ifindex))
    if flags:
        attrs.append(("ETHTOOL_A_HEADER_FLAGS", flags))
    return {"attrs": attrs}


# --- string sets -----------------------------------------------------------

def get_strings(nl: Netlink, set_id: int, ifindex: Optional[int] = None) -> Tuple[str, ...]:
    """One string set, indexed by position (a global set when ifindex is None)."""
    stringsets = {"attrs": [("ETHTOOL_A_STRINGSETS_STRINGSET", {"attrs": [("ETHTOOL_A_STRINGSET_ID", set_id)]})]}
    (reply,) = _request(nl, m.STRSET_GET, m.strset_msg,
                        [("ETHTOOL_A_STRSET_HEADER", _header(ifindex)),
                         ("ETHTOOL_A_STRSET_STRINGSETS", stringsets)],
                        f"reading ethtool string set {set_id}")
    table: Dict[int, str] = {}
    sets = reply.get_attr("ETHTOOL_A_STRSET_STRINGSETS")
    for sset in sets.get_attrs("ETHTOOL_A_STRINGSETS_STRINGSET") if sets else ():
        strings = sset.get_attr("ETHTOOL_A_STRINGSET_STRINGS")
        for s in strings.get_attrs("ETHTOOL_A_STRINGS_STRING") if strings else ():
            table[s.get_attr("ETHTOOL_A_STRING_INDEX")] = s.get_attr("ETHTOOL_A_STRING_VALUE") or ""
    return tuple(table.get(i, str(i)) for i in range(max(table, default=-1) + 1))


# --- features (offloads) ---------------------------------------------------

@dataclass(frozen=True)
class Feature:
    name: str
    active: bool
    requested: bool
    fixed: bool

    def to_json(self) -> dict:
        return {"active": self.active, "requested": self.requested, "fixed": self.fixed}


@dataclass(frozen=True)
class Features:
    features: Dict[str, Feature] = field(default_factory=dict)

    @classmethod
    def from_reply(cls, reply) -> "Features":
        def bitset(name: str) -> Bitset:
            attr = reply.get_attr(name)
            return Bitset.from_nla(attr) if attr is not None else Bitset(())

        hw = bitset("ETHTOOL_A_FEATURES_HW")  # active = changeable, known = all features
        wanted = set(bitset("ETHTOOL_A_FEATURES_WANTED").active)
        active = set(bitset("ETHTOOL_A_FEATURES_ACTIVE").active)
        changeable = set(hw.active)
        return cls({name: Feature(name, name in active, name in wanted, name not in changeable)
                    for name in hw.known})

    def get(self, name: str) -> Optional[Feature]:
        return self.features.get(name)


def get_features(nl: Netlink, ifindex: int, ifname: str) -> Features:
    (reply,) = _request(nl, m.FEATURES_GET, m.features_msg,
                        [("ETHTOOL_A_FEATURES_HEADER", _header(ifindex))],
                        f"reading offloads of {ifname}")
    return Features.from_reply(reply)


def set_features(nl: Netlink, ifindex: int, ifname: str, values: Dict[str, bool]) -> None:
    """Ask for features on or off by kernel name; the caller re-reads to see what applied."""
    _request(nl, m.FEATURES_SET, m.features_msg,
             [("ETHTOOL_A_FEATURES_HEADER", _header(ifindex, m.FLAG_OMIT_REPLY)),
              ("ETHTOOL_A_FEATURES_WANTED", _names_bitset(values, values))],
             f"changing offloads of {ifname}")


# --- channels (queues) -----------------------------------------------------

@dataclass(frozen=True)
class Channels:
    rx_count: Optional[int] = None
    tx_count: Optional[int] = None
    other_count: Optional[int] = None
    combined_count: Optional[int] = None
    rx_max: Optional[int] = None
    tx_max: Optional[int] = None
    other_max: Optional[int] = None
    combined_max: Optional[int] = None

    @classmethod
    def from_reply(cls, reply) -> "Channels":
        return cls(**{f: reply.get_attr(f"ETHTOOL_A_CHANNELS_{f.upper()}") for f in cls.__dataclass_fields__})

    @property
    def rx_queues(self) -> int:
        # as xdp_hw_metadata counts them: dedicated RX plus combined channels
        return (self.rx_count or 0) + (self.combined_count or 0)

    @property
    def tx_queues(self) -> int:
        return (self.tx_count or 0) + (self.combined_count or 0)


def get_channels(nl: Netlink, ifindex: int, ifname: str) -> Channels:
    (reply,) = _request(nl, m.CHANNELS_GET, m.channels_msg,
                        [("ETHTOOL_A_CHANNELS_HEADER", _header(ifindex))],
                        f"reading channels of {ifname}")
    return Channels.from_reply(reply)


# --- timestamping ----------------------------------------------------------

HWTSTAMP_SOURCES = {1: "netdev", 2: "phylib"}
PROVIDER_QUALIFIERS = {0: "precise", 1: "approx"}


@dataclass(frozen=True)
class Provider:
    index: int
    qualifier: Optional[str]

    @classmethod
    def from_nla(cls, attr) -> Optional["Provider"]:
        if attr is None:
            return None
        q = attr.get_attr("ETHTOOL_A_TS_HWTSTAMP_PROVIDER_QUALIFIER")
        return cls(attr.get_attr("ETHTOOL_A_TS_HWTSTAMP_PROVIDER_INDEX"),
                   PROVIDER_QUALIFIERS.get(q, str(q)) if q is not None else None)

    def to_json(self) -> dict:
        out: dict = {"phc-index": self.index}
        if self.qualifier is not None:
            out["qualifier"] = self.qualifier
        return out


@dataclass(frozen=True)
class TsInfo:
    capabilities: Tuple[str, ...]
    tx_types: Tuple[str, ...]
    rx_filters: Tuple[str, ...]
    phc_index: Optional[int]
    provider: Optional[Provider] = None
    source: Optional[str] = None

    @classmethod
    def from_reply(cls, reply) -> "TsInfo":
        def names(attr_name: str) -> Tuple[str, ...]:
            attr = reply.get_attr(attr_name)
            return Bitset.from_nla(attr).active if attr is not None else ()

        source = reply.get_attr("ETHTOOL_A_TSINFO_HWTSTAMP_SOURCE")
        return cls(names("ETHTOOL_A_TSINFO_TIMESTAMPING"), names("ETHTOOL_A_TSINFO_TX_TYPES"),
                   names("ETHTOOL_A_TSINFO_RX_FILTERS"), reply.get_attr("ETHTOOL_A_TSINFO_PHC_INDEX"),
                   Provider.from_nla(reply.get_attr("ETHTOOL_A_TSINFO_HWTSTAMP_PROVIDER")),
                   HWTSTAMP_SOURCES.get(source, str(source)) if source is not None else None)

    @property
    def hardware_rx(self) -> bool:
        return "hardware-receive" in self.capabilities and any(f != "none" for f in self.rx_filters)

    @property
    def hardware_tx(self) -> bool:
        return "hardware-transmit" in self.capabilities and any(t != "off" for t in self.tx_types)


def get_tsinfo(nl: Netlink, ifindex: int, ifname: str) -> TsInfo:
    (reply,) = _request(nl, m.TSINFO_GET, m.tsinfo_msg,
                        [("ETHTOOL_A_TSINFO_HEADER", _header(ifindex))],
                        f"reading timestamping capabilities of {ifname}")
    return TsInfo.from_reply(reply)


@dataclass(frozen=True)
class TsConfig:
    """The current hardware timestamping config: one tx-type and one rx-filter."""

    tx_type: Optional[str]
    rx_filter: Optional[str]
    flags: Tuple[str, ...] = ()
    provider: Optional[Provider] = None

    @classmethod
    def from_reply(cls, reply) -> "TsConfig":
        def first(attr_name: str) -> Optional[str]:
            attr = reply.get_attr(attr_name)
            active = Bitset.from_nla(attr).active if attr is not None else ()
            return active[0] if active else None

        flags = reply.get_attr("ETHTOOL_A_TSCONFIG_HWTSTAMP_FLAGS")
        return cls(first("ETHTOOL_A_TSCONFIG_TX_TYPES"), first("ETHTOOL_A_TSCONFIG_RX_FILTERS"),
                   Bitset.from_nla(flags).active if flags is not None else (),
                   Provider.from_nla(reply.get_attr("ETHTOOL_A_TSCONFIG_HWTSTAMP_PROVIDER")))


# TSCONFIG_GET errnos after which SIOCGHWTSTAMP is the way to ask: EOPNOTSUPP (no
# ndo_hwtstamp_get: veth, virtio), ENODEV (a driver with it but no PHC), EINVAL
# (macvlan and macvtap on 6.18, which pass the request on to their lower device).
TSCONFIG_FALLBACK_ERRNOS = (errno.EOPNOTSUPP, errno.ENODEV, errno.EINVAL)


def get_tsconfig(nl: Netlink, ifindex: int, ifname: str) -> TsConfig:
    (reply,) = _request(nl, m.TSCONFIG_GET, m.tsconfig_msg,
                        [("ETHTOOL_A_TSCONFIG_HEADER", _header(ifindex))],
                        f"reading the timestamping config of {ifname}")
    return TsConfig.from_reply(reply)


def tsconfig_set_attrs(ifindex: int, tx_type: Optional[str], rx_filter: Optional[str]) -> list:
    """The TSCONFIG_SET attributes: each given value becomes the one set bit of its bitset."""
    attrs = [("ETHTOOL_A_TSCONFIG_HEADER", _header(ifindex))]
    for attr_name, value in (("ETHTOOL_A_TSCONFIG_TX_TYPES", tx_type),
                             ("ETHTOOL_A_TSCONFIG_RX_FILTERS", rx_filter)):
        if value is not None:
            # a no-mask list replaces the whole bitset: exactly this one bit
            attrs.append((attr_name, {"attrs": [
                ("ETHTOOL_A_BITSET_NOMASK", True),
                ("ETHTOOL_A_BITSET_BITS", {"attrs": [
                    ("ETHTOOL_A_BITSET_BITS_BIT", {"attrs": [("ETHTOOL_A_BITSET_BIT_NAME", value)]})]})]}))
    return attrs


def set_tsconfig(nl: Netlink, ifindex: int, ifname: str, tx_type: Optional[str],
                 rx_filter: Optional[str]) -> Optional[TsConfig]:
    """Apply a config; returns what the driver applied when the kernel replies with it."""
    replies = _request(nl, m.TSCONFIG_SET, m.tsconfig_msg, tsconfig_set_attrs(ifindex, tx_type, rx_filter),
                       f"changing the timestamping config of {ifname}")
    return TsConfig.from_reply(replies[0]) if replies else None
