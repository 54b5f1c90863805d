"""Everything that decides whether hints work on one device, gathered from the kernel.

Each section is read on its own: a section the kernel will not give (driver lacks
it, kernel too old, needs privileges) is left out and its reason recorded in
`unavailable`, so one missing piece never hides the others.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, TypeVar

from xdphints_cli.ioctl import drvinfo, hwtstamp
from xdphints_cli.device.chosen import CHOSEN_BY_ARGUMENT, CHOSEN_BY_ENVIRONMENT, CHOSEN_BY_ONLY_UP
from xdphints_cli.errors import (KernelError, KernelTooOldError, NotFoundError, PermissionDeniedError, UsageError,
                                 errno_name)
from xdphints_cli.netlink import ethtool, netdev, rtnl
from xdphints_cli.netlink.ethtool_msgs import ETH_SS_TS_RX_FILTERS, ETH_SS_TS_TX_TYPES
from xdphints_cli.netlink.session import Netlink
from xdphints_cli.device.programs import Program, describe_programs
from xdphints_cli.device.queues import RxQueues, active_rx_queues

T = TypeVar("T")


@dataclass(frozen=True)
class HwtstampState:
    """The current hwtstamp config and which interface answered ("tsconfig" or "ioctl")."""

    tx_type: Optional[str]
    rx_filter: Optional[str]
    source: str

    def to_json(self) -> dict:
        out = {"source": self.source}
        if self.tx_type is not None:
            out["tx-type"] = self.tx_type
        if self.rx_filter is not None:
            out["rx-filter"] = self.rx_filter
        return out


@dataclass(frozen=True)
class VethQueues:
    """What decides whether a veth has XDP: drivers/net/veth.c (veth_set_xdp_features)
    clears its xdp-features while the peer has more TX queues than it has RX queues."""

    rx: Optional[int]  # this device's RX queues in use (ethtool channels, else rtnetlink)
    peer: Optional[str]  # None when the peer is in another namespace
    peer_tx: Optional[int]


def _veth_queues(nl: Netlink, link: rtnl.Link, channels: Optional[ethtool.Channels]) -> VethQueues:
    def channels_of(l: rtnl.Link) -> Optional[ethtool.Channels]:
        try:
            return ethtool.get_channels(nl, l.ifindex, l.ifname)
        except (KernelError, KernelTooOldError, PermissionDeniedError):
            return None

    ch = channels                      # gather_link asked already (None: no answer)
    rx = ch.rx_count if ch is not None and ch.rx_count else link.num_rx_queues
    peer = rtnl.get_link_by_index(nl, link.peer_ifindex) if link.peer_ifindex else None
    if peer is None:
        return VethQueues(rx, None, None)
    peer_ch = channels_of(peer)
    return VethQueues(rx, peer.ifname, peer_ch.tx_count if peer_ch is not None and peer_ch.tx_count
                      else peer.num_tx_queues)


@dataclass
class DeviceReport:
    link: rtnl.Link
    driver: Optional[str] = None
    channels: Optional[ethtool.Channels] = None
    xsk_queues: Optional[Tuple[int, ...]] = None
    programs: Tuple[Program, ...] = ()
    netdev: Optional[netdev.NetdevInfo] = None
    tsinfo: Optional[ethtool.TsInfo] = None
    hwtstamp: Optional[HwtstampState] = None
    features: Optional[ethtool.Features] = None
    veth_queues: Optional[VethQueues] = None  # a veth whose XDP is off: why
    unavailable: Dict[str, str] = field(default_factory=dict)

    rx_active: Optional[RxQueues] = None


def _section(report: DeviceReport, key: str, fn: Callable[[], T]) -> Optional[T]:
    """Run one reader; on failure record why under `key` and return None."""
    try:
        return fn()
    except (KernelError, KernelTooOldError, PermissionDeniedError) as e:
        report.unavailable[key] = str(e)
        return None


def _read_hwtstamp(nl: Netlink, link: rtnl.Link, report: DeviceReport) -> Optional[HwtstampState]:
    """TSCONFIG_GET where kernel and driver have it, else SIOCGHWTSTAMP; never a guess."""
    try:
        cfg = ethtool.get_tsconfig(nl, link.ifindex, link.ifname)
        return HwtstampState(cfg.tx_type, cfg.rx_filter, "tsconfig")
    except KernelTooOldError:
        via_netlink = "kernel has no ethtool TSCONFIG"
    except KernelError as e:
        if e.errno not in ethtool.TSCONFIG_FALLBACK_ERRNOS:
            raise
        via_netlink = (f"ethtool TSCONFIG_GET gave {errno_name(e.errno)}" if e.errno != errno.EOPNOTSUPP
                       else "driver has no ethtool TSCONFIG (EOPNOTSUPP)")
    try:
        raw = hwtstamp.get_config(link.ifname, ifindex=link.ifindex)
    except KernelError as e:
        if e.errno == errno.EOPNOTSUPP:
            report.unavailable["hwtstamp-config"] = (
                f"{via_netlink} and SIOCGHWTSTAMP is not supported (EOPNOTSUPP): "
                "the driver offers no hardware timestamping config")
            return None
        raise
    tx_names = ethtool.get_strings(nl, ETH_SS_TS_TX_TYPES)
    rx_names = ethtool.get_strings(nl, ETH_SS_TS_RX_FILTERS)
    name = lambda names, v: names[v] if 0 <= v < len(names) else str(v)  # noqa: E731
    return HwtstampState(name(tx_names, raw.tx_type), name(rx_names, raw.rx_filter), "ioctl")


def _xsk_queues(nl: Netlink, link: rtnl.Link) -> Tuple[int, ...]:
    return tuple(sorted(q.id for q in netdev.get_queues(nl, link.ifindex, link.ifname)
                        if q.type == netdev.QUEUE_TYPE_RX and q.xsk))


def gather(nl: Netlink, dev: Optional[str], brief: bool = False) -> DeviceReport:
    """Read a device's hints state (dev None: the default device, see resolve_link).
    `brief` skips what the interface list does not show."""
    return gather_link(nl, resolve_link(nl, dev), brief)


def gather_link(nl: Netlink, link: rtnl.Link, brief: bool = False) -> DeviceReport:
    report = DeviceReport(link)
    report.driver = drvinfo.driver_name(link.ifindex, link.ifname) or link.kind
    report.netdev = _section(report, "xdp-features", lambda: netdev.get_dev(nl, link.ifindex, link.ifname))
    report.tsinfo = _section(report, "timestamping", lambda: ethtool.get_tsinfo(nl, link.ifindex, link.ifname))
    report.xsk_queues = _section(report, "xsk-queues", lambda: _xsk_queues(nl, link))
    report.programs = describe_programs(link.xdp, report.unavailable)
    if brief:
        return report
    report.channels = _section(report, "channels", lambda: ethtool.get_channels(nl, link.ifindex, link.ifname))
    report.rx_active = active_rx_queues(nl, link, report.channels)
    report.hwtstamp = _section(report, "hwtstamp-config", lambda: _read_hwtstamp(nl, link, report))
    report.features = _section(report, "offloads", lambda: ethtool.get_features(nl, link.ifindex, link.ifname))
    if report.driver == "veth" and report.netdev is not None and not report.netdev.xdp_features & 1:
        report.veth_queues = _veth_queues(nl, link, report.channels)
    return report


def resolve_link(nl: Netlink, dev: Optional[str]) -> rtnl.Link:
    """The device a command acts on: DEV or -d (a name, never an ifindex), else
    $XDPHINTS_DEV, else the only non-loopback interface that is up."""
    return choose_link(nl, dev)[0]


def choose_link(nl: Netlink, dev: Optional[str]) -> Tuple[rtnl.Link, str]:
    """resolve_link, and how the device was found (one of CHOSEN_BY_*)."""
    if dev is not None:
        return rtnl.get_link(nl, dev), CHOSEN_BY_ARGUMENT
    env = os.environ.get("XDPHINTS_DEV")
    if env == "":       # set but empty is an empty name, as -d '' is: never "not given"
        raise UsageError("an interface name cannot be empty (the name came from $XDPHINTS_DEV)")
    if env is not None:
        try:
            return rtnl.get_link(nl, env), CHOSEN_BY_ENVIRONMENT
        except NotFoundError as e:
            raise NotFoundError(f"{e} (the name came from $XDPHINTS_DEV)") from None
    candidates = [link for link in rtnl.list_links(nl) if link.is_up and not link.is_loopback]
    if len(candidates) == 1:
        return candidates[0], CHOSEN_BY_ONLY_UP
    if not candidates:
        raise UsageError("no device given and no non-loopback interface is up: use -d DEV")
    raise UsageError("no device given and several interfaces are up "
                     f"({', '.join(link.ifname for link in candidates)}): use -d DEV")


def list_reports(nl: Netlink) -> List[DeviceReport]:
    return [gather_link(nl, link, brief=True) for link in rtnl.list_links(nl)]
