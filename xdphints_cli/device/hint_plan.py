"""`enable` as `check` sees it: the plan that makes hints ready, from check's verdicts.

planner.py knows features (a setting and its value); readiness.py knows hints (what an
XDP program gets). For a feature that is a hint they must agree, or a playbook that
checks and then enables breaks:
  * ready: nothing to do, whatever the setting is (an offload off [fixed] whose driver
    still fills the hint; an rx-filter narrower than `all` that ptp4l chose);
  * needs-enable: planner.py's usual step;
  * unsupported: refused before anything changes (exit 3), with check's reason, even
    where the setting alone could be changed: turning it on would not give the hint.
Features that are no hint (tx-timestamp, rx-vlan-stag) are planned as before.
"""

from __future__ import annotations

from typing import Iterable, Optional

from xdphints_cli.device import planner
from xdphints_cli.device.features import HINTS
from xdphints_cli.device.readiness import READY, UNSUPPORTED, verdicts
from xdphints_cli.device.state import DeviceReport
from xdphints_cli.errors import EXIT_UNSUPPORTED

_HINT_OF_FEATURE = {h.feature: h.name for h in HINTS}


def plan_enable(backend: planner.Backend, report: DeviceReport, features: Iterable[str],
                rx_filter: Optional[str] = None, tx_type: Optional[str] = None,
                netns: Optional[str] = None, available: bool = False) -> planner.Plan:
    """The enable plan for `features` on the device of `report`. `available`: leave out
    the hints the device cannot give (Plan.unsupported says which and why) instead of
    refusing; it refuses only when that leaves nothing (exit 3)."""
    features = list(dict.fromkeys(features))
    planner.check_request(backend, planner.ENABLE, features, rx_filter, tx_type)
    hints = [_HINT_OF_FEATURE[f] for f in features if f in _HINT_OF_FEATURE]
    found = {v.hint: v for v in verdicts(report, hints, netns)} if hints else {}
    unsupported = {h: v.reason for h, v in found.items() if v.state == UNSUPPORTED}
    if unsupported and not available:
        hint = next(h for h in hints if h in unsupported)
        err = planner.FeatureError(backend.ifname, hint, "unsupported", unsupported[hint], EXIT_UNSUPPORTED)
        raise err.extended("no feature was changed") if len(features) > 1 else err
    wanted = [f for f in features if _HINT_OF_FEATURE.get(f) not in unsupported]
    if not wanted:
        reasons = {unsupported[h] for h in hints}
        detail = reasons.pop() if len(reasons) == 1 else "; ".join(f"{h}: {unsupported[h]}" for h in hints)
        raise planner.FeatureError(backend.ifname, ",".join(hints), "unsupported",
                                   f"the device gives none of the hints asked for ({detail})", EXIT_UNSUPPORTED)
    # an explicit --rx-filter is a request for that filter, not for a ready hint
    keep = {f: f"ready: {found[h].reason}" for f, h in _HINT_OF_FEATURE.items()
            if h in found and found[h].state == READY and not (f == "rx-timestamp" and rx_filter)}
    result = planner.plan(backend, planner.ENABLE, wanted,
                          rx_filter=rx_filter if "rx-timestamp" in wanted else None,
                          tx_type=tx_type, keep=keep)
    result.unsupported = unsupported
    return result


def plan_hints(backend: planner.Backend, report: DeviceReport, hints: Iterable[str],
               rx_filter: Optional[str] = None, netns: Optional[str] = None,
               available: bool = False) -> planner.Plan:
    """The plan that makes `hints` (hint names) ready; see plan_enable."""
    by_hint = {h.name: h.feature for h in HINTS}
    return plan_enable(backend, report, [by_hint[h] for h in hints], rx_filter=rx_filter, netns=netns,
                       available=available)
