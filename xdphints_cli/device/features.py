"""The one table of hints and the hardware features behind them.

It drives `show`'s verdicts, `enable`/`disable`/`check`, the shell completions
and the documentation, so a feature is added here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class Feature:
    """A hardware setting that `xdphints enable/disable` turns on or off."""

    name: str
    kind: str  # "rx-filter", "tx-type" (hwtstamp config) or "offload" (ethtool feature)
    offload: Optional[str]  # the kernel's ETH_SS_FEATURES name, for kind "offload"
    help: str


@dataclass(frozen=True)
class Hint:
    """A piece of XDP RX metadata and what it takes to have it."""

    name: str
    kfunc: str
    metadata_flag: str  # netdev xdp-rx-metadata-features name
    feature: str  # the Feature that turns on its hardware side
    since: str  # kernel release that added the kfunc


FEATURES: Tuple[Feature, ...] = (
    Feature("rx-timestamp", "rx-filter", None, "hardware RX timestamping (hwtstamp rx-filter)"),
    Feature("tx-timestamp", "tx-type", None, "hardware TX timestamping (hwtstamp tx-type)"),
    Feature("rx-hash", "offload", "rx-hashing", "the rx-hashing offload (ethtool rxhash)"),
    Feature("rx-vlan", "offload", "rx-vlan-hw-parse", "the rx-vlan-hw-parse offload (ethtool rxvlan)"),
    Feature("rx-vlan-stag", "offload", "rx-vlan-stag-hw-parse", "the rx-vlan-stag-hw-parse offload"),
)

HINTS: Tuple[Hint, ...] = (
    Hint("rx-timestamp", "bpf_xdp_metadata_rx_timestamp", "timestamp", "rx-timestamp", "6.3"),
    Hint("rx-hash", "bpf_xdp_metadata_rx_hash", "hash", "rx-hash", "6.3"),
    Hint("rx-vlan", "bpf_xdp_metadata_rx_vlan_tag", "vlan-tag", "rx-vlan", "6.8"),
)

# the offloads `show` reports, in display order, by the kernel's names (ETH_SS_FEATURES)
SHOWN_OFFLOADS = ("rx-hashing", "rx-vlan-hw-parse", "rx-vlan-stag-hw-parse", "rx-checksum")

# `ethtool -k` prints some offloads by their older names, and `ethtool -K` takes a
# short one (ethtool's off_flag_def table: short, long, kernel name), so `show` prints
# them beside the kernel's for a user who greps ethtool's; rx-vlan-stag-hw-parse
# has one name everywhere
ETHTOOL_NAMES = {
    "rx-hashing": ("receive-hashing", "rxhash"),
    "rx-vlan-hw-parse": ("rx-vlan-offload", "rxvlan"),
    "rx-checksum": ("rx-checksumming", "rx"),
}

FEATURE_NAMES = tuple(f.name for f in FEATURES)
HINT_NAMES = tuple(h.name for h in HINTS)


def feature(name: str) -> Feature:
    for f in FEATURES:
        if f.name == name:
            return f
    raise KeyError(name)


def hint(name: str) -> Hint:
    for h in HINTS:
        if h.name == name:
            return h
    raise KeyError(name)
