"""What a capture must be told while it runs: the device's hints config changed.

tcpdump turns hardware RX timestamps on when it starts and off when it stops; ptp4l
narrows the RX filter; `ethtool -K` turns an offload off. The packets a capture
receives from then on carry other hints, and nothing in them says why. So a capture
watches its device (netlink/events.py, by ifindex) and says each change once, with
the time and the packet count when it saw it:
- an offload a hint depends on turned on or off (a notification: seen at the next
  check of the receive loop, at most CHECK_EVERY apart while packets flow);
- the hwtstamp config changed (no notification exists: read every POLL seconds).
The receive path stays as it was: `check()` is called when the loop is idle and at
its periodic checks, never per packet; between polls it costs two non-blocking recv.
"""

from __future__ import annotations

from typing import Callable, List, Optional

from xdphints_cli.device.features import FEATURES, HINTS
from xdphints_cli.device.hint_events import hint_offload_changes
from xdphints_cli.timestamps import wall_json, wall_text

POLL = 1.0      # seconds between reads of the hwtstamp config


def _hint_of(offload: str) -> Optional[str]:
    names = {f.name for f in FEATURES if f.offload == offload}
    return next((h.name for h in HINTS if h.feature in names), None)


def describe(ev, ifname: str) -> Optional[str]:
    """One sentence for an event that changes the hints, None for any other."""
    if ev.kind == "features":
        parts = []
        for offload, on in hint_offload_changes(ev).items():
            hint = _hint_of(offload)
            why = (f" (the {hint} hint depends on it: packets from now on may carry "
                   f"{'it' if on else 'none'})" if hint else "")
            parts.append(f"{offload} was turned {'on' if on else 'off'} on {ifname}{why}")
        return "; ".join(parts) or None
    if ev.kind == "hwtstamp":
        old, new = ev.detail.get("old"), ev.detail.get("new")
        if new is None:
            return f"the hardware timestamping config of {ifname} can no longer be read"
        diff = ", ".join(f"{k} {old.get(k) if old else '?'} -> {new.get(k)}" for k in ("rx-filter", "tx-type")
                         if not old or old.get(k) != new.get(k))
        rx = new.get("rx-filter")
        then = ("packets from now on carry no hardware RX timestamp" if rx == "none"
                else "every packet can carry a hardware RX timestamp" if rx == "all"
                else f"only packets the {rx} filter matches carry a hardware RX timestamp")
        return f"the hardware timestamping config of {ifname} changed ({diff}): {then}"
    return None


class ConfigWatch:
    """Use as a context manager; `changes` lists what was said, for the JSON summary."""

    def __init__(self, ifindex: int, ifname: str, warn: Callable[[str], None], poll: float = POLL):
        from xdphints_cli.netlink.events import EventSource

        self.ifname = ifname
        self.warn = warn
        self.changes: List[dict] = []
        self._src: Optional[EventSource] = EventSource(ifindex=ifindex, poll_interval=poll)

    def settle(self) -> None:
        """Forget what the capture's own setup caused (attaching a program may change
        a driver's offloads): notifications only, the polled config is not read."""
        if self._src is not None:
            self._src.read(poll=False)

    def check(self, packets: int) -> None:
        if self._src is None:
            return
        for ev in self._src.read():
            if ev.kind == "rename":
                self.ifname = ev.ifname
            text = describe(ev, self.ifname)
            if text is None:
                continue
            self.warn(f"{wall_text(ev.time)}, after {packets} packets: {text}")
            entry = {"time": wall_json(ev.time), "packets": packets, "event": ev.kind}
            if ev.kind == "features":
                entry["changed"] = hint_offload_changes(ev)
            else:
                entry.update({"old": ev.detail.get("old"), "new": ev.detail.get("new")})
            entry["message"] = text
            self.changes.append(entry)

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None

    def __enter__(self) -> "ConfigWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
