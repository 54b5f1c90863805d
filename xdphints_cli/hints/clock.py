"""Time for dump: the device's PHC mapped to CLOCK_REALTIME (phc.ClockMap, refreshed
once a second while capturing), and hardware RX timestamping turned on for the
duration of a capture and put back afterwards (device/planner.py's plan/apply/rollback)."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterable, Iterator, TypeVar

from xdphints_cli.errors import NotFoundError, XdpHintsError

REFRESH_S = 1.0
T = TypeVar("T")


def open_clock(ifindex: int, ifname: str, warn: Callable[[str], None]):
    """A refreshed phc.ClockMap for the device's PHC (ethtool TSINFO phc-index), or
    None when the device has none (or it cannot be read: a warning says why)."""
    from xdphints_cli.netlink import ethtool
    from xdphints_cli.netlink.session import Netlink
    from xdphints_cli.hints.phc import ClockMap, PhcClock

    try:
        with Netlink() as nl:
            ts = ethtool.get_tsinfo(nl, ifindex, ifname)
    except XdpHintsError:
        return None
    if ts.phc_index is None or ts.phc_index < 0:
        return None
    try:
        cmap = ClockMap(PhcClock(ts.phc_index))
        cmap.refresh()
    except (XdpHintsError, OSError, ValueError) as e:
        warn(f"cannot read /dev/ptp{ts.phc_index} ({e}): RX timestamps not converted to system time")
        return None
    return cmap


def refreshing(items: Iterable[T], clock, every_s: float = REFRESH_S,
               now: Callable[[], float] = time.monotonic) -> Iterator[T]:
    """Pass `items` through, refreshing `clock` (a ClockMap) at most every `every_s`
    seconds between them."""
    due = now() + every_s
    for item in items:
        t = now()
        if t >= due:
            try:
                clock.refresh()
            except (XdpHintsError, OSError):
                pass                    # keep the last offset
            due = t + every_s
        yield item


@contextlib.contextmanager
def rx_timestamping(ifindex: int, ifname: str, warn: Callable[[str], None]) -> Iterator[object]:
    """Turn on hardware RX timestamping (rx-filter all, never narrowing a wider one)
    for the duration; put the previous rx-filter back on exit. Raises planner's
    FeatureError (exit 3 for a device without hardware timestamping) before
    anything is changed."""
    from xdphints_cli.device import planner
    from xdphints_cli.ioctl import drvinfo
    from xdphints_cli.netlink import rtnl
    from xdphints_cli.netlink.session import Netlink

    with Netlink() as nl:
        link = rtnl.get_link_by_index(nl, ifindex)     # the device dump resolved, whatever its name now
        if link is None:
            raise NotFoundError(f"no such device: {ifname} (it went away)")
        backend = planner.KernelBackend(nl, link, drvinfo.driver_name(link.ifindex, link.ifname) or link.kind)
        planned = planner.plan(backend, planner.ENABLE, ["rx-timestamp"], rx_filter="all")
        planner.apply(backend, planned)
        try:
            yield planned
        finally:
            if planned.changes:
                msg = planner._rollback(backend, planned.changes)   # the same undo as enable's
                if "NOT" in msg:
                    warn(f"{ifname}: {msg}")
