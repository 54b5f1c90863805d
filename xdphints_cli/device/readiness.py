"""The verdict per hint: ready, needs-enable (and the command that fixes it) or
unsupported; and what the XDP metadata area is on this kernel and device, with the
transport dump and verify will use because of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from xdphints_cli.device.state import DeviceReport
from xdphints_cli.device.features import HINTS, Hint, feature
from xdphints_cli.names import shell_word
from xdphints_cli.netlink.netdev import XDP_RX_METADATA

READY = "ready"
NEEDS_ENABLE = "needs-enable"
UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class Verdict:
    hint: str
    state: str
    reason: str
    fix: Optional[str] = None

    def to_json(self) -> dict:
        out = {"state": self.state, "reason": self.reason}
        if self.fix:
            out["fix"] = self.fix
        return out


def _fix(report: DeviceReport, h: Hint, netns: Optional[str]) -> str:
    """The command that fixes the hint, ready to paste (with -n when the device is in a namespace)."""
    ns = f" -n {shell_word(netns)}" if netns else ""
    return f"xdphints{ns} enable {h.feature} -d {shell_word(report.link.ifname)}"


def _driver(report: DeviceReport) -> str:
    return f"driver {report.driver}" if report.driver else "the driver"


def _timestamp(report: DeviceReport, h: Hint, netns: Optional[str]) -> Verdict:
    ts = report.tsinfo
    if ts is None:
        return Verdict(h.name, UNSUPPORTED, "hardware timestamping capabilities unreadable: "
                       + report.unavailable.get("timestamping", "unknown reason"))
    if not ts.hardware_rx:
        from xdphints_cli.device.planner import describe_tsinfo

        return Verdict(h.name, UNSUPPORTED, f"{_driver(report)} has no hardware RX timestamping "
                       f"({describe_tsinfo(ts)})")
    cfg = report.hwtstamp
    if cfg is None or cfg.rx_filter is None:
        return Verdict(h.name, NEEDS_ENABLE, "hardware RX timestamping is possible but the current "
                       "config is unreadable, so it may be off", _fix(report, h, netns))
    if cfg.rx_filter == "none":
        return Verdict(h.name, NEEDS_ENABLE, "hardware RX timestamping is off (rx-filter none)", _fix(report, h, netns))
    note = "" if cfg.rx_filter == "all" else "; only PTP/NTP packets of that filter carry a timestamp"
    return Verdict(h.name, READY, f"{h.kfunc} implemented, rx-filter {cfg.rx_filter}{note}")


def _offload(report: DeviceReport, h: Hint, netns: Optional[str]) -> Verdict:
    name = feature(h.feature).offload
    feat = report.features.get(name) if report.features is not None else None
    if feat is None:
        why = report.unavailable.get("offloads", f"the device has no {name} feature")
        return Verdict(h.name, READY, f"{h.kfunc} implemented; {name} state unknown ({why})")
    if feat.active:
        return Verdict(h.name, READY, f"{h.kfunc} implemented, {name} on")
    if not feat.fixed:
        return Verdict(h.name, NEEDS_ENABLE, f"{name} is off", _fix(report, h, netns))
    # Off and unchangeable: some drivers (veth) still fill the hint, others return ENODATA.
    return Verdict(h.name, READY, f"{h.kfunc} implemented; {name} is off [fixed], so the value "
                   "depends on the driver (a software hash, or ENODATA)")


def _no_native_xdp(report: DeviceReport) -> str:
    """What the kernel says, and why where it can be known: a driver may turn XDP off
    for a configuration, which is not the driver lacking it."""
    why = (f"the kernel reports no native XDP for {report.link.ifname} (xdp-features lacks basic; "
           "metadata kfuncs need a device-bound program in native mode)")
    vq = report.veth_queues
    if vq is None:
        return why
    have = f"{report.link.ifname} has {vq.rx} RX queue{'s' if vq.rx != 1 else ''}" if vq.rx else ""
    peer = (f"its peer {vq.peer} has {vq.peer_tx} TX queue{'s' if vq.peer_tx != 1 else ''}"
            if vq.peer and vq.peer_tx else "")
    counts = f" ({', '.join(p for p in (have, peer) if p)})" if have or peer else ""
    return (f"{why}: veth turns XDP off while the peer has more TX queues than it has RX queues"
            f"{counts}; XDP on a veth needs at least as many RX queues as its peer has TX queues")


def verdict(report: DeviceReport, h: Hint, netns: Optional[str] = None) -> Verdict:
    info = report.netdev
    if info is None:
        why = report.unavailable.get("xdp-features", "unknown reason")
        return Verdict(h.name, UNSUPPORTED, f"XDP metadata features unreadable: {why}")
    if not info.xdp_features & 1:  # NETDEV_XDP_ACT_BASIC
        return Verdict(h.name, UNSUPPORTED, _no_native_xdp(report))
    bit = next(b for b, n in XDP_RX_METADATA.items() if n == h.metadata_flag)
    if not info.xdp_rx_metadata & bit:
        return Verdict(h.name, UNSUPPORTED, f"{_driver(report)} does not implement {h.kfunc} "
                       f"(xdp-rx-metadata-features lacks {h.metadata_flag}; kfunc since Linux {h.since})")
    if h.name == "rx-timestamp":
        return _timestamp(report, h, netns)
    return _offload(report, h, netns)


def verdicts(report: DeviceReport, names: Optional[List[str]] = None,
             netns: Optional[str] = None) -> List[Verdict]:
    """The verdicts of `names` (all hints by default); `netns` is the namespace the device
    was read in (the CLI's -n), so that the fix commands name it."""
    out = []
    for h in HINTS:
        if names is None or h.name in names:
            out.append(verdict(report, h, netns))
    return out


@dataclass(frozen=True)
class MetadataAreaVerdict:
    """status: "refused" (by this kernel) or "unknown" (for this driver until a
    capture tries it, or the kernel could not be probed); "usable" is only known
    once a capture used it (dump's summary says so)."""

    status: str
    kernel: str                  # accepts, refuses, unknown
    reason: str
    dump: str                    # the transport `dump` starts with (auto)
    passing: str                 # the one `dump --pass` and `verify` start with

    def to_json(self) -> dict:
        return {"status": self.status, "kernel": self.kernel, "reason": self.reason,
                "dump-transport": self.dump, "pass-transport": self.passing}

    def text(self) -> str:
        """As a hint's line: name, status, reason."""
        return f"{'metadata-area':<13} {self.status:<13} {self.reason}"


def metadata_area(report: DeviceReport) -> MetadataAreaVerdict:
    """From a probe load (needs CAP_BPF): the kernel's side is known, the driver's only
    once a capture tries it (a driver without the area answers -ENOTSUPP then)."""
    from xdphints_cli.hints.metadata_area import auto_choice, kernel_metadata_area

    area = kernel_metadata_area()
    dump, passing = auto_choice()[0], auto_choice(passing=True)[0]
    drv = report.driver or "the driver"
    if area.status == "refused":
        return MetadataAreaVerdict("refused", "refuses", "this kernel refuses bpf_xdp_adjust_meta "
                                   f"({area.reason}): dump carries the hints in the headroom, "
                                   "dump --pass and verify by fingerprint", dump, passing)
    then = ("dump tries it first and moves to the headroom, dump --pass and verify to "
            "fingerprints, if it is missing")
    if area.status == "unknown":
        return MetadataAreaVerdict("unknown", "unknown", f"{area.reason}; {then}", dump, passing)
    return MetadataAreaVerdict("unknown", "accepts", f"this kernel accepts it; whether {drv} gives "
                               f"XDP one shows once a capture tries it ({then})", dump, passing)
