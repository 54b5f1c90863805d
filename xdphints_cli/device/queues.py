"""How many RX queues a device has active: the one answer show, dump and the
completions give.

IFLA_NUM_RX_QUEUES is what the device was allocated (veth made without queue counts
gets one per CPU, a multi-queue tap 256); an AF_XDP socket can only bind below the
active count (real_num_rx_queues), which is what `ethtool -l` shows when the driver
answers CHANNELS and what sysfs lists as queues/rx-*. So: CHANNELS (current rx +
combined) when the driver gives a non-zero answer, else sysfs, else the netdev
family's queue list, else IFLA_NUM_RX_QUEUES.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

SYSFS_NET = "/sys/class/net"


@dataclass(frozen=True)
class RxQueues:
    count: int
    source: str      # "channels", "sysfs", "netdev" or "rtnetlink"

    def describe(self, ifname: str) -> str:
        """`xh0 has 1 active RX queue (0)` for messages."""
        n = self.count
        span = "0" if n == 1 else f"0-{n - 1}"
        return f"{ifname} has {n} active RX queue{'s' if n != 1 else ''} ({span})"


def from_sysfs(ifname: str, ifindex: int) -> Optional[int]:
    """The rx-* entries under sysfs, or None, only when sysfs shows that very device:
    after setns (-n) sysfs still shows the namespace it was mounted in, where the same
    name can be another device. The device's directory is opened once and read through
    that descriptor, so its ifindex and its queues are of one device even when names
    change meanwhile (a rename moves the directory, the descriptor follows it)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    try:
        dev = os.open(os.path.join(SYSFS_NET, ifname), flags)
    except OSError:
        return None
    try:
        with open("ifindex", opener=lambda path, fl: os.open(path, fl, dir_fd=dev)) as f:
            if int(f.read()) != ifindex:
                return None
        queues = os.open("queues", flags, dir_fd=dev)
        try:
            n = sum(1 for e in os.listdir(queues) if e.startswith("rx-"))
        finally:
            os.close(queues)
    except (OSError, ValueError):
        return None
    finally:
        os.close(dev)
    return n or None


_ASK = object()


def active_rx_queues(nl, link, channels=_ASK) -> RxQueues:
    """The active RX queue count of `link` (an rtnl.Link). `channels`: the CHANNELS
    reply (an ethtool.Channels, or None when the driver gave none) when the caller
    already asked, so show does not ask twice."""
    from xdphints_cli.errors import XdpHintsError
    from xdphints_cli.netlink import ethtool, netdev

    if channels is _ASK:
        try:
            channels = ethtool.get_channels(nl, link.ifindex, link.ifname)
        except XdpHintsError:
            channels = None
    if channels is not None and channels.rx_queues:
        return RxQueues(channels.rx_queues, "channels")
    n = from_sysfs(link.ifname, link.ifindex)
    if n:
        return RxQueues(n, "sysfs")
    try:
        n = sum(1 for q in netdev.get_queues(nl, link.ifindex, link.ifname)
                if q.type == netdev.QUEUE_TYPE_RX)
    except XdpHintsError:
        n = 0
    if n:
        return RxQueues(n, "netdev")
    return RxQueues(link.num_rx_queues or 1, "rtnetlink")


def active_rx_queues_by_index(ifindex: int) -> Optional[RxQueues]:
    """active_rx_queues of the device `ifindex` in the current namespace (for a
    kernel error that names only an ifindex), or None when it cannot be read."""
    from xdphints_cli.errors import XdpHintsError
    from xdphints_cli.netlink import rtnl
    from xdphints_cli.netlink.session import Netlink

    try:
        with Netlink() as nl:
            link = rtnl.get_link_by_index(nl, ifindex)
            return None if link is None else active_rx_queues(nl, link)
    except XdpHintsError:
        return None
