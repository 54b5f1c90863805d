"""`xdphints apply FILE [--check | --watch]`: bring every device a hints file names to
the hints it lists, and with --watch keep them there.

Parsing and matching are in xdphints_cli/fleet/desired.py, converging in
fleet/converge.py, the watch loop in fleet/watch.py; this module parses the command
line and renders. Nothing heavy is imported at module level (`--help` stays light).
"""

from __future__ import annotations

import sys

import click

from xdphints_cli.cli.app import App
from xdphints_cli.cli.options import global_options

_HELP = """Make every hint a hints FILE lists ready on the devices it names.

FILE is TOML: a [device.NAME] table per interface and a [driver.NAME] table for
every interface of a driver, each with hints = [...] (rx-timestamp, rx-hash,
rx-vlan) and, optionally, rx-filter = "NAME". A hint already ready is left alone;
per device all or nothing, rolled back on failure as enable does. A bad file is
refused whole (file, line and key named) before anything changes. FILE - reads
stdin (not with --watch).
"""

_EPILOG = ("Exit codes: 0 every listed hint is ready (changed or not), 1 failed (that device was rolled back), "
           "2 usage error or bad file, 3 a listed hint is unsupported on a matched device, 4 permission denied, "
           "5 a [device] the file names is absent (or the file is missing), 6 (--check) something would change, "
           "128+N interrupted by signal N, 141 stdout's reader went away (every device this call changed is "
           "put back then, as when stdout cannot take the report: exit 1). "
           "--watch runs until SIGTERM or SIGINT (exit 0, the devices left as they are); SIGHUP re-reads FILE.")


@click.command("apply", help=_HELP, epilog=_EPILOG)
@click.argument("file", metavar="FILE")
@click.option("--check", is_flag=True, help="Change nothing; print what would change (exit 6 if anything would).")
@click.option("--watch", is_flag=True,
              help="Keep running: re-apply within a second or two when a matching device appears or drifts.")
@global_options
@click.pass_obj
def apply(app: App, file: str, check: bool, watch: bool) -> None:
    from xdphints_cli.errors import UsageError

    if check and watch:
        raise UsageError("--check and --watch cannot be combined")
    if watch and file == "-":
        raise UsageError("--watch needs a FILE it can read again on SIGHUP, not stdin (-)")
    from xdphints_cli.fleet.desired import load

    desired = load(file)          # a bad file: exit 2 before any netlink socket is opened
    if watch:
        from xdphints_cli.fleet.watch import Watch
        from xdphints_cli.process import caps

        # it would only log "not permitted" at every repair: say it once, now (exit 4)
        caps.require("apply --watch", ["CAP_NET_ADMIN"], "it changes offloads and timestamping")

        Watch(app, file, desired).run()
        return
    _once(app, desired, check)


def _once(app: App, desired, check: bool) -> None:
    import contextlib

    from xdphints_cli.fleet import converge
    from xdphints_cli.netlink.session import Netlink

    results = []
    # as enable's, the report is part of the change: the changes stay open (held) until
    # it is written, and one that cannot be written, or a signal before it is, puts
    # every device this call changed back, so the exit code says what the devices have
    with Netlink() as nl, contextlib.ExitStack() as held:
        found = converge.matched(nl, desired)
        for target in found.targets:
            results.append(converge.converge(nl, target, check=check, netns=app.netns, held=held))
        results += [converge.absent_result(s) for s in found.absent]
        _report(app, desired, found, results, check)
    code = converge.exit_code(results)
    if code:
        sys.stdout.flush()
        # one error line per device that is not as the file says; the exit code sums them up
        from xdphints_cli.cli.safe_text import escape_text

        for r in results:
            if r.error:
                text = r.error if r.error.startswith(r.ifname + ":") else f"{r.ifname}: {r.error}"
                sys.stderr.write(f"xdphints: error: {escape_text(text)}\n")
        sys.exit(code)


def _report(app: App, desired, found, results, check: bool) -> None:
    if app.json:
        app.emit_json({"file": desired.path, "check": check, "devices": [r.to_json() for r in results],
                       "unmatched-drivers": [s.name for s in found.unmatched_drivers]})
    else:
        for r in results:
            for line in result_lines(r, check):
                app.console.print(line)
        if not results:
            app.warn(f"{desired.path}: no device here matches it"
                     + ("" if desired.sections else " (it lists no [device] or [driver] table)"))
    sys.stdout.flush()          # a stdout that cannot take it fails here, inside the change


def result_lines(r, check: bool) -> list:
    """A device's header line, then one line per hint: its verdict and what changed."""
    head = f"{r.ifname}: {r.status}"
    if r.sources:
        head += f" ({', '.join(r.sources)})"
    if r.error:
        err = r.error[len(r.ifname) + 2:] if r.error.startswith(r.ifname + ": ") else r.error
        head += f": {err}"
    lines = [head]
    for name, v in r.after.items():
        before = r.before.get(name)
        step = r.step_of(name)
        if step is not None and step.changed:
            detail = f"{step.setting} {step.before} -> {step.requested if check else step.after}"
            detail += " (would change)" if check else ""
            if step.note:
                detail += f"; {step.note}"
        else:
            # hint_plan's note on a ready hint repeats check's reason
            note = step.note if step is not None and step.note and not step.note.startswith("ready:") else None
            detail = v.reason + (f"; {note}" if note else "")
        was = f" (was {before.state})" if before is not None and before.state != v.state else ""
        lines.append(f"{r.ifname}: {name:<13} {v.state}{was}: {detail}")
    return lines
