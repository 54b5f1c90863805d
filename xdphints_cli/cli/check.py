"""`xdphints check [HINT...] [-d DEV]`: for scripts, is each hint usable for XDP right now?

The verdicts are device/readiness.py's, the same as `show`'s "hints"; the exit code sums them up.
"""

from __future__ import annotations

import sys
from typing import Optional, Tuple

import click

from xdphints_cli.cli.app import App
from xdphints_cli.cli.options import dev_option, global_options
from xdphints_cli.device.features import HINT_NAMES

STATE_STYLES = {"ready": "green", "needs-enable": "yellow", "unsupported": "red"}


@click.command("check", epilog="Exit codes: 0 all ready, 3 any unsupported (with --available: all of them), "
                               "6 all supported but some need 'xdphints enable', 2 usage error, "
                               "4 permission denied, 5 no such device.")
@click.argument("hints", nargs=-1, metavar="[HINT]...", type=click.Choice(HINT_NAMES))
@dev_option
@click.option("--available", is_flag=True,
              help="Judge only the hints the device can give: unsupported ones are listed but do not "
                   "make the exit code 3 (unless none is left), as `enable --available` leaves them out.")
@global_options
@click.pass_obj
def check(app: App, hints: Tuple[str, ...], dev: Optional[str], available: bool) -> None:
    """Check that XDP hints are usable on a device now: the driver implements the
    metadata kfunc and the hardware side is on. Without HINT, all hints.

    A hint is "ready", "needs-enable" (and `xdphints enable` fixes it) or
    "unsupported" (the driver or device cannot give it). `xdphints enable` agrees:
    it leaves a ready hint alone, turns on one that needs enabling and refuses an
    unsupported one.
    """
    from xdphints_cli.device.state import gather
    from xdphints_cli.errors import EXIT_NEEDS_ENABLE, EXIT_OK, EXIT_UNSUPPORTED
    from xdphints_cli.netlink.session import Netlink
    from xdphints_cli.device.readiness import (NEEDS_ENABLE, READY, UNSUPPORTED, metadata_area,
                                               verdicts)

    with Netlink() as nl:
        report = gather(nl, dev)
    names = list(dict.fromkeys(hints)) or None
    found = verdicts(report, names, app.netns)
    if names:  # in the order asked for
        found.sort(key=lambda v: names.index(v.hint))
    states = {v.state for v in found}
    if available and states != {UNSUPPORTED}:
        states.discard(UNSUPPORTED)
    if UNSUPPORTED in states:
        overall, code = UNSUPPORTED, EXIT_UNSUPPORTED
    elif NEEDS_ENABLE in states:
        overall, code = NEEDS_ENABLE, EXIT_NEEDS_ENABLE
    else:
        overall, code = READY, EXIT_OK
    area = metadata_area(report)
    if app.json:
        from xdphints_cli.names import json_name

        app.emit_json({**json_name("ifname", report.link.ifname), "ifindex": report.link.ifindex, "state": overall,
                       "hints": {v.hint: v.to_json() for v in found},
                       "metadata-area": area.to_json()})
    else:
        c = app.console
        for v in found:
            c.print(f"{report.link.ifname}: {v.hint:<13} ", end="")
            c.print(f"{v.state:<13}", style=STATE_STYLES.get(v.state), end="")
            c.print(f" {v.reason}" + (f"; fix: {v.fix}" if v.fix else ""))
        c.print(f"{report.link.ifname}: {area.text()}")
    if code != EXIT_OK:
        sys.stdout.flush()
        # not an error: the exit code is the answer (click's ctx.exit would be swallowed
        # by main's standalone_mode=False)
        sys.exit(code)
