"""The desired-state file of `xdphints apply`: read, validated whole, matched to devices.

The rules:
  * the file is TOML (tomllib, tomli before Python 3.11) and is checked whole before
    anything is changed: a syntax error, an unknown key, a hint or rx-filter name no
    kernel has, a value of the wrong type or a name no interface can have is one
    DesiredStateError (exit 2) naming the file, the line and the key;
  * what is read is a regular file of at most MAX_BYTES (a FIFO, a directory or a
    device is refused without blocking on it), or stdin for `-`; a file that others
    than its owner may write, or owned by another user than root and the caller, is
    refused: its contents decide what is changed on the devices (as ssh's StrictModes);
  * `[device.NAME]` names one interface, `[driver.NAME]` every interface whose driver
    (ethtool's driver name, else the rtnetlink link kind, as `show` reports it) is
    NAME. A device both name is held to both: its hints are the union, its rx-filter
    the [device] section's when it gives one, else the [driver] section's;
  * nothing here talks to the kernel: matching takes the links and their drivers.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from xdphints_cli.device.features import HINT_NAMES
from xdphints_cli.errors import UsageError

MAX_BYTES = 1 << 20  # a fleet file is a few lines per device: a bigger one is a mistake
SECTIONS = ("device", "driver")
KEYS = ("hints", "rx-filter")
IFNAMSIZ = 16
DRIVER_NAME_MAX = 31  # struct ethtool_drvinfo.driver[32]

# The kernel's names of the HWTSTAMP_FILTER_* values (include/uapi/linux/net_tstamp.h,
# ETH_SS_TS_RX_FILTERS): a file is checked against them without asking a kernel, so
# `apply --check` finds a typo anywhere; the device's own list is checked when applied.
RX_FILTER_NAMES = ("all", "some", "ptpv1-l4-event", "ptpv1-l4-sync", "ptpv1-l4-delay-req",
                   "ptpv2-l4-event", "ptpv2-l4-sync", "ptpv2-l4-delay-req", "ptpv2-l2-event",
                   "ptpv2-l2-sync", "ptpv2-l2-delay-req", "ptpv2-event", "ptpv2-sync",
                   "ptpv2-delay-req", "ntp-all")


class DesiredStateError(UsageError):
    """A file that cannot be used: exit 2, nothing changed."""


@dataclass(frozen=True)
class Section:
    """One `[device.NAME]` or `[driver.NAME]` table."""

    kind: str  # "device" or "driver"
    name: str
    hints: Tuple[str, ...]  # in the order of the hints table (features.HINT_NAMES)
    rx_filter: Optional[str]
    line: Optional[int]

    @property
    def label(self) -> str:
        """The table's key as the file spells it: device.eth0, or quoted: device."a b"."""
        return _key_text((self.kind, self.name))


@dataclass(frozen=True)
class Desired:
    path: str  # as given ("-" for stdin)
    sections: Tuple[Section, ...]

    def devices(self) -> Tuple[Section, ...]:
        return tuple(s for s in self.sections if s.kind == "device")

    def drivers(self) -> Tuple[Section, ...]:
        return tuple(s for s in self.sections if s.kind == "driver")


@dataclass(frozen=True)
class Target:
    """What one present device must have: the hints of every section naming it."""

    ifname: str
    ifindex: int
    driver: Optional[str]
    hints: Tuple[str, ...]
    rx_filter: Optional[str]
    sources: Tuple[str, ...]  # the sections, e.g. ("device.eth0", "driver.mlx5_core")


@dataclass(frozen=True)
class Match:
    targets: Tuple[Target, ...]
    absent: Tuple[Section, ...]  # [device.NAME] sections no interface here has
    unmatched_drivers: Tuple[Section, ...] = field(default=())


# --- reading ---------------------------------------------------------------------

def _toml():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - pyproject installs tomli there
        import tomli as tomllib
    return tomllib


def read_bytes(path: str) -> bytes:
    """The file's bytes, refused before it is read when it is no regular file, too big,
    or writable by someone it should not be."""
    if path == "-":
        data = sys.stdin.buffer.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise DesiredStateError(f"-: stdin holds more than {MAX_BYTES} bytes; a hints file is far smaller")
        return data
    if path == "":
        raise DesiredStateError("a file name cannot be empty")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat refuses it below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        raise _open_error(path, e) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise DesiredStateError(f"{path}: is a directory, not a hints file")
        if not stat.S_ISREG(st.st_mode):
            raise DesiredStateError(f"{path}: not a regular file ({_file_kind(st.st_mode)})")
        if st.st_size > MAX_BYTES:
            raise DesiredStateError(f"{path}: {st.st_size} bytes; a hints file is at most {MAX_BYTES}")
        _check_owner(path, st)
        chunks = []
        size = 0
        while True:  # a file that grows while read is still cut at the limit
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BYTES:
                raise DesiredStateError(f"{path}: more than {MAX_BYTES} bytes; a hints file is far smaller")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as e:  # EISDIR from read on some filesystems, EIO
        raise DesiredStateError(f"{path}: cannot read it: {e.strerror}") from None
    finally:
        os.close(fd)


def _open_error(path: str, e: OSError):
    from xdphints_cli.errors import NotFoundError, PermissionDeniedError

    if isinstance(e, FileNotFoundError):
        return NotFoundError(f"{path}: no such file")
    if isinstance(e, PermissionError):
        return PermissionDeniedError(f"{path}: cannot open it: permission denied")
    return DesiredStateError(f"{path}: cannot open it: {e.strerror}")


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _check_owner(path: str, st: os.stat_result) -> None:
    me = os.geteuid()
    if st.st_uid not in (0, me):
        raise DesiredStateError(f"{path}: owned by uid {st.st_uid}, neither root nor this user: refused, as "
                                "whoever can write it decides what is changed on the devices")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DesiredStateError(f"{path}: writable by others than its owner (mode {stat.S_IMODE(st.st_mode):04o}): "
                                f"refused, as whoever can write it decides what is changed on the devices "
                                f"(chmod go-w {path})")


def load(path: str) -> Desired:
    """Read and validate FILE (or stdin for "-"); DesiredStateError for anything wrong."""
    return parse(read_bytes(path), path)


def parse(data: bytes, path: str) -> Desired:
    tomllib = _toml()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DesiredStateError(f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x}); TOML files are UTF-8") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DesiredStateError(f"{path}:{_syntax_where(str(e))}") from None
    except RecursionError:   # tomllib parses nested arrays and inline tables recursively
        raise DesiredStateError(f"{path}: arrays or inline tables nested too deeply for a hints file") from None
    lines = _KeyLines(text)
    return Desired(path, tuple(_sections(doc, path, lines)))


def _syntax_where(message: str) -> str:
    """tomllib's "Invalid value (at line 3, column 9)" as "3:9: invalid value"."""
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", message)
    if m:
        return f"{m.group(1)}:{m.group(2)}: TOML syntax: {message[:m.start()]}"
    m = re.search(r"\s*\(at end of document\)\s*$", message)
    if m:
        return f" TOML syntax: {message[:m.start()]} (at the end of the file)"
    return f" TOML syntax: {message}"


# --- where a key is -------------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[(?!\[)")
_KEY_LINE = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
                       r"""(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'))*)\s*=""")


class _KeyLines:
    """The line of each key path, found by reading the header and key of each line
    with tomllib itself (so quoting and dotted keys are read as TOML reads them). Only
    for messages: a key it cannot place (inside an inline table) gets its table's line."""

    def __init__(self, text: str):
        tomllib = _toml()
        self.lines: Dict[Tuple[str, ...], int] = {}
        self.text = text.splitlines()
        table: Tuple[str, ...] = ()
        for no, line in enumerate(text.splitlines(), 1):
            path: Optional[Tuple[str, ...]] = None
            try:
                if _HEADER.match(line):
                    path = _one_path(tomllib.loads(line))
                    table = path
                else:
                    m = _KEY_LINE.match(line)
                    if m:
                        path = table + _one_path(tomllib.loads(m.group(1) + " = 0"))
            except (tomllib.TOMLDecodeError, ValueError):
                continue  # inside a multi-line string or array: not a key
            if path is not None:
                for i in range(1, len(path) + 1):  # dotted keys define their parents too
                    self.lines.setdefault(path[:i], no)

    def value_line(self, path: Sequence[str], value: str) -> Optional[int]:
        """The line of `value` (a string) in the array at `path`, which may span lines."""
        start = self.line(*path)
        if start is None:
            return None
        quoted = re.compile("[\"']" + re.escape(value) + "[\"']")
        for no in range(start, min(start + 64, len(self.text) + 1)):
            if quoted.search(self.text[no - 1]):
                return no
        return start

    def line(self, *path: str) -> Optional[int]:
        for i in range(len(path), 0, -1):
            if path[:i] in self.lines:
                return self.lines[path[:i]]
        return None


def _one_path(doc: dict) -> Tuple[str, ...]:
    path = []
    while isinstance(doc, dict) and len(doc) == 1:
        key, doc = next(iter(doc.items()))
        path.append(key)
    return tuple(path)


# --- the schema -----------------------------------------------------------------

def _key_text(path: Sequence[str]) -> str:
    """A key path as TOML spells it (quoted where a part is no bare key)."""
    # JSON's string escapes are a subset of TOML's: a control character shows as \u001b
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p, ensure_ascii=False) for p in path)


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _sections(doc: dict, path: str, lines: _KeyLines) -> List[Section]:
    def fail(keys: Sequence[str], message: str, value: Optional[str] = None):
        no = lines.line(*keys) if value is None else lines.value_line(keys, value)
        where = f"{path}:{no}" if no is not None else path
        raise DesiredStateError(f"{where}: {_key_text(keys)}: {message}")

    out: List[Section] = []
    for top, value in doc.items():
        if top not in SECTIONS:
            fail([top], "unknown key; a hints file has [device.NAME] and [driver.NAME] tables")
        if not isinstance(value, dict):
            fail([top], f"must be a table of {top} names ([{top}.NAME]), not {_type_name(value)}")
        for name, body in value.items():
            keys = [top, name]
            why = _bad_device_name(name) if top == "device" else _bad_driver_name(name)
            if why:
                fail(keys, why)
            if not isinstance(body, dict):
                fail(keys, f"must be a table ([{_key_text(keys)}] with hints = [...]), not {_type_name(body)}")
            for key in body:
                if key not in KEYS:
                    fail(keys + [key], f"unknown key; a {top} table has: {', '.join(KEYS)}")
            if "hints" not in body:
                fail(keys, "no hints = [...] (the hints that must be ready: " + ", ".join(HINT_NAMES) + ")")
            hints = body["hints"]
            if not isinstance(hints, list) or not all(isinstance(h, str) for h in hints):
                fail(keys + ["hints"], f"must be an array of hint names, not {_type_name(hints)}"
                     + (" holding other values" if isinstance(hints, list) else ""))
            unknown = [h for h in hints if h not in HINT_NAMES]
            if unknown:
                fail(keys + ["hints"], f"unknown hint '{unknown[0]}'; hints: {', '.join(HINT_NAMES)}", unknown[0])
            if not hints:
                fail(keys + ["hints"], "empty: list the hints that must be ready (" + ", ".join(HINT_NAMES) + ")")
            rx_filter = body.get("rx-filter")
            if rx_filter is not None:
                if not isinstance(rx_filter, str):
                    fail(keys + ["rx-filter"], f"must be a string (an rx-filter name), not {_type_name(rx_filter)}")
                if rx_filter == "none":
                    fail(keys + ["rx-filter"], "none means off; apply only turns hints on (use 'xdphints disable "
                         "rx-timestamp')")
                if rx_filter not in RX_FILTER_NAMES:
                    fail(keys + ["rx-filter"], f"unknown rx-filter '{rx_filter}'; the kernel's rx-filters: "
                         + ", ".join(RX_FILTER_NAMES))
                if "rx-timestamp" not in hints:
                    fail(keys + ["rx-filter"], "goes with the hint rx-timestamp, which hints does not list")
            ordered = tuple(h for h in HINT_NAMES if h in hints)
            out.append(Section(top, name, ordered, rx_filter, lines.line(*keys)))
    return out


def _bad_device_name(name: str) -> Optional[str]:
    """Why no interface can be called `name` (net/core/dev.c dev_valid_name), else None."""
    if not name:
        return "an interface name cannot be empty"
    if len(name.encode("utf-8", "surrogateescape")) >= IFNAMSIZ:
        return f"no interface can have this name: interface names are at most {IFNAMSIZ - 1} bytes"
    if name in (".", "..") or any(c in "/:\0" or c.isspace() for c in name):
        return "no interface can have this name (the kernel refuses '/', ':', NUL, white space, '.' and '..')"
    return None


def _bad_driver_name(name: str) -> Optional[str]:
    if not name:
        return "a driver name cannot be empty"
    if len(name.encode("utf-8")) > DRIVER_NAME_MAX or "\0" in name:
        return f"no driver has this name (ethtool driver names are at most {DRIVER_NAME_MAX} bytes)"
    return None


# --- matching -------------------------------------------------------------------------

def match(desired: Desired, links: Iterable[Tuple[str, int, Optional[str]]]) -> Match:
    """The targets among `links` ((ifname, ifindex, driver) of each interface here), in
    ifindex order, and the [device] sections that name no interface here."""
    links = sorted(links, key=lambda link: link[1])
    by_name = {name: (name, index, driver) for name, index, driver in links}
    targets: List[Target] = []
    for ifname, ifindex, driver in links:
        named = [s for s in desired.devices() if s.name == ifname]
        by_driver = [s for s in desired.drivers() if driver is not None and s.name == driver]
        if not named and not by_driver:
            continue
        sections = named + by_driver
        hints = tuple(h for h in HINT_NAMES if any(h in s.hints for s in sections))
        rx_filter = next((s.rx_filter for s in sections if s.rx_filter is not None), None)
        targets.append(Target(ifname, ifindex, driver, hints, rx_filter, tuple(s.label for s in sections)))
    absent = tuple(s for s in desired.devices() if s.name not in by_name)
    drivers_here = {driver for _n, _i, driver in links}
    unmatched = tuple(s for s in desired.drivers() if s.name not in drivers_here)
    return Match(tuple(targets), absent, unmatched)
