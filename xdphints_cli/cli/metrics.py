"""`xdphints metrics [-d DEV] [-o FILE]`: the hints' readiness and the config behind it
in the Prometheus text format, for node_exporter's textfile collector.

The states are check's (device/readiness.py), read the same way: a scrape and a
`check -j` of the same moment agree. What the kernel would not say (a section of
DeviceReport.unavailable) has no series rather than a guessed value.
"""

from __future__ import annotations

from typing import List, Optional

import click

from xdphints_cli.cli.app import App
from xdphints_cli.cli.options import dev_option, global_options, nonempty

STATES = ("ready", "needs-enable", "unsupported")


@click.command("metrics", epilog="Exit codes: 0 written, 1 FILE cannot be replaced (not a regular file, or a "
                                 "write error), 2 usage error, 4 permission denied, 5 no such device, or FILE's directory "
                                 "does not exist.")
@dev_option
@click.option("-o", "--output", "output", metavar="FILE", callback=nonempty,
              help="Write to FILE atomically (a temporary file in its directory renamed over it); "
                   "'-' or none: stdout.")
@global_options
@click.pass_obj
def metrics(app: App, dev: Optional[str], output: Optional[str]) -> None:
    """Write each device's hints state in the Prometheus text format: per device and
    hint a gauge that is 1 for the current state (ready, needs-enable, unsupported)
    and 0 for the others, and the config behind it: the hwtstamp RX filter, the
    offloads hints depend on, attached XDP programs. Without -d, every device of the
    namespace.

    For node_exporter's textfile collector: `xdphints metrics -o
    /var/lib/node_exporter/textfile_collector/xdphints.prom` from a timer.
    """
    from xdphints_cli.device.readiness import verdicts
    from xdphints_cli.device.state import gather_link
    from xdphints_cli.errors import EXIT_NOT_FOUND, XdpHintsError
    from xdphints_cli.netlink import rtnl
    from xdphints_cli.netlink.session import Netlink

    with Netlink() as nl:
        links = [rtnl.get_link(nl, dev)] if dev is not None else rtnl.list_links(nl)
        reports = []
        for link in links:
            try:
                report = gather_link(nl, link)
            except XdpHintsError as e:
                if dev is not None or e.exit_code != EXIT_NOT_FOUND:
                    raise
                continue                # went away since the list: not a device any more
            reports.append((report, verdicts(report, netns=app.netns)))
    text = render_reports(reports)
    if output is None or output == "-":
        import sys

        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from xdphints_cli.cli.atomic_file import replace

        replace(output, text.encode())


def families(reports) -> List:
    from xdphints_cli.cli.prometheus import Family
    from xdphints_cli.device.hint_events import HINT_OFFLOADS

    state = Family("xdphints_hint_state", "State of an XDP hint on a device, as xdphints check says: "
                   "1 for the current state (ready, needs-enable, unsupported), 0 for the others.")
    info = Family("xdphints_device_info", "A device xdphints read, with its driver.")
    hwts = Family("xdphints_hwtstamp_config_info", "The hardware timestamping config in use (rx_filter "
                  "none: no hardware RX timestamps); absent where the device has none or it is unreadable.")
    offl = Family("xdphints_offload_active", "Whether an offload a hint depends on is on (1) or off (0); "
                  "absent where the device lacks it.")
    fixed = Family("xdphints_offload_fixed", "Whether that offload cannot be changed on the device (1).")
    xdp = Family("xdphints_xdp_attached", "Whether an XDP program is attached to the device (1).")
    prog = Family("xdphints_xdp_program_info", "An attached XDP program (name empty where it needs "
                  "CAP_SYS_ADMIN to read).")
    from xdphints_cli.names import json_name

    for report, found in reports:
        # a name that is not UTF-8 also gets device_bytes (hex), as JSON's ifname-bytes:
        # its \xNN text alone could be another device's literal name, and two devices
        # with the same labels would be one series, which the collector refuses
        d = {k.replace("-", "_"): v for k, v in json_name("device", report.link.ifname).items()}
        info.add(1, **d, driver=report.driver or "")
        for v in found:
            for s in STATES:
                state.add(1 if v.state == s else 0, **d, hint=v.hint, state=s)
        cfg = report.hwtstamp
        if cfg is not None and cfg.rx_filter is not None:
            hwts.add(1, **d, rx_filter=cfg.rx_filter, tx_type=cfg.tx_type or "", source=cfg.source)
        for name in HINT_OFFLOADS:
            feat = report.features.get(name) if report.features is not None else None
            if feat is not None:
                offl.add(1 if feat.active else 0, **d, offload=name)
                fixed.add(1 if feat.fixed else 0, **d, offload=name)
        xdp.add(1 if report.link.xdp.programs else 0, **d)
        for p in report.programs:
            prog.add(1, **d, mode=p.mode, id=str(p.id), name=p.name or "")
    return [state, info, hwts, offl, fixed, xdp, prog]


def render_reports(reports) -> str:
    from xdphints_cli.cli.prometheus import render

    return render(families(reports))
