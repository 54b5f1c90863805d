"""`xdphints apply --watch FILE`: keep the devices a hints file names at its hints.

The rules:
  * what tells us: rtnetlink link notifications (a device created, deleted, moved in
    or out of the namespace, renamed) and ethtool's monitor group (an offload turned
    off), through netlink/events.py; the hwtstamp config sends no notification, so it
    is polled every POLL_INTERVAL seconds (events.py reads SIOCGHWTSTAMP);
  * the events of SETTLE seconds are taken together (a device being made sends
    several), then every device they touched is converged as `apply` does: planned
    by enable's planner, applied all or nothing with rollback, a ready hint left
    alone. So a repair comes within SETTLE + a few ms of the notification, within
    POLL_INTERVAL + SETTLE for the hwtstamp config;
  * one line per repair (a JSON line with -j): what changed (the event, and who made
    it is unknown: the kernel does not say), what was restored, the hints after.
    A device that needed nothing logs nothing, except at start, on SIGHUP and when
    it appears;
  * a fight with another process that keeps undoing a change is no busy loop: at
    most REPAIR_LIMIT repairs (or failed attempts) per device in REPAIR_WINDOW
    seconds; then one line says so and the device is left alone for BACKOFF seconds,
    doubled (up to BACKOFF_MAX) each time the fight resumes, reset after a quiet
    window;
  * SIGHUP reads FILE again (and ends every backoff: the operator asks to try again):
    a bad file is refused (said on stderr) and the old one kept; SIGTERM and SIGINT end the watch with exit 0 and leave every device as it
    is. A signal that comes while a device is being changed waits until the change
    is complete (the signals are blocked meanwhile), so it never leaves a device
    half changed, nor undoes a repair.
"""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import socket
import sys
import time
from typing import Deque, Dict, List, Optional, Set, Tuple

from xdphints_cli.cli.safe_text import escape_text
from xdphints_cli.errors import XdpHintsError
from xdphints_cli.fleet import converge
from xdphints_cli.fleet.desired import Desired, Target, load

POLL_INTERVAL = 1.0   # s: the hwtstamp config (no notification) is read this often
SETTLE = 0.2          # s: notifications this close together are one pass
REPAIR_LIMIT = 5      # repairs per device ...
REPAIR_WINDOW = 60.0  # ... in this many seconds, then a backoff
BACKOFF = 60.0        # s, doubled per renewed fight
BACKOFF_MAX = 600.0

_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _now_text() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class _RateLimit:
    """Per device name: the times of its recent repairs and its backoff."""

    def __init__(self) -> None:
        self.times: Dict[str, Deque[float]] = collections.defaultdict(collections.deque)
        self.until: Dict[str, float] = {}     # backing off until then
        self.ended: Dict[str, float] = {}     # when the last backoff ended
        self.backoff: Dict[str, float] = {}   # the last backoff's length

    def blocked(self, name: str, now: float) -> bool:
        return self.until.get(name, 0.0) > now

    def record(self, name: str, now: float) -> Optional[float]:
        """Count a repair; the backoff (s) when this one reached the limit, else None."""
        times = self.times[name]
        while times and times[0] <= now - REPAIR_WINDOW:
            times.popleft()
        if not times and name in self.backoff and self.ended.get(name, now) <= now - REPAIR_WINDOW:
            del self.backoff[name]  # a whole quiet window since the last backoff ended: forgiven
        times.append(now)
        if len(times) < REPAIR_LIMIT:
            return None
        wait = min(self.backoff.get(name, BACKOFF / 2) * 2, BACKOFF_MAX)
        self.backoff[name] = wait
        self.until[name] = now + wait
        times.clear()
        return wait

    def expire(self, now: float) -> List[str]:
        """The devices whose backoff ended by `now` (each once): to be looked at again."""
        done = [name for name, until in self.until.items() if until <= now]
        for name in done:
            self.ended[name] = self.until.pop(name)
        return done

    def next_expiry(self) -> Optional[float]:
        return min(self.until.values()) if self.until else None


class Watch:
    def __init__(self, app, path: str, desired: Desired):
        self.app = app
        self.path = path
        self.desired = desired
        self.targets: Dict[int, Target] = {}     # ifindex -> what it must have
        self.absent: Set[str] = set()            # [device] names not here (said once)
        self.last_status: Dict[int, str] = {}
        self.limit = _RateLimit()
        self._stop: Optional[int] = None
        self._reload = False

    # --- output ---------------------------------------------------------------

    def emit(self, obj: dict, text: str) -> None:
        obj = {"time": _now_text(), **obj}
        if self.app.json:
            sys.stdout.write(json.dumps(obj) + "\n")   # JSON lines: one object a line, -p or not
        else:
            sys.stdout.write(f"{obj['time']} {escape_text(text)}\n")
        sys.stdout.flush()

    def emit_result(self, r: converge.DeviceResult, cause: dict, cause_text: str) -> None:
        if r.status == converge.CHANGED:
            what = "; ".join(f"{s.feature}: {s.setting} {s.before} -> {s.after}" for s in r.changes)
            text = f"{r.ifname}: repaired after {cause_text}: {what}"
        elif r.error:
            err = r.error[len(r.ifname) + 2:] if r.error.startswith(r.ifname + ": ") else r.error
            text = f"{r.ifname}: {r.status} after {cause_text}: {err}"
        else:
            text = f"{r.ifname}: {r.status} after {cause_text}: " + ", ".join(
                f"{h} {v.state}" for h, v in r.after.items())
        # a repair: what was restored (changed), or an attempt that failed and was rolled back
        event = "repair" if r.status in (converge.CHANGED, converge.FAILED) else "device"
        self.emit({"event": event, "cause": cause, **r.to_json()}, text)

    # --- signals ----------------------------------------------------------------

    def _on_signal(self, signum: int, _frame) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self._stop = signum

    def run(self) -> None:
        from xdphints_cli.netlink.events import EventSource
        from xdphints_cli.netlink.session import Netlink

        wake_r, wake_w = socket.socketpair()
        for s in (wake_r, wake_w):
            s.setblocking(False)
        old_handlers = {s: signal.signal(s, self._on_signal) for s in _SIGNALS}
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        try:
            # notifications are subscribed to before the first pass: nothing between is missed
            with EventSource(poll_interval=POLL_INTERVAL) as src, Netlink() as nl:
                self.emit({"event": "start", "file": self.path, "pid": os.getpid(),
                           "poll-interval-s": POLL_INTERVAL},
                          f"watching {self.path} (pid {os.getpid()}; hwtstamp config polled every "
                          f"{POLL_INTERVAL:g} s)")
                self._guarded(lambda: self._rematch(nl, {}, initial=("start", {"event": "start"}, "start")))
                self._loop(nl, src, wake_r)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for s, h in old_handlers.items():
                signal.signal(s, h)
            wake_r.close()
            wake_w.close()

    def _loop(self, nl, src, wake_r) -> None:
        pending: Dict[int, Tuple[dict, str]] = {}   # ifindex -> (cause, its text)
        rematch: Dict[int, Tuple[dict, str]] = {}   # link events: ifindex -> cause
        deadline: Optional[float] = None            # end of the settle time
        while True:
            now = time.monotonic()
            timeouts = [src.timeout()]
            if deadline is not None:
                timeouts.append(max(0.0, deadline - now))
            expiry = self.limit.next_expiry()
            if expiry is not None:
                timeouts.append(max(0.0, expiry - now))
            try:
                select.select([src, wake_r], [], [], min(timeouts))
            except InterruptedError:
                pass
            try:
                while wake_r.recv(512):
                    pass
            except BlockingIOError:
                pass
            if self._stop is not None:
                name = signal.Signals(self._stop).name
                self.emit({"event": "stop", "signal": name}, f"stopped by {name}; the devices are left as they are")
                return
            if self._reload:
                self._reload = False
                self._do_reload(nl)
            for ev in src.read():
                self._classify(ev, pending, rematch)
            now = time.monotonic()
            for name in self.limit.expire(now):
                pending.update({i: ({"event": "backoff-over"}, "the backoff ended")
                                for i, t in self.targets.items() if t.ifname == name})
            if (pending or rematch) and deadline is None:
                deadline = now + SETTLE
            if deadline is not None and now >= deadline:
                deadline = None
                causes, pending = pending, {}
                links, rematch = rematch, {}
                self._guarded(lambda: self._pass(nl, causes, links))

    def _classify(self, ev, pending: dict, rematch: dict) -> None:
        kind = ev.kind
        cause = {"event": kind, "via": ev.via, **({"detail": ev.detail} if ev.detail else {}),
                 "changed-by": "unknown"}
        if kind in ("link-new", "link-del", "rename", "overflow"):
            text = {"link-new": "the device appeared (created or moved into this namespace)",
                    "link-del": "the device went away",
                    "rename": f"a rename from {ev.detail.get('old-name')}",
                    "overflow": "lost notifications (everything read again)"}[kind]
            cause.pop("changed-by")
            rematch[ev.ifindex] = (cause, text)
        elif kind == "features" and ev.ifindex in self.targets:
            changed = ev.detail.get("changed", {})
            what = ", ".join(f"{n} {'on' if on else 'off'}" for n, on in changed.items()) or "offloads"
            pending[ev.ifindex] = (cause, f"an offload change ({what}; by whom is unknown)")
        elif kind == "hwtstamp" and ev.ifindex in self.targets:
            old, new = ev.detail.get("old") or {}, ev.detail.get("new") or {}
            what = f"rx-filter {old.get('rx-filter', 'n/a')} -> {new.get('rx-filter', 'n/a')}"
            pending[ev.ifindex] = (cause, f"a hwtstamp config change ({what}, polled; by whom is unknown)")

    def _guarded(self, fn) -> None:
        """Run a pass with SIGTERM/SIGINT/SIGHUP held back: they act once it is done."""
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            fn()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

    # --- passes -------------------------------------------------------------------

    def _pass(self, nl, causes: Dict[int, Tuple[dict, str]], links: Dict[int, Tuple[dict, str]]) -> None:
        if links:
            self._rematch(nl, links)
        for ifindex, (cause, text) in causes.items():
            if ifindex in self.targets:
                self._converge(nl, self.targets[ifindex], cause, text)

    def _rematch(self, nl, links: Dict[int, Tuple[dict, str]],
                 initial: Optional[Tuple[str, dict, str]] = None) -> None:
        """Match the file to the devices here again; converge each device that is new
        to the match (or every one, at start and reload), and say which are absent."""
        try:
            found = converge.matched(nl, self.desired)
        except XdpHintsError as e:
            self.app.warn(f"listing the devices: {e}; trying again at the next event")
            return
        old = self.targets
        self.targets = {t.ifindex: t for t in found.targets}
        for ifindex, target in old.items():
            now = self.targets.get(ifindex)
            if now is None or now.ifname != target.ifname:
                self.last_status.pop(ifindex, None)
        for target in found.targets:
            prev = old.get(target.ifindex)
            if initial is not None:
                self._converge(nl, target, initial[1], initial[2], always=True)
            elif prev is None or prev.ifname != target.ifname or prev.hints != target.hints:
                cause, text = links.get(target.ifindex, ({"event": "link-new"}, "the device appeared"))
                self._converge(nl, target, cause, text, always=True)
        absent = {s.name for s in found.absent}
        for name in sorted(absent - self.absent) if initial is None else sorted(absent):
            gone = next((t for t in old.values() if t.ifname == name), None)
            why = "went away (deleted, renamed or moved out of this namespace)" if gone else "absent"
            self.emit({"event": "absent", "ifname": name, "status": "absent",
                       "sections": [f"device.{name}"]}, f"{name}: {why}; waiting for it")
        self.absent = absent

    def _converge(self, nl, target: Target, cause: dict, cause_text: str, always: bool = False) -> None:
        now = time.monotonic()
        if self.limit.blocked(target.ifname, now):
            return
        r = converge.converge(nl, target, netns=self.app.netns)
        if r.status in (converge.CHANGED, converge.FAILED):
            wait = self.limit.record(target.ifname, now)
        else:
            wait = None
        last = self.last_status.get(target.ifindex)
        self.last_status[target.ifindex] = r.status
        # a drift pass that found nothing to do (our own repair's notification, say) is quiet
        # (every attempt that counts against the rate limit is said, a failed one too)
        quiet = r.status == converge.UNCHANGED or (r.status == last and wait is None
                                                   and r.status not in (converge.CHANGED, converge.FAILED))
        if always or not quiet:
            self.emit_result(r, cause, cause_text)
        if wait is not None:
            self.emit({"event": "backoff", "ifname": target.ifname, "repairs": REPAIR_LIMIT,
                       "window-s": REPAIR_WINDOW, "backoff-s": wait},
                      f"{target.ifname}: {REPAIR_LIMIT} repairs within {REPAIR_WINDOW:g} s: another process keeps "
                      f"undoing them; leaving {target.ifname} alone for {wait:g} s")

    def _do_reload(self, nl) -> None:
        try:
            desired = load(self.path)
        except XdpHintsError as e:
            self.app.warn(f"SIGHUP: {e}; keeping the previous file")
            return
        self.desired = desired
        self.limit = _RateLimit()   # an operator's SIGHUP is a deliberate "try again": backoffs end
        self.emit({"event": "reload", "file": self.path}, f"SIGHUP: read {self.path} again")
        self._guarded(lambda: self._rematch(nl, {}, initial=("reload", {"event": "reload"}, "SIGHUP")))
