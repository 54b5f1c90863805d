"""Converge the devices a hints file names: per device, plan with enable's planner
(device/hint_plan.py: a hint `check` calls ready is left alone, one it calls
unsupported stops the device before anything changes), apply all or nothing with
rollback (planner.applied), then read the device again for the verdicts after.

The rules:
  * devices are independent: one that is unsupported or fails (and is rolled back)
    does not stop the others, and the exit code sums them up (worst first: a failure,
    then unsupported, then a listed device absent, then "would change");
  * `check` plans and changes nothing, so it needs no privileges;
  * a device is addressed by the ifindex it was matched with: one renamed or gone
    since is reported, never a device that took its name.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from xdphints_cli.errors import (EXIT_FAILED, EXIT_NEEDS_ENABLE, EXIT_NOT_FOUND, EXIT_OK, EXIT_UNSUPPORTED,
                                 XdpHintsError)
from xdphints_cli.fleet.desired import Desired, Match, Section, Target, match
from xdphints_cli.names import json_name

CHANGED = "changed"
UNCHANGED = "unchanged"
WOULD_CHANGE = "would-change"
UNSUPPORTED = "unsupported"
FAILED = "failed"
ABSENT = "absent"
GONE = "gone"

_EXIT = {CHANGED: EXIT_OK, UNCHANGED: EXIT_OK, WOULD_CHANGE: EXIT_NEEDS_ENABLE, UNSUPPORTED: EXIT_UNSUPPORTED,
         ABSENT: EXIT_NOT_FOUND, GONE: EXIT_NOT_FOUND}


@dataclass
class DeviceResult:
    ifname: str
    sources: Sequence[str]
    status: str
    ifindex: Optional[int] = None
    driver: Optional[str] = None
    before: Dict[str, object] = field(default_factory=dict)  # hint -> readiness.Verdict
    after: Dict[str, object] = field(default_factory=dict)
    steps: List[object] = field(default_factory=list)  # planner.Step, one per hint's feature
    error: Optional[str] = None
    exit_code: int = EXIT_OK

    @property
    def changes(self) -> list:
        return [s for s in self.steps if s.changed]

    def step_of(self, hint: str):
        from xdphints_cli.device.features import hint as hint_by_name

        feature = hint_by_name(hint).feature
        return next((s for s in self.steps if s.feature == feature), None)

    def to_json(self) -> dict:
        out: dict = json_name("ifname", self.ifname)
        if self.ifindex is not None:
            out["ifindex"] = self.ifindex
        if self.driver is not None:
            out["driver"] = self.driver
        out["sections"] = list(self.sources)
        out["status"] = self.status
        out["changed"] = self.status == CHANGED
        hints = {}
        for name, v in self.after.items():
            entry = {"before": self.before[name].state if name in self.before else None, "after": v.state,
                     "reason": v.reason}
            if v.fix:
                entry["fix"] = v.fix
            step = self.step_of(name)
            if step is not None:
                entry["change"] = step.to_json()
            hints[name] = entry
        out["hints"] = hints
        if self.error is not None:
            out["error"] = self.error
            out["exit-code"] = self.exit_code
        return out


def exit_code(results: Sequence[DeviceResult]) -> int:
    """Worst first: a failure (its own code), unsupported, absent, would change, else 0."""
    codes = [r.exit_code for r in results]
    for code in codes:
        if code not in (EXIT_OK, EXIT_UNSUPPORTED, EXIT_NOT_FOUND, EXIT_NEEDS_ENABLE):
            return code
    for code in (EXIT_UNSUPPORTED, EXIT_NOT_FOUND, EXIT_NEEDS_ENABLE):
        if code in codes:
            return code
    return EXIT_OK


def links_here(nl) -> list:
    """(ifname, ifindex, driver) of every interface in this namespace; the driver as
    `show` and enable name it (ethtool's driver name, else the link kind)."""
    from xdphints_cli.ioctl import drvinfo
    from xdphints_cli.netlink import rtnl

    out = []
    for link in rtnl.list_links(nl):
        try:
            driver = drvinfo.driver_name(link.ifindex, link.ifname) or link.kind
        except XdpHintsError:  # gone or renamed while listed: the next event brings it again
            continue
        out.append((link.ifname, link.ifindex, driver))
    return out


def matched(nl, desired: Desired) -> Match:
    return match(desired, links_here(nl))


def absent_result(section: Section) -> DeviceResult:
    return DeviceResult(section.name, (section.label,), ABSENT, error="no such device here",
                        exit_code=EXIT_NOT_FOUND)


def converge(nl, target: Target, check: bool = False, netns: Optional[str] = None,
             held: Optional[contextlib.ExitStack] = None) -> DeviceResult:
    """Bring one device to its target (or, `check`, say what that would change).
    A FeatureError with reason "interrupted" (a signal while applying; the device was
    rolled back) is raised; every other failure is in the result. `held`: the change
    stays open in that stack (planner.applied) until it closes, so that what the caller
    does before then (its report) is part of the change: an error or a signal before it
    closes rolls the device back."""
    from xdphints_cli.device import planner
    from xdphints_cli.device.hint_plan import plan_hints
    from xdphints_cli.device.readiness import verdicts
    from xdphints_cli.device.state import gather_link
    from xdphints_cli.netlink import rtnl

    result = DeviceResult(target.ifname, target.sources, GONE, target.ifindex, target.driver)
    link = rtnl.get_link_by_index(nl, target.ifindex)
    if link is None or link.ifname != target.ifname:
        result.error = (f"{target.ifname} went away" if link is None
                        else f"{target.ifname} was renamed to {link.ifname}")
        result.exit_code = EXIT_NOT_FOUND
        return result
    names = list(target.hints)
    try:
        report = gather_link(nl, link)
        result.before = {v.hint: v for v in verdicts(report, names, netns)}
        result.after = dict(result.before)
        backend = planner.KernelBackend(nl, link, report.driver)
        plan = plan_hints(backend, report, names, rx_filter=target.rx_filter, netns=netns)
        result.steps = list(plan.steps)
        if not plan.changes:
            result.status = UNCHANGED
            return result
        if check:
            result.status = WOULD_CHANGE
            result.exit_code = EXIT_NEEDS_ENABLE
            return result
        if held is None:
            with planner.applied(backend, plan):
                pass
        else:
            held.enter_context(planner.applied(backend, plan, hold_signals=True))
        result.status = CHANGED
        result.after = {v.hint: v for v in verdicts(gather_link(nl, link), names, netns)}
        short = [v for v in result.after.values() if v.state != "ready"]
        if short:  # the planner verified each setting; a hint still short is worth saying
            result.status = FAILED
            result.error = "; ".join(f"after the change {v.hint} is {v.state}: {v.reason}" for v in short)
            result.exit_code = EXIT_FAILED
    except planner.FeatureError as e:
        if e.reason == "interrupted":
            raise
        result.status = UNSUPPORTED if e.exit_code == EXIT_UNSUPPORTED else FAILED
        result.error, result.exit_code = str(e), e.exit_code
    except XdpHintsError as e:  # the device went away while read, permission, kernel errors
        result.status = FAILED
        result.error, result.exit_code = str(e), getattr(e, "exit_code", EXIT_FAILED)
    return result
