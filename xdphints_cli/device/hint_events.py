"""Which kernel events touch XDP hints, and what they mean for them.

Rules:
- link events (new, deleted, renamed, up, down), XDP attachments and hwtstamp
  changes always touch hints; an offload change only when it is an offload a hint
  depends on (features.py's table: rx-hashing, rx-vlan-hw-parse,
  rx-vlan-stag-hw-parse), and then only those offloads are named;
- every notice of a device that still exists carries the hints' readiness after the
  event (readiness.verdicts): the device's state read after it, with the offloads a
  features event names taken as that event says (a burst read once would otherwise
  show its last state on every line, rx-vlan ready beside "rx-vlan-hw-parse off");
- an XDP attachment names the programs as `show` describes them (id, name, BTF
  object id and the hints structs with their type ids).
Events of one device that arrive together share one reading of its state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from xdphints_cli.device.features import FEATURES
from xdphints_cli.netlink.events import Event

HINT_OFFLOADS = tuple(f.offload for f in FEATURES if f.kind == "offload" and f.offload)


@dataclass(frozen=True)
class Notice:
    event: Event
    verdicts: Tuple = ()            # readiness.Verdict, after the event; () for a device gone
    programs: Tuple = ()            # programs.Program of an xdp event, as show describes them
    changed: Dict[str, bool] = field(default_factory=dict)   # hint offloads of a features event


def hint_offload_changes(ev: Event) -> Dict[str, bool]:
    return {k: v for k, v in ev.detail.get("changed", {}).items() if k in HINT_OFFLOADS}


def touches_hints(ev: Event) -> bool:
    if ev.kind == "features":
        return bool(hint_offload_changes(ev))
    return True


def notices(nl, events: List[Event], netns: Optional[str] = None) -> List[Notice]:
    """The events that touch hints, each with the readiness of its device now."""
    from xdphints_cli.device.readiness import verdicts
    from xdphints_cli.device.state import gather_link
    from xdphints_cli.errors import XdpHintsError
    from xdphints_cli.netlink import rtnl

    wanted = [ev for ev in events if touches_hints(ev)]
    reports: Dict[int, Optional[object]] = {}
    out = []
    for ev in wanted:
        if ev.kind in ("link-del", "overflow") or not ev.ifindex:
            out.append(Notice(ev, changed=hint_offload_changes(ev)))
            continue
        if ev.ifindex not in reports:
            try:
                link = rtnl.get_link_by_index(nl, ev.ifindex)
                reports[ev.ifindex] = gather_link(nl, link) if link is not None else None
            except XdpHintsError:
                reports[ev.ifindex] = None      # gone between the event and the reading
        report = reports[ev.ifindex]
        if report is None:
            out.append(Notice(ev, changed=hint_offload_changes(ev)))
            continue
        progs: Tuple = ()
        if ev.kind in ("xdp", "link-new"):
            now = {(p["mode"], p["id"]) for p in ev.detail.get("programs", ev.detail.get("xdp", []))}
            progs = tuple(p for p in report.programs if (p.mode, p.id) in now)
        changed = hint_offload_changes(ev)
        out.append(Notice(ev, tuple(verdicts(_as_of(report, changed), netns=netns)), progs, changed))
    return out


def _as_of(report, changed: Dict[str, bool]):
    """`report` with the offloads a features event changed as the event has them."""
    from dataclasses import replace

    if not changed or report.features is None:
        return report
    now = dict(report.features.features)
    for name, active in changed.items():
        if name in now:
            now[name] = replace(now[name], active=active)
    return replace(report, features=replace(report.features, features=now))
