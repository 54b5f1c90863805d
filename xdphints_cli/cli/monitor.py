"""`xdphints monitor [DEV]`: one line per kernel event that touches XDP hints, as
`ip monitor` and `ethtool --monitor` print theirs, with the hints' readiness after it.

The events are netlink/events.py's; which of them touch hints and the readiness
that goes with them, device/hint_events.py's; this module only waits and prints.
SIGINT and SIGTERM end it with exit 0 (stopping is how a monitor ends, as for dump);
a reader of stdout that went away (`| head -1`) ends it quietly at once.
"""

from __future__ import annotations

from typing import Optional

import click

from xdphints_cli.cli.app import App
from xdphints_cli.cli.options import FLOAT, check_device_name, complete_devices, dev_option, global_options, usage_error

DEFAULT_INTERVAL = 1.0


@click.command("monitor", epilog="Exit codes: 0 stopped by SIGINT or SIGTERM, 2 usage error, 4 permission "
                                 "denied, 5 no such device (DEV must exist when monitor starts).")
@click.argument("device", required=False, metavar="[DEV]", shell_complete=complete_devices, callback=check_device_name)
@dev_option
@click.option("--interval", type=FLOAT, default=DEFAULT_INTERVAL, show_default=True, metavar="SECONDS",
              help="How often to read what the kernel sends no notification for: the hwtstamp "
                   "config and XDP programs attached through a bpf_link.")
@global_options
@click.pass_obj
def monitor(app: App, device: Optional[str], dev: Optional[str], interval: float) -> None:
    """Print one line per event that touches XDP hints, until stopped: offloads a hint
    depends on and the hwtstamp config changing, an XDP program attached or detached
    (with the hints structs it exports), a link added, deleted, renamed, up or down.
    Each line ends with the hints' readiness after the event (as `check` says it).
    Without DEV, every device of the namespace; with DEV, the device of that name.

    Offload changes and link events come as kernel notifications; the hwtstamp
    config (SIOCSHWTSTAMP and ethtool TSCONFIG_SET notify no one) and XDP programs
    attached through a bpf_link are read every --interval seconds.
    """
    import math

    if device is not None and dev is not None and device != dev:
        raise usage_error(f"two devices given: {device} and {dev}")
    name = device if device is not None else dev
    if not (math.isfinite(interval) and 0.05 <= interval <= 3600):
        raise usage_error(f"--interval must be 0.05 to 3600 seconds, not {interval}")
    import sys

    sys.stdout.write("")        # a stdout closed at the start (>&-) fails now, not at the first event
    from xdphints_cli.netlink import rtnl
    from xdphints_cli.netlink.events import EventSource
    from xdphints_cli.netlink.session import Netlink

    with Netlink() as nl:
        if name is not None:
            rtnl.get_link(nl, name)        # no such device: exit 5, as `ip monitor dev` refuses one
        with EventSource(name, poll_interval=interval) as src:
            _run(app, nl, src)


def _run(app: App, nl, src) -> None:
    import os
    import select
    import signal
    import sys

    from xdphints_cli.cli.app import output_closed
    from xdphints_cli.cli.streams import unblock_stdout_soon
    from xdphints_cli.device.hint_events import notices

    stopped = []
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    def stop(signum, _frame) -> None:
        if not stopped:
            unblock_stdout_soon()
        stopped.append(signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    old_wakeup = signal.set_wakeup_fd(wake_w)      # a signal wakes the poll below at once
    try:
        poller = select.poll()
        poller.register(src.fileno(), select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        try:
            out_fd = sys.stdout.fileno()
            poller.register(out_fd, 0)            # POLLERR: the reader of a pipe went away
        except (OSError, ValueError, AttributeError):
            out_fd = -1
        while not stopped:
            ready = poller.poll(max(src.timeout(), 0.0) * 1000)
            if any(fd == out_fd and ev & (select.POLLERR | select.POLLHUP) for fd, ev in ready):
                output_closed()
            for n in notices(nl, src.read(), app.netns):
                if stopped:          # asked to stop: not the rest of a burst first
                    break
                if app.json:
                    app.emit_json(notice_json(n))
                else:
                    app.console.print(notice_text(n))
                    sys.stdout.flush()
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for s, h in old.items():
            signal.signal(s, h)
        os.close(wake_r)
        os.close(wake_w)


# --- rendering ---------------------------------------------------------------------

def _program_text(p) -> str:
    line = f"{p.mode} id {p.id}"
    if p.name is None:
        return line
    line += f" name {p.name or '-'}" + (f" btf-obj-id {p.btf_id}" if p.btf_id else " (no BTF)")
    if p.hints_structs is not None:
        line += " hints " + (", ".join(f"{h.name} (btf-id {h.btf_id})" for h in p.hints_structs) or "none")
    return line


def _hwtstamp_text(old: Optional[dict], new: Optional[dict]) -> str:
    if new is None:
        return "config unreadable now"
    parts = []
    for key in ("rx-filter", "tx-type"):
        before = old.get(key) if old else None
        if before is not None and before != new.get(key):
            parts.append(f"{key} {before} -> {new.get(key)}")
        else:
            parts.append(f"{key} {new.get(key)}")
    return ", ".join(parts)


def _what(n) -> str:
    ev, d = n.event, n.event.detail
    if ev.kind == "link-new":
        progs = f", xdp {_programs_text(n, d['xdp'])}" if d.get("xdp") else ""
        return f"link added ({'up' if d.get('up') else 'down'}){progs}"
    if ev.kind == "link-del":
        return "link moved to another network namespace" if d.get("moved") else "link deleted"
    if ev.kind == "rename":
        return f"renamed from {d['old-name']}"
    if ev.kind == "up":
        return "up"
    if ev.kind == "down":
        return "down (" + ("no carrier" if d.get("admin-up") else "admin down") + ")"
    if ev.kind == "xdp":
        if d["action"] == "detach":
            return "xdp detach: " + "; ".join(f"{p['mode']} id {p['id']}" for p in d["previous"])
        prev = (" (was " + "; ".join(f"{p['mode']} id {p['id']}" for p in d["previous"]) + ")"
                if d["action"] == "replace" else "")
        return f"xdp {d['action']}: {_programs_text(n, d['programs'])}{prev}"
    if ev.kind == "features":
        return "offloads: " + ", ".join(f"{k} {'on' if v else 'off'}" for k, v in n.changed.items())
    if ev.kind == "hwtstamp":
        return "hwtstamp: " + _hwtstamp_text(d.get("old"), d.get("new"))
    if ev.kind == "overflow":
        return "notifications were lost (socket overflow); the state was read again"
    return ev.kind


def _programs_text(n, progs) -> str:
    """The programs as described after the event, else the ids the event named."""
    if n.programs:
        return "; ".join(_program_text(p) for p in n.programs)
    return "; ".join(f"{p['mode']} id {p['id']}" for p in progs)


def notice_text(n) -> str:
    from xdphints_cli.timestamps import wall_text

    ev = n.event
    who = f"{ev.ifname}: " if ev.kind != "overflow" else ""
    line = f"{wall_text(ev.time)} {who}{_what(n)}"
    if n.verdicts:
        line += "; hints: " + ", ".join(f"{v.hint} {v.state}" for v in n.verdicts)
    return line


def notice_json(n) -> dict:
    from xdphints_cli.names import json_name
    from xdphints_cli.timestamps import wall_json

    ev = n.event
    out: dict = {"time": wall_json(ev.time), "event": ev.kind}
    if ev.kind != "overflow":
        out.update({"ifindex": ev.ifindex, **json_name("ifname", ev.ifname)})
    d = dict(ev.detail)
    if ev.kind == "features":
        d["changed"] = n.changed
    if "old-name" in d:
        d.update(json_name("old-name", d["old-name"]))
    if n.programs:
        key = "programs" if ev.kind == "xdp" else "xdp"
        d[key] = [p.to_json() for p in n.programs]
    out.update(d)
    out["via"] = ev.via
    if n.verdicts:
        out["hints"] = {v.hint: v.to_json() for v in n.verdicts}
    return out
