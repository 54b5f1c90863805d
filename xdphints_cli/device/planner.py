"""`enable` / `disable`: plan -> apply -> verify -> rollback for the hardware side of hints.

The features come from xdphints_cli/device/features.py. The kernel plumbing stays in
netlink/ethtool.py and ioctl/hwtstamp.py; this module only decides. It reaches the device
through a Backend, so the same logic runs on the real kernel (KernelBackend) and,
in unit tests, on recorded kernel replies.

The rules:
  * plan first: every feature is read and checked (unknown names, unsupported,
    [fixed]) before anything is changed, so a bad request changes nothing;
  * a feature already in the requested state is left alone (idempotent);
  * `enable rx-timestamp` never narrows an rx-filter another program (ptp4l) may
    rely on, and `enable tx-timestamp` never downgrades a one-step tx-type;
  * after each change the device is read back; a driver that widened the
    rx-filter is reported, anything else it did instead is a failure;
  * on a failure the features this call already changed are put back, and the
    error says what was restored (or could not be);
  * SIGINT, SIGTERM and SIGHUP during apply roll back the same way (exit 128 +
    signal), and all offloads of a call go in one FEATURES_SET request, so not even
    SIGKILL can leave half of them changed;
  * the caller's report of the change is part of it (applied()): a signal before the
    report is out, or a report that cannot be written, rolls back too, so the exit
    code and the device always agree.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import signal
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from xdphints_cli.ioctl import hwtstamp
from xdphints_cli.errors import (EXIT_FAILED, EXIT_PERMISSION, EXIT_UNSUPPORTED, KernelError,
                                 KernelTooOldError, NotSupportedError, UsageError, XdpHintsError, errno_name)
from xdphints_cli.device.features import FEATURE_NAMES, Feature, feature as feature_by_name
from xdphints_cli.names import json_name
from xdphints_cli.netlink import ethtool
from xdphints_cli.netlink.ethtool_msgs import ETH_SS_TS_RX_FILTERS, ETH_SS_TS_TX_TYPES

ENABLE = "enable"
DISABLE = "disable"
ACTIONS = (ENABLE, DISABLE)

DEFAULT_RX_FILTER = "all"
DEFAULT_TX_TYPE = "on"
RX_FILTER_OFF = "none"
TX_TYPE_OFF = "off"

# How a step's setting is changed, for output ("via").
VIA_FEATURES = "ethtool-features"
VIA_TSCONFIG = "tsconfig"
VIA_IOCTL = "ioctl"

# Which rx-filters a filter includes besides itself (include/uapi/linux/net_tstamp.h):
# `all` includes every filter; a PTPv2 "event" filter includes its sync and delay-req
# filters, the layer-agnostic v2 filters include their L2 and L4 variants.
_RX_INCLUDES: Dict[str, Tuple[str, ...]] = {
    "ptpv2-event": ("ptpv2-l4-event", "ptpv2-l4-sync", "ptpv2-l4-delay-req", "ptpv2-l2-event",
                    "ptpv2-l2-sync", "ptpv2-l2-delay-req", "ptpv2-sync", "ptpv2-delay-req"),
    "ptpv2-sync": ("ptpv2-l4-sync", "ptpv2-l2-sync"),
    "ptpv2-delay-req": ("ptpv2-l4-delay-req", "ptpv2-l2-delay-req"),
    "ptpv2-l4-event": ("ptpv2-l4-sync", "ptpv2-l4-delay-req"),
    "ptpv2-l2-event": ("ptpv2-l2-sync", "ptpv2-l2-delay-req"),
    "ptpv1-l4-event": ("ptpv1-l4-sync", "ptpv1-l4-delay-req"),
}

# tx-types from least to most: each one-step mode still gives two-step TX timestamps
# for the other packets, and onestep-p2p adds pdelay_resp to onestep-sync.
_TX_RANK = {"off": 0, "on": 1, "onestep-sync": 2, "onestep-p2p": 3}


def rx_filter_includes(wide: Optional[str], narrow: Optional[str]) -> bool:
    """Whether rx-filter `wide` timestamps every packet `narrow` would."""
    if wide is None or narrow is None:
        return False
    if wide == narrow or narrow == RX_FILTER_OFF or wide == "all":
        return True
    return narrow in _RX_INCLUDES.get(wide, ())


def tx_type_includes(wide: Optional[str], narrow: Optional[str]) -> bool:
    if wide == narrow:
        return True
    if wide not in _TX_RANK or narrow not in _TX_RANK:
        return False
    return _TX_RANK[wide] >= _TX_RANK[narrow]


# --- errors ------------------------------------------------------------------

class FeatureError(XdpHintsError):
    """`DEV: FEATURE: REASON: DETAIL`, with the exit code the reason calls for."""

    def __init__(self, ifname: str, feature: str, reason: str, detail: str, exit_code: int = EXIT_FAILED):
        self.ifname = ifname
        self.feature = feature
        self.reason = reason
        self.detail = detail
        self.exit_code = exit_code
        super().__init__(f"{ifname}: {feature}: {reason}: {detail}")

    def extended(self, text: str) -> "FeatureError":
        return FeatureError(self.ifname, self.feature, self.reason, f"{self.detail}; {text}", self.exit_code)


def _from_kernel(ifname: str, feature: str, err: XdpHintsError, doing: str) -> FeatureError:
    """A kernel or permission error while `doing` something, as a FeatureError."""
    if isinstance(err, FeatureError):
        return err
    text = str(err)
    code = getattr(err, "exit_code", EXIT_FAILED)
    if code == EXIT_PERMISSION:
        need = "" if "CAP_NET_ADMIN" in text else "; needs CAP_NET_ADMIN (run as root)"
        return FeatureError(ifname, feature, "not permitted", f"{doing}: {text}{need}", code)
    if code == EXIT_UNSUPPORTED:
        return FeatureError(ifname, feature, "unsupported", f"{doing}: {text}", code)
    return FeatureError(ifname, feature, "failed", f"{doing}: {text}", code)


# --- the device, as config sees it ----------------------------------------------

@dataclass(frozen=True)
class HwState:
    """The current hwtstamp config by the kernel's names, and which interface gave it."""

    tx_type: Optional[str]
    rx_filter: Optional[str]
    via: str


class Backend:
    """What plan/apply need from a device. KernelBackend talks to the kernel;
    tests give their own (recorded replies, injected failures)."""

    ifname: str = "?"
    driver: Optional[str] = None

    def tsinfo(self) -> ethtool.TsInfo:
        raise NotImplementedError

    def rx_filter_names(self) -> Tuple[str, ...]:
        """The kernel's ETH_SS_TS_RX_FILTERS string set (index = HWTSTAMP_FILTER_* value)."""
        raise NotImplementedError

    def tx_type_names(self) -> Tuple[str, ...]:
        raise NotImplementedError

    def hwtstamp(self) -> HwState:
        """The current config; NotSupportedError when the device offers none."""
        raise NotImplementedError

    def set_hwtstamp(self, tx_type: Optional[str] = None, rx_filter: Optional[str] = None) -> HwState:
        """Change one or both values (the other is kept); returns what the device applied."""
        raise NotImplementedError

    def features(self) -> ethtool.Features:
        raise NotImplementedError

    def set_features(self, values: Dict[str, bool]) -> None:
        raise NotImplementedError


class KernelBackend(Backend):
    """ethtool netlink for offloads and, where kernel and driver have it, TSCONFIG for
    timestamping; SIOCGHWTSTAMP/SIOCSHWTSTAMP otherwise.

    `ioctl_get`/`ioctl_set` default to the real ioctls; tests inject their own.
    """

    def __init__(self, nl, link, driver: Optional[str] = None,
                 ioctl_get: Optional[Callable[[str], hwtstamp.HwtstampConfig]] = None,
                 ioctl_set: Optional[Callable[[str, hwtstamp.HwtstampConfig], hwtstamp.HwtstampConfig]] = None):
        self.nl = nl
        self.ifindex = link.ifindex
        self.ifname = link.ifname
        self.driver = driver
        self._ioctl_get = ioctl_get or functools.partial(hwtstamp.get_config, ifindex=link.ifindex)
        self._ioctl_set = ioctl_set or functools.partial(hwtstamp.set_config, ifindex=link.ifindex)
        self._via: Optional[str] = None  # VIA_TSCONFIG or VIA_IOCTL once known
        self._no_tsconfig = ""  # why TSCONFIG is not used, for messages
        self._strings: Dict[int, Tuple[str, ...]] = {}

    def _names(self, set_id: int) -> Tuple[str, ...]:
        if set_id not in self._strings:
            self._strings[set_id] = ethtool.get_strings(self.nl, set_id)
        return self._strings[set_id]

    def rx_filter_names(self) -> Tuple[str, ...]:
        return self._names(ETH_SS_TS_RX_FILTERS)

    def tx_type_names(self) -> Tuple[str, ...]:
        return self._names(ETH_SS_TS_TX_TYPES)

    def tsinfo(self) -> ethtool.TsInfo:
        return ethtool.get_tsinfo(self.nl, self.ifindex, self.ifname)

    def features(self) -> ethtool.Features:
        return ethtool.get_features(self.nl, self.ifindex, self.ifname)

    def set_features(self, values: Dict[str, bool]) -> None:
        ethtool.set_features(self.nl, self.ifindex, self.ifname, values)

    # timestamping

    def _from_raw(self, raw: hwtstamp.HwtstampConfig) -> HwState:
        def name(names: Tuple[str, ...], value: int) -> str:
            return names[value] if 0 <= value < len(names) else str(value)

        return HwState(name(self.tx_type_names(), raw.tx_type), name(self.rx_filter_names(), raw.rx_filter),
                       VIA_IOCTL)

    def _number(self, names: Tuple[str, ...], name: str, what: str) -> int:
        try:
            return names.index(name)
        except ValueError:
            raise UsageError(f"{self.ifname}: unknown {what} '{name}'") from None

    def _ioctl_read(self) -> hwtstamp.HwtstampConfig:
        try:
            return self._ioctl_get(self.ifname)
        except KernelError as e:
            if e.errno == errno.EOPNOTSUPP:
                raise NotSupportedError(
                    f"{self._no_tsconfig} and SIOCGHWTSTAMP is not supported (EOPNOTSUPP): "
                    "the driver offers no hardware timestamping config") from None
            raise

    def hwtstamp(self) -> HwState:
        if self._via != VIA_IOCTL:
            try:
                cfg = ethtool.get_tsconfig(self.nl, self.ifindex, self.ifname)
                self._via = VIA_TSCONFIG
                return HwState(cfg.tx_type, cfg.rx_filter, VIA_TSCONFIG)
            except KernelTooOldError:
                self._no_tsconfig = "the kernel has no ethtool TSCONFIG (Linux 6.14)"
            except KernelError as e:
                if e.errno not in ethtool.TSCONFIG_FALLBACK_ERRNOS:
                    raise
                self._no_tsconfig = f"ethtool TSCONFIG_GET gave {errno_name(e.errno)}"
        raw = self._ioctl_read()
        self._via = VIA_IOCTL
        return self._from_raw(raw)

    def set_hwtstamp(self, tx_type: Optional[str] = None, rx_filter: Optional[str] = None) -> HwState:
        if self._via is None:
            self.hwtstamp()
        if self._via == VIA_TSCONFIG:
            # TSCONFIG_SET merges into the current config: only the given value changes.
            applied = ethtool.set_tsconfig(self.nl, self.ifindex, self.ifname, tx_type, rx_filter)
            if applied is None or applied.rx_filter is None or applied.tx_type is None:
                applied = ethtool.get_tsconfig(self.nl, self.ifindex, self.ifname)
            return HwState(applied.tx_type, applied.rx_filter, VIA_TSCONFIG)
        # SIOCSHWTSTAMP replaces the whole config: start from the current one.
        cur = self._ioctl_read()
        req = hwtstamp.HwtstampConfig(
            cur.flags,
            self._number(self.tx_type_names(), tx_type, "tx-type") if tx_type is not None else cur.tx_type,
            self._number(self.rx_filter_names(), rx_filter, "rx-filter") if rx_filter is not None else cur.rx_filter)
        return self._from_raw(self._ioctl_set(self.ifname, req))


# --- the plan ------------------------------------------------------------------

@dataclass
class Step:
    """One feature: its state before, what is asked, and after (planned, then applied)."""

    feature: str
    kind: str  # features.Feature.kind
    setting: str  # "rx-filter", "tx-type" or the kernel's offload name
    before: str
    requested: str
    after: str
    changed: bool
    via: str
    note: Optional[str] = None
    warning: Optional[str] = None  # printed on stderr when the change is made
    restore: Optional[str] = None  # offloads: the previous requested (wanted) state

    def to_json(self) -> dict:
        out = {"setting": self.setting, "before": self.before, "requested": self.requested,
               "after": self.after, "changed": self.changed, "via": self.via}
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Plan:
    ifname: str
    action: str
    steps: List[Step] = field(default_factory=list)
    applied: bool = False
    # hints left out because the device cannot give them (enable --available): hint -> why
    unsupported: Dict[str, str] = field(default_factory=dict)

    @property
    def changes(self) -> List[Step]:
        return [s for s in self.steps if s.changed]

    def to_json(self, ifindex: Optional[int] = None) -> dict:
        out: dict = json_name("ifname", self.ifname)
        if ifindex is not None:
            out["ifindex"] = ifindex
        out.update({"action": self.action, "dry-run": not self.applied, "changed": bool(self.changes),
                    "features": {s.feature: s.to_json() for s in self.steps}})
        if self.unsupported:
            out["unsupported"] = dict(self.unsupported)
        return out


def _onoff(value: bool) -> str:
    return "on" if value else "off"


def _driver(backend: Backend) -> str:
    return f"driver {backend.driver}" if backend.driver else "the driver"


def describe_tsinfo(ts: ethtool.TsInfo) -> str:
    """What ethtool TSINFO reports, for "unsupported" messages."""
    caps = " ".join(ts.capabilities) or "none"
    phc = f"/dev/ptp{ts.phc_index}" if ts.phc_index is not None else "none"
    return (f"ethtool TSINFO: capabilities {caps}; hardware tx-types {' '.join(ts.tx_types) or 'none'}; "
            f"hardware rx-filters {' '.join(ts.rx_filters) or 'none'}; PTP hardware clock {phc}")


@dataclass(frozen=True)
class _TsKind:
    """What differs between planning the rx-filter and the tx-type."""

    setting: str
    dir: str
    off: str
    default: str
    names_fn: str  # the Backend method giving the kernel's names
    capable: Callable[[ethtool.TsInfo], bool]
    offered: Callable[[ethtool.TsInfo], Sequence[str]]
    current: Callable[[HwState], Optional[str]]
    includes: Callable[[Optional[str], Optional[str]], bool]
    kept_note: str
    conflict: str
    widen_note: str = ""


_RX = _TsKind(
    "rx-filter", "RX", RX_FILTER_OFF, DEFAULT_RX_FILTER, "rx_filter_names",
    lambda ts: ts.hardware_rx, lambda ts: ts.rx_filters, lambda hw: hw.rx_filter, rx_filter_includes,
    kept_note="rx-filter {cur} already includes {target}; not narrowed, as another program "
              "(e.g. ptp4l) may rely on it",
    conflict="rx-filter {cur} is set and {target} does not include it; another program (e.g. ptp4l) "
             "may rely on it, so it is not replaced: use --rx-filter all to cover both",
    widen_note="widens rx-filter {cur} to {target}")
_TX = _TsKind(
    "tx-type", "TX", TX_TYPE_OFF, DEFAULT_TX_TYPE, "tx_type_names",
    lambda ts: ts.hardware_tx, lambda ts: ts.tx_types, lambda hw: hw.tx_type, tx_type_includes,
    kept_note="tx-type {cur} already timestamps what {target} does; not downgraded, as another "
              "program (e.g. ptp4l) may rely on it",
    conflict="tx-type {cur} is set and is not replaced by {target}, as another program (e.g. ptp4l) "
             "may rely on it")


class _Planner:
    def __init__(self, backend: Backend, action: str):
        self.b = backend
        self.action = action
        self.ifname = backend.ifname
        self._tsinfo: Optional[ethtool.TsInfo] = None
        self._hw: Optional[HwState] = None
        self._features: Optional[ethtool.Features] = None

    def error(self, f: Feature, reason: str, detail: str, code: int = EXIT_UNSUPPORTED) -> FeatureError:
        return FeatureError(self.ifname, f.name, reason, detail, code)

    def read(self, f: Feature, fn: Callable, doing: str):
        try:
            return fn()
        except (KernelError, KernelTooOldError, NotSupportedError) as e:
            raise _from_kernel(self.ifname, f.name, e, doing) from None
        except XdpHintsError as e:
            if e.exit_code == EXIT_PERMISSION:
                raise _from_kernel(self.ifname, f.name, e, doing) from None
            raise

    def tsinfo(self, f: Feature) -> ethtool.TsInfo:
        if self._tsinfo is None:
            self._tsinfo = self.read(f, self.b.tsinfo, "reading timestamping capabilities")
        return self._tsinfo

    def hw(self, f: Feature) -> HwState:
        if self._hw is None:
            try:
                self._hw = self.b.hwtstamp()
            except NotSupportedError as e:
                raise self.error(f, "unsupported", f"{_driver(self.b)} has no readable hardware timestamping "
                                 f"config: {e}") from None
            except (KernelError, KernelTooOldError) as e:
                raise _from_kernel(self.ifname, f.name, e, "reading the timestamping config") from None
        return self._hw

    def features(self, f: Feature) -> ethtool.Features:
        if self._features is None:
            self._features = self.read(f, self.b.features, "reading offloads")
        return self._features

    # offloads

    def offload(self, f: Feature) -> Step:
        name = f.offload
        cur = self.features(f).get(name)
        if cur is None:
            raise self.error(f, "unsupported", f"the kernel reports no {name} feature for this device")
        want = self.action == ENABLE
        state = _onoff(cur.active)
        step = Step(f.name, f.kind, name, state, _onoff(want), state, False, VIA_FEATURES)
        if cur.active == want:
            if cur.fixed:
                step.note = f"{name} is {state} [fixed]"
            return step
        if cur.fixed:
            raise self.error(f, "fixed", f"{name} is {state} [fixed]: {_driver(self.b)} does not let it be "
                             "changed on this device")
        step.after = _onoff(want)
        step.changed = True
        step.restore = _onoff(cur.requested)
        return step

    # timestamping

    def check_name(self, f: Feature, value: str, names: Sequence[str], what: str) -> None:
        if value not in names:
            raise UsageError(f"{self.ifname}: {f.name}: unknown {what} '{value}'; the kernel's {what}s: "
                             + ", ".join(names))

    def keep(self, f: Feature, why: str) -> Step:
        """A feature whose hint is ready as it is (device/hint_plan.py): left alone, even
        where its offload is off [fixed] or its rx-filter is not the one enable would pick."""
        if f.kind == "offload":
            cur = self.features(f).get(f.offload)
            state = _onoff(cur.active) if cur is not None else "n/a"
            setting = f.offload
            via = VIA_FEATURES
        else:
            hw = self.hw(f)
            setting = _RX.setting if f.kind == "rx-filter" else _TX.setting
            state = (hw.rx_filter if f.kind == "rx-filter" else hw.tx_type) or "?"
            via = hw.via
        # the note says why only where enable would otherwise have changed or refused it
        plain = state == ("on" if f.kind == "offload" else DEFAULT_RX_FILTER)
        return Step(f.name, f.kind, setting, state, state, state, False, via, note=None if plain else why)

    def rx(self, f: Feature, rx_filter: Optional[str]) -> Step:
        return self._timestamping(f, _RX, rx_filter)

    def tx(self, f: Feature, tx_type: Optional[str]) -> Step:
        return self._timestamping(f, _TX, tx_type)

    def _timestamping(self, f: Feature, ts_kind: "_TsKind", wanted: Optional[str]) -> Step:
        k = ts_kind
        if self.action == DISABLE:
            return self._ts_off(f, k.setting, k.off, hardware=k.capable,
                                warning=f"hardware {k.dir} timestamping is turned off on {self.ifname}: PTP "
                                f"daemons (ptp4l) using {self.ifname} lose their {k.dir} timestamps")
        target = wanted or k.default
        names = self.read(f, getattr(self.b, k.names_fn), f"reading the kernel's {k.setting} names")
        self.check_name(f, target, names, k.setting)
        if target == k.off:
            raise UsageError(f"{self.ifname}: {f.name}: {k.setting} {k.off} means off: use "
                             f"'xdphints disable {f.name}'")
        ts = self.tsinfo(f)
        if not k.capable(ts):
            raise self.error(f, "unsupported", f"{_driver(self.b)} has no hardware {k.dir} timestamping "
                             f"({describe_tsinfo(ts)})")
        offered = k.offered(ts)
        if target not in offered:
            raise self.error(f, "unsupported", f"the device does not offer {k.setting} {target} "
                             f"(its hardware {k.setting}s: {' '.join(offered)})")
        hw = self.hw(f)
        cur = k.current(hw) or k.off
        step = Step(f.name, f.kind, k.setting, cur, target, cur, False, hw.via)
        if cur == target:
            return step
        if cur != k.off and k.includes(cur, target):
            step.note = k.kept_note.format(cur=cur, target=target)
            return step
        if cur != k.off and not k.includes(target, cur):
            raise self.error(f, "conflict", k.conflict.format(cur=cur, target=target), EXIT_FAILED)
        step.after = target
        step.changed = True
        if cur != k.off and k.widen_note:
            step.note = k.widen_note.format(cur=cur, target=target)
        return step

    def _ts_off(self, f: Feature, setting: str, off: str, hardware: Callable, warning: str) -> Step:
        try:
            ts: Optional[ethtool.TsInfo] = self.tsinfo(f)
        except FeatureError:
            ts = None
        if ts is not None and not hardware(ts):
            try:
                hw: Optional[HwState] = self.hw(f)
            except FeatureError:
                hw = None
            if hw is None:
                # nothing to turn off: the device cannot timestamp in hardware at all
                return Step(f.name, f.kind, setting, off, off, off, False, "tsinfo",
                            note=f"{_driver(self.b)} has no hardware timestamping ({describe_tsinfo(ts)})")
        hw = self.hw(f)
        cur = (hw.rx_filter if setting == "rx-filter" else hw.tx_type) or off
        step = Step(f.name, f.kind, setting, cur, off, cur, False, hw.via)
        if cur != off:
            step.after = off
            step.changed = True
            step.warning = warning
        return step


def plan(backend: Backend, action: str, names: Iterable[str], rx_filter: Optional[str] = None,
         tx_type: Optional[str] = None, keep: Optional[Dict[str, str]] = None) -> Plan:
    """Read and check every named feature; raise before anything is changed. `keep`:
    features to leave as they are (enable only), each with the reason, for the note."""
    names = list(dict.fromkeys(names))
    check_request(backend, action, names, rx_filter, tx_type)
    planner = _Planner(backend, action)
    result = Plan(backend.ifname, action)
    try:
        for name in names:
            f = feature_by_name(name)
            if keep and name in keep:
                result.steps.append(planner.keep(f, keep[name]))
            elif f.kind == "offload":
                result.steps.append(planner.offload(f))
            elif f.kind == "rx-filter":
                result.steps.append(planner.rx(f, rx_filter))
            elif f.kind == "tx-type":
                result.steps.append(planner.tx(f, tx_type))
            else:  # a new kind in device/features.py without code here
                raise NotSupportedError(f"{name}: feature kind {f.kind!r} is not implemented")
    except FeatureError as e:
        if len(names) > 1:
            raise e.extended("no feature was changed" + _left(result.steps)) from None
        raise
    return result


def check_request(backend: Backend, action: str, names: Sequence[str], rx_filter: Optional[str] = None,
                  tx_type: Optional[str] = None) -> None:
    """The usage errors of a request (exit 2), found before the device is judged, so a
    misspelt filter is a usage error even on a device that cannot timestamp."""
    if action not in ACTIONS:
        raise ValueError(action)
    if not names:
        raise UsageError(f"{action}: no feature given (features: {', '.join(FEATURE_NAMES)})")
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise UsageError(f"unknown feature '{unknown[0]}'; features: {', '.join(FEATURE_NAMES)}")
    for opt, value, needs, kind in (("--rx-filter", rx_filter, "rx-timestamp", _RX),
                                    ("--tx-type", tx_type, "tx-timestamp", _TX)):
        if value is None:
            continue
        if action != ENABLE or needs not in names:
            raise UsageError(f"{opt} goes with 'enable {needs}'")
        f = feature_by_name(needs)
        planner = _Planner(backend, action)
        names_known = planner.read(f, getattr(backend, kind.names_fn), f"reading the kernel's {kind.setting} names")
        planner.check_name(f, value, names_known, kind.setting)


def _left(steps: List[Step]) -> str:
    planned = [s for s in steps if s.changed]
    if not planned:
        return ""
    return " (" + ", ".join(f"{s.feature} stays {s.before}" for s in planned) + ")"


# --- apply, verify, roll back ------------------------------------------------------

class _VerifyError(Exception):
    """The request went through but the device did not end up as asked."""


class _Signalled(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived while changes were being applied."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# Signals that end a command; arriving mid-apply they roll back instead (SIGKILL cannot
# be caught: that is why all offloads go in one request).
_ROLLBACK_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _SignalGuard:
    """While armed, the first of _ROLLBACK_SIGNALS raises _Signalled in the main
    thread; disarmed (rolling back), they are ignored, so a second Ctrl-C or a `kill`
    cannot interrupt the rollback itself."""

    def __init__(self) -> None:
        self.armed = True

    def _handler(self, signum: int, _frame) -> None:
        if self.armed:
            self.armed = False
            raise _Signalled(signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator["_SignalGuard"]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        old = {s: signal.signal(s, self._handler) for s in _ROLLBACK_SIGNALS}
        try:
            yield self
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)


def _set(backend: Backend, step: Step, value: str) -> str:
    """Ask the device for `value` on a timestamping step's setting; returns what it now has."""
    if step.kind == "rx-filter":
        return backend.set_hwtstamp(rx_filter=value).rx_filter or "?"
    return backend.set_hwtstamp(tx_type=value).tx_type or "?"


def _set_offloads(backend: Backend, steps: List[Step], values: List[str]) -> List[str]:
    """All the offloads in one FEATURES_SET (the kernel applies it as one update, so no
    kill can leave half of them), read back once; returns each one's state now."""
    backend.set_features({s.setting: v == "on" for s, v in zip(steps, values)})
    now = backend.features()
    return [_onoff(f.active) if f is not None else "?" for f in (now.get(s.setting) for s in steps)]


def _doing(steps: List[Step]) -> str:
    step = steps[0]
    if step.kind == "offload":
        return f"changing {', '.join(s.setting for s in steps)} (ethtool FEATURES_SET)"
    how = "ethtool TSCONFIG_SET" if step.via == VIA_TSCONFIG else "SIOCSHWTSTAMP"
    return f"setting {step.setting} {step.requested} ({how})"


def _verify(step: Step) -> None:
    """Compare what the device applied (step.after) with what was asked."""
    after = step.after
    if after == step.requested:
        return
    if step.kind == "rx-filter" and step.requested != RX_FILTER_OFF and (
            after == "some" or rx_filter_includes(after, step.requested)):
        # drivers may timestamp more than asked (net_tstamp.h; e.g. a PTP filter becomes all)
        step.note = f"the driver widened the rx-filter: asked for {step.requested}, it applied {after}"
        return
    if step.kind == "offload":
        raise _VerifyError(f"the kernel accepted the change but {step.setting} is {after} (the driver or a "
                           "feature it depends on refused it)")
    raise _VerifyError(f"asked for {step.setting} {step.requested}, the device applied {after}")


def _batches(steps: List[Step]) -> List[List[Step]]:
    """The order of requests: each timestamping change on its own, then every offload
    in one request, so a failure of the offloads rolls the timestamping back too."""
    offloads = [s for s in steps if s.kind == "offload"]
    return [[s] for s in steps if s.kind != "offload"] + ([offloads] if offloads else [])


def _rollback(backend: Backend, steps: List[Step]) -> str:
    """Put `steps` back to their state before, newest first (the offloads in one request)."""
    restored: List[str] = []
    failed: List[str] = []

    def record(step: Step, now: str) -> None:
        if now == step.before:
            restored.append(f"{step.feature} to {step.before}")
        else:
            failed.append(f"{step.feature} (it is now {now}, was {step.before})")

    offloads = [s for s in steps if s.kind == "offload"]
    if offloads:
        try:  # the previous requested (wanted) state, so a [requested on] stays requested
            for step, now in zip(offloads, _set_offloads(backend, offloads,
                                                         [s.restore or s.before for s in offloads])):
                record(step, now)
        except XdpHintsError as e:
            failed.extend(f"{s.feature} ({e}; it was {s.before})" for s in offloads)
    for step in reversed([s for s in steps if s.kind != "offload"]):
        try:
            record(step, _set(backend, step, step.before))
        except XdpHintsError as e:
            failed.append(f"{step.feature} ({e}; it was {step.before})")
    parts = []
    if restored:
        parts.append("restored " + ", ".join(restored))
    if failed:
        parts.append("could NOT restore " + "; ".join(failed))
    return "; ".join(parts) if parts else "nothing had been changed"


def apply(backend: Backend, planned: Plan) -> Plan:
    """Make the planned changes (timestamping first, then all offloads in one request),
    verifying each; on a failure, or SIGINT/SIGTERM/SIGHUP, undo the ones already made
    and raise a FeatureError saying what was restored (exit 128 + signal for a signal)."""
    with applied(backend, planned):
        pass
    return planned


@contextlib.contextmanager
def applied(backend: Backend, planned: Plan, hold_signals: bool = False) -> Iterator[Plan]:
    """apply(), then the block (the caller's report of what was applied) as part of the
    same change: a signal before the block ends, or an error out of it (stdout could not
    take the report), undoes every change and raises a FeatureError saying what was
    restored, with exit code 128 + signal or the error's own. So no exit code says
    "failed" or "interrupted" of a change that stays. `hold_signals`: the caller exits
    right after the block, so the signals are blocked from the block's end: none can
    come between a report written and the exit."""
    guard = _SignalGuard()
    with guard.installed():
        _apply_batches(backend, planned, guard)
        planned.applied = True
        try:
            yield planned
            if hold_signals:
                signal.pthread_sigmask(signal.SIG_BLOCK, _ROLLBACK_SIGNALS)
        except _Signalled as sig:
            raise _interrupted(backend, sig, planned.changes or planned.steps) from None
        except Exception as e:
            guard.armed = False
            if not planned.changes:
                raise
            raise FeatureError(backend.ifname, planned.changes[0].feature, "failed",
                               f"{e}; {_rollback(backend, planned.changes)}",
                               getattr(e, "exit_code", EXIT_FAILED)) from None


def _interrupted(backend: Backend, sig: "_Signalled", steps: List[Step]) -> FeatureError:
    """Undo `steps` (those that may have reached the device) after a signal: exit 128 + N."""
    name = signal.Signals(sig.signum).name
    return FeatureError(backend.ifname, steps[0].feature, "interrupted",
                        f"{name}; {_rollback(backend, [s for s in steps if s.changed])}", 128 + sig.signum)


def _apply_batches(backend: Backend, planned: Plan, guard: _SignalGuard) -> None:
    done: List[Step] = []
    for batch in _batches(planned.changes):
        reached = False  # the request went through, so the device may have changed
        try:
            if batch[0].kind == "offload":
                afters = _set_offloads(backend, batch, [s.requested for s in batch])
            else:
                afters = [_set(backend, batch[0], batch[0].requested)]
            reached = True
            for step, after in zip(batch, afters):
                step.after = after
            for step in batch:
                _verify(step)
        except (XdpHintsError, _VerifyError) as e:
            guard.armed = False
            failing = next((s for s in batch if s.after != s.requested and s.note is None), batch[0])
            if isinstance(e, _VerifyError):
                err = FeatureError(backend.ifname, failing.feature, "failed", str(e), EXIT_FAILED)
            else:
                err = _from_kernel(backend.ifname, failing.feature, e, _doing(batch))
            undo = done + (batch if reached else [])
            if undo:
                err = err.extended(_rollback(backend, undo))
            elif len(planned.changes) > 1:
                err = err.extended("nothing had been changed yet")
            raise err from None
        except _Signalled as sig:
            # the request may or may not have reached the device: put this batch back too
            raise _interrupted(backend, sig, done + batch) from None
        done.extend(batch)
