"""`xdphints enable|disable FEATURE... [-d DEV]`: the hardware side of XDP hints.

The logic (plan, apply, verify, roll back) is in xdphints_cli/device/planner.py; this module
parses, renders and prints warnings. The feature names come from device/features.py, a
table of plain data, so importing it here keeps `--help` free of pyroute2 and rich.
"""

from __future__ import annotations

import sys
from typing import Optional, Tuple

import click

from xdphints_cli.cli.app import App
from xdphints_cli.cli.options import dev_option, global_options, nonempty
from xdphints_cli.device.features import FEATURE_NAMES, FEATURES

_FEATURE_HELP = "\b\nFeatures:\n" + "\n".join(f"  {f.name:<13} {f.help}" for f in FEATURES)

_ENABLE_HELP = f"""Turn on the hardware side of XDP hints on a device.

Idempotent and all-or-nothing: every FEATURE is checked before anything is
changed; one already on is left alone; when a change fails, the ones this call
made are put back. An rx-filter set by another program (ptp4l) is never narrowed.

For a FEATURE that is a hint, enable agrees with `xdphints check`: a hint check
calls ready is left as it is (exit 0, not changed); one it calls unsupported is
refused (exit 3) and nothing is changed. --available enables every hint the
device can give (or those of the FEATUREs it can) and leaves out the others.

\b
Examples:
  xdphints enable --available -d eth0      every hint eth0 can give
  xdphints enable rx-timestamp rx-vlan -d eth0
  xdphints -j enable rx-hash -d eth0       JSON: "changed", and per feature

{_FEATURE_HELP}
"""

_DISABLE_HELP = f"""Turn the hardware side of XDP hints off again.

Idempotent and all-or-nothing like enable. Turning timestamping off takes the
hardware timestamps from every program on the device, PTP daemons included.

{_FEATURE_HELP}
"""

_EPILOG = ("Exit codes: 0 done (also when nothing needed changing), 1 failed (what this call had "
           "changed is restored), 2 usage error (unknown feature or filter), 3 unsupported or "
           "[fixed] on this device, 4 permission denied (needs CAP_NET_ADMIN), 5 no such device, "
           "128+N interrupted by signal N (SIGINT, SIGTERM, SIGHUP; what was changed is restored), "
           "141 stdout's reader went away before the report was written (restored). The report "
           "on stdout is part of the change: when it cannot be written (stdout closed or full: "
           "exit 1), the change is undone too.")


def _feature_argument(f):
    return click.argument("features", nargs=-1, required=True, metavar="FEATURE...",
                          type=click.Choice(FEATURE_NAMES))(f)


def _optional_feature_argument(f):
    return click.argument("features", nargs=-1, metavar="[FEATURE]...", type=click.Choice(FEATURE_NAMES))(f)


def _dry_run_option(f):
    return click.option("--dry-run", is_flag=True,
                        help="Print what would change and change nothing.")(f)


@click.command("enable", help=_ENABLE_HELP, epilog=_EPILOG)
@_optional_feature_argument
@dev_option
@click.option("--available", is_flag=True,
              help="Every hint the device can give (without FEATURE), or the FEATUREs it can give; "
                   "the hints it cannot are reported and left out. Exit 3 only when none is left.")
@click.option("--rx-filter", metavar="NAME", callback=nonempty,
              help="rx-timestamp: the hwtstamp rx-filter to ask for (default: all), a name of the kernel's "
                   "string set that the device lists, e.g. ptpv2-event.")
@click.option("--tx-type", metavar="NAME", callback=nonempty,
              help="tx-timestamp: the hwtstamp tx-type to ask for (default: on), e.g. onestep-sync.")
@_dry_run_option
@global_options
@click.pass_obj
def enable(app: App, features: Tuple[str, ...], dev: Optional[str], available: bool, rx_filter: Optional[str],
           tx_type: Optional[str], dry_run: bool) -> None:
    if not features and not available:
        raise click.UsageError(f"enable: no FEATURE given: name one or more of {', '.join(FEATURE_NAMES)}, "
                               "or give --available for every hint the device can give")
    if available and not features:
        from xdphints_cli.device.features import HINT_NAMES

        features = HINT_NAMES
    _run(app, "enable", features, dev, rx_filter, tx_type, dry_run, available)


@click.command("disable", help=_DISABLE_HELP, epilog=_EPILOG)
@_feature_argument
@dev_option
@_dry_run_option
@global_options
@click.pass_obj
def disable(app: App, features: Tuple[str, ...], dev: Optional[str], dry_run: bool) -> None:
    _run(app, "disable", features, dev, None, None, dry_run)


def _run(app: App, action: str, features: Tuple[str, ...], dev: Optional[str], rx_filter: Optional[str],
         tx_type: Optional[str], dry_run: bool, available: bool = False) -> None:
    from xdphints_cli.device import planner
    from xdphints_cli.device.state import choose_link, gather_link
    from xdphints_cli.netlink.session import Netlink

    with Netlink() as nl:
        link, chosen_by = choose_link(nl, dev)
        app.acting_on(link.ifname, chosen_by)
        if action == "enable":
            from xdphints_cli.device.hint_plan import plan_enable

            report = gather_link(nl, link)
            backend = planner.KernelBackend(nl, link, report.driver)
            result = plan_enable(backend, report, features, rx_filter=rx_filter, tx_type=tx_type,
                                 netns=app.netns, available=available)
        else:
            from xdphints_cli.ioctl import drvinfo

            backend = planner.KernelBackend(nl, link, drvinfo.driver_name(link.ifindex, link.ifname) or link.kind)
            result = planner.plan(backend, action, features)
        if dry_run:
            _report(app, result, link.ifindex, chosen_by)
            return
        # the report is part of the change: not written (stdout closed, full, its reader
        # gone) or cut short by a signal, the change is undone
        with planner.applied(backend, result, hold_signals=True):
            _report(app, result, link.ifindex, chosen_by)


def _report(app: App, result, ifindex: int, chosen_by: str) -> None:
    for step in result.changes:
        if step.warning:
            app.warn(("dry run: " if not result.applied else "") + step.warning)
    if app.json:
        app.emit_json({**result.to_json(ifindex), "device-chosen-by": chosen_by})
    else:
        render(app, result)
    sys.stdout.flush()


def step_line(ifname: str, step, dry_run: bool) -> str:
    if step.changed:
        text = f"{step.setting} {step.before} -> {step.after}"
        text += " (dry run: not changed)" if dry_run else ""
    else:
        text = f"{step.setting} {step.after} (unchanged)"
    if step.note:
        text += f"; {step.note}"
    return f"{ifname}: {step.feature}: {text}"


def render(app: App, result) -> None:
    c = app.console
    for step in result.steps:
        c.print(step_line(result.ifname, step, not result.applied))
    for hint, why in result.unsupported.items():
        c.print(f"{result.ifname}: {hint}: unsupported, left out: {why}")
