"""`xdphints show [DEV]`: the one view of everything that decides whether hints work."""

from __future__ import annotations

from typing import List, Optional

import click

from xdphints_cli.cli.app import App
from xdphints_cli.cli.options import check_device_name, complete_devices, dev_option, global_options, usage_error
from xdphints_cli.cli.safe_text import escape
from xdphints_cli.names import json_name


@click.command("show", epilog="Exit codes: 0 shown, 1 failed, 2 usage error, 4 permission denied (-n needs "
                               "CAP_SYS_ADMIN), 5 no such device or namespace.")
@click.argument("device", required=False, metavar="[DEV]", shell_complete=complete_devices, callback=check_device_name)
@dev_option
@global_options
@click.pass_obj
def show(app: App, device: Optional[str], dev: Optional[str]) -> None:
    """Show a device's XDP hints state; without DEV, one row per interface.

    With DEV: driver, queues and AF_XDP sockets, attached XDP programs, XDP and XSK
    feature bits, RX metadata kfuncs the driver implements, hardware timestamping
    capabilities and current config, offloads, and a verdict per hint.

    Offloads go by the kernel's names (JSON keys too); where `ethtool -k` prints
    an older name, it follows in brackets with the name `ethtool -K` takes:
    rx-hashing (receive-hashing, rxhash), rx-vlan-hw-parse (rx-vlan-offload,
    rxvlan), rx-checksum (rx-checksumming, rx); rx-vlan-stag-hw-parse is the same
    in both.
    """
    if device is not None and dev is not None and device != dev:
        raise usage_error(f"two devices given: {device} and {dev}")
    from xdphints_cli.device import state as devmod
    from xdphints_cli.netlink.session import Netlink

    with Netlink() as nl:
        name = device if device is not None else dev
        if name is None:
            reports = devmod.list_reports(nl)
            if app.json:
                app.emit_json([summary_json(r) for r in reports])
            else:
                render_list(app, reports)
            return
        report = devmod.gather(nl, name)
    from xdphints_cli.device.readiness import metadata_area, verdicts

    hints = verdicts(report, netns=app.netns)
    area = metadata_area(report)
    if app.json:
        app.emit_json(report_json(report, hints, area))
    else:
        render_report(app, report, hints, area)


# --- JSON (the keys are a documented contract: see README.md and xdphints(8)) ---

def _queues_json(report) -> dict:
    """What `ethtool -l` shows as current (a count the driver does not report is
    absent, as ethtool prints n/a), or the counts from rtnetlink when the driver has
    no CHANNELS; and the active RX queue count dump and the completions use."""
    ch, link = report.channels, report.link
    if ch is not None:
        out: dict = {"rx": ch.rx_count, "tx": ch.tx_count, "combined": ch.combined_count,
                     "source": "channels"}
    else:
        out = {"rx": link.num_rx_queues, "tx": link.num_tx_queues, "source": "rtnetlink"}
    if report.rx_active is not None:
        out["active-rx"] = report.rx_active.count
        out["active-rx-source"] = report.rx_active.source
    return {k: v for k, v in out.items() if v is not None}


def _timestamping_json(ts) -> dict:
    out: dict = {"capabilities": list(ts.capabilities), "tx-types": list(ts.tx_types),
                 "rx-filters": list(ts.rx_filters)}
    if ts.phc_index is not None:
        out["phc-index"] = ts.phc_index
    if ts.provider is not None:
        out["hwtstamp-provider"] = ts.provider.to_json()
    if ts.source is not None:
        out["hwtstamp-source"] = ts.source
    return out


def report_json(report, hints, area=None) -> dict:
    link = report.link
    out: dict = {**json_name("ifname", link.ifname), "ifindex": link.ifindex}
    if report.driver:
        out["driver"] = report.driver
    out.update({"operstate": link.operstate, "mtu": link.mtu, "queues": _queues_json(report)})
    if report.xsk_queues is not None:
        out["xsk-queues"] = list(report.xsk_queues)
    out["xdp"] = {"mode": link.xdp.mode, "programs": [p.to_json() for p in report.programs]}
    if report.netdev is not None:
        out.update(report.netdev.to_json())
    if report.tsinfo is not None:
        out["timestamping"] = _timestamping_json(report.tsinfo)
    if report.hwtstamp is not None:
        out["hwtstamp-config"] = report.hwtstamp.to_json()
    if report.features is not None:
        from xdphints_cli.device.features import SHOWN_OFFLOADS

        out["offloads"] = {name: report.features.get(name).to_json()
                           for name in SHOWN_OFFLOADS if report.features.get(name)}
    out["hints"] = {v.hint: v.to_json() for v in hints}
    if area is not None:
        out["metadata-area"] = area.to_json()
    if report.unavailable:
        out["unavailable"] = dict(report.unavailable)
    return {k: v for k, v in out.items() if v is not None}


def summary_json(report) -> dict:
    link = report.link
    out: dict = {**json_name("ifname", link.ifname), "ifindex": link.ifindex}
    if report.driver:
        out["driver"] = report.driver
    out.update({"operstate": link.operstate, "xdp-mode": link.xdp.mode,
                "xdp-programs": [p.id for p in report.programs]})
    if report.netdev is not None:
        out["xdp-rx-metadata-features"] = report.netdev.to_json()["xdp-rx-metadata-features"]
    if report.tsinfo is not None:
        out["hw-timestamping"] = report.tsinfo.hardware_rx or report.tsinfo.hardware_tx
    if report.xsk_queues is not None:
        out["xsk-queues"] = list(report.xsk_queues)
    return out


# --- text ------------------------------------------------------------------

STATE_STYLES = {"ready": "green", "needs-enable": "yellow", "unsupported": "red"}
NA = "n/a"


def _words(items) -> str:
    return " ".join(items) if items else "none"


def _program_line(p) -> str:
    if p.name is None:
        return f"{p.mode}: id {p.id}"
    extra = f" btf-obj-id {p.btf_id}" if p.btf_id else " (no BTF)"
    maps = ",".join(map(str, p.map_ids)) or "none"
    line = f"{p.mode}: id {p.id} name {p.name or '-'} tag {p.tag}{extra} maps {maps}"
    if p.hints_structs is not None:
        line += " hints " + (", ".join(f"{h.name} (btf-id {h.btf_id}, {h.size} bytes)"
                                       for h in p.hints_structs) or "none")
    return line


def render_report(app: App, report, hints, area=None) -> None:
    c = app.console
    link = report.link
    c.print(f"{link.ifname}: ifindex {link.ifindex}, driver {report.driver or NA}, "
            f"state {link.operstate}, mtu {link.mtu if link.mtu is not None else NA}", style="bold")
    rows: List[tuple] = []
    q = _queues_json(report)
    queues = ", ".join(f"{k} {q[k]}" for k in ("rx", "tx", "combined") if k in q) or NA
    active = f"; {q['active-rx']} active RX" if "active-rx" in q else ""
    rows.append(("Queues", f"{queues} (from {q['source']}){active}"))
    xsk = report.xsk_queues
    rows.append(("AF_XDP sockets on queues",
                 NA if xsk is None else (", ".join(map(str, xsk)) or "none")))
    rows.append(("XDP", "none attached" if not report.programs
                 else "; ".join(_program_line(p) for p in report.programs)))
    nd = report.netdev.to_json() if report.netdev is not None else None
    rows.append(("XDP features", _words(nd["xdp-features"]) if nd else NA))
    rows.append(("XDP zero-copy max segments", str(nd.get("xdp-zc-max-segs", NA)) if nd else NA))
    rows.append(("RX metadata kfuncs", _words(nd["xdp-rx-metadata-features"]) if nd else NA))
    rows.append(("XSK features", _words(nd["xsk-features"]) if nd else NA))
    ts = report.tsinfo
    rows.append(("Timestamping capabilities", _words(ts.capabilities) if ts else NA))
    rows.append(("PTP hardware clock", (f"/dev/ptp{ts.phc_index}" if ts.phc_index is not None else "none")
                 if ts else NA))
    rows.append(("Hardware TX types", _words(ts.tx_types) if ts else NA))
    rows.append(("Hardware RX filters", _words(ts.rx_filters) if ts else NA))
    hw = report.hwtstamp
    rows.append(("Hwtstamp config", f"tx-type {hw.tx_type or NA}, rx-filter {hw.rx_filter or NA} (via {hw.source})"
                 if hw else NA))
    if report.features is not None:
        from xdphints_cli.device.features import ETHTOOL_NAMES, SHOWN_OFFLOADS

        for name in SHOWN_OFFLOADS:
            f = report.features.get(name)
            if f is None:
                text = NA
            else:
                text = "on" if f.active else "off"
                if f.fixed:
                    text += " [fixed]"
                elif f.requested != f.active:
                    text += f" [requested {'on' if f.requested else 'off'}]"
            if name in ETHTOOL_NAMES:
                long, short = ETHTOOL_NAMES[name]
                text += f"  (ethtool -k {long}, -K {short})"
            rows.append((name, text))
    else:
        rows.append(("Offloads", NA))
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        c.print(f"  {key + ':':<{width}} {value}")

    c.print()
    c.print("Hints:")
    for v in hints:
        c.print(f"  {v.hint:<13} ", end="")
        c.print(f"{v.state:<13}", style=STATE_STYLES.get(v.state), end="")
        c.print(f" {v.reason}" + (f"; fix: {v.fix}" if v.fix else ""))
    if area is not None:
        c.print(f"  {area.text()}")
    if report.unavailable:
        c.print()
        c.print("Not available:")
        for key, why in report.unavailable.items():
            c.print(f"  {key}: {why}")


def render_list(app: App, reports) -> None:
    from rich.table import Table

    table = Table(show_edge=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
    for col in ("IFACE", "DRIVER", "STATE", "XDP", "RX METADATA", "HW TSTAMP", "XSK QUEUES"):
        table.add_column(col)
    for r in reports:
        s = summary_json(r)
        progs = ",".join(map(str, s["xdp-programs"]))
        xdp = s["xdp-mode"] + (f" {progs}" if progs else "")
        hwts = NA if "hw-timestamping" not in s else ("yes" if s["hw-timestamping"] else "no")
        xsk = NA if "xsk-queues" not in s else (",".join(map(str, s["xsk-queues"])) or "-")
        table.add_row(escape(s["ifname"]), escape(s.get("driver", NA)), s["operstate"], xdp,
                      _words(s.get("xdp-rx-metadata-features", ())) if "xdp-rx-metadata-features" in s else NA,
                      hwts, xsk)
    app.console.print(table)
