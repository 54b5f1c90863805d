"""The capture session behind `xdphints dump`: device checks, XSKMAP, dev-bound hints
program, AF_XDP socket, XDP link, the receive loop and its counters.

Everything is owned by one ExitStack; the link is a bpf_link, so the program comes off
the device when the process ends, however it ends (kill -9 included).

One receive loop (`batches`) serves every capture: it waits on its sources (AF_XDP
sockets here, the --pass ring in pass_capture.py), takes a batch from each ready one
and, when idle and at least every CHECK_EVERY seconds, asks the capture to check its
programs' counters. For the built-in program that check is the transport's: packets it
could not place the hints struct in went to the stack; under `auto` a transport that
placed nothing moves to the next one (BPF_LINK_UPDATE, no moment without a program),
and when none is left the capture ends with the device, driver and errno (exit 3).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from xdphints_cli.errors import NotFoundError, NotSupportedError, XdpHintsError, errno_name
from xdphints_cli.hints.decoding import HINTS, HintValue, RowLayout, hint_values
from xdphints_cli.hints.packet import PacketSummary, summarize
from xdphints_cli.xsk.umem import memlock_frames

XDP_FEATURE_BASIC = 1
POLL_MS = 100
XDP_PACKET_HEADROOM = 256    # every AF_XDP frame has at least this in front of the packet
# 2 KiB frames hold XDP_PACKET_HEADROOM and 1792 bytes of packet: a 1500 MTU frame with
# two VLAN tags (1522) fits
SMALL_FRAME_MTU = 1500
# packets handed out at once: the ring drains in several batches when it is fuller,
# so what a batch's output holds in memory (JSON lines: ~570 bytes a packet, made,
# queued and written at once) stays near a MB
MAX_BATCH = 2048
CHECK_EVERY = 0.25           # seconds between counter checks while packets flow
XSK_STAT_KEYS = ("rx_dropped", "rx_ring_full", "rx_fill_ring_empty_descs", "rx_invalid_descs")


class DeviceHasProgramError(XdpHintsError):
    """The device already has an XDP program; dump never touches it (exit 1)."""


@dataclass(frozen=True)
class Packet:
    time_ns: int                 # receive time (CLOCK_REALTIME, per batch)
    queue: int
    length: int
    summary: Optional[PacketSummary]
    btf_id: Optional[int]        # None: no hints struct in front of the packet
    hints: Dict[str, HintValue]
    data: Optional[bytes] = None
    metadata: Optional[Dict] = None   # dump --attached: the JSON "metadata" object
    stack: Optional[object] = None    # dump --pass: the stack's view (pass_capture.StackView)


@dataclass(frozen=True)
class Batch:
    """Packets received together: ring order, one receive time for all."""
    time_ns: int                 # CLOCK_REALTIME when the batch was taken
    queue: int
    addrs: List[int]             # UMEM offset of each packet
    lengths: List[int]
    rows: List[Optional[tuple]]  # hints members (Capture.layout order), None: no metadata
    umem: Optional[object] = None      # the UMEM the addrs point into (its mmap; one per queue)


@dataclass
class Stats:
    packets: int = 0
    bytes: int = 0
    no_metadata: int = 0
    started: float = 0.0
    ended: float = 0.0
    first_batch: float = 0.0     # monotonic: first packets taken
    last_batch: float = 0.0      # monotonic: last batch handed back
    batches: int = 0             # a receive rate needs two: one batch's time is its processing
    hints: Dict[str, Counter] = field(default_factory=lambda: {h: Counter() for h in HINTS})
    xsk: Dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return max(self.ended - self.started, 0.0)

    @property
    def rate(self) -> float:
        return self.packets / self.seconds if self.seconds > 0 else 0.0

    @property
    def active_seconds(self) -> float:
        """From the first batch to the end of the last: the time spent receiving."""
        return max(self.last_batch - self.first_batch, 0.0)

    @property
    def active_rate(self) -> Optional[float]:
        """Packets per second while receiving; None from fewer than two batches."""
        s = self.active_seconds
        return self.packets / s if s > 0 and self.batches > 1 else None

    def to_json(self) -> dict:
        out = {"packets": self.packets, "bytes": self.bytes,
               "seconds": round(self.seconds, 6), "pps": round(self.rate, 1)}
        if self.active_rate is not None:
            out.update({"active-seconds": round(self.active_seconds, 6),
                        "active-pps": round(self.active_rate, 1)})
        out.update({"no-metadata": self.no_metadata,
                    "xsk": {k.replace("_", "-"): self.xsk[k] for k in XSK_STAT_KEYS if k in self.xsk},
                    "hints": {h: dict(c) for h, c in self.hints.items()}})
        return out


@dataclass(frozen=True)
class Target:
    ifname: str
    ifindex: int
    rx_queues: int               # active RX queues (queues.active_rx_queues)
    advertised: int              # netdev xdp-rx-metadata-features bits
    kfuncs: Dict[str, int]       # kfunc name -> BTF id the program calls
    up: bool = True              # IFF_UP and IFF_LOWER_UP when the capture began
    mtu: Optional[int] = None


def attached_program_error(ifname: str, programs) -> DeviceHasProgramError:
    """The message for a device that already has XDP programs: which, and what to do."""
    from xdphints_cli.device.programs import describe

    descs = []
    for mode, prog_id in programs:
        try:
            p = describe(prog_id, mode)
            descs.append(f"id {p.id} name {p.name or '-'} ({p.mode} mode)")
        except XdpHintsError:
            descs.append(f"id {prog_id} ({mode} mode)")
    return DeviceHasProgramError(
        f"{ifname} already has an XDP program attached: {'; '.join(descs)}. xdphints never "
        f"replaces or detaches a program: stop the tool that owns it (or, for a program "
        f"attached through netlink, run 'ip link set dev {ifname} xdp off'), use another "
        "device, or, when that program redirects to an XSKMAP, read what it hands out "
        "with 'xdphints dump --attached'")


def parse_queues(text: str) -> Optional[List[int]]:
    """`--queue` value: "N", "N,M,..." or "all" (None: every RX queue of the device)."""
    text = text.strip().lower()
    if text == "all":
        return None
    words = text.split(",")
    if not all(w.isascii() and w.isdigit() for w in words):   # int() takes "٣", " 3", "1_0", "-1"
        raise ValueError(f"bad queue list '{text}' (N, N,M,... or all; N in ASCII digits)")
    return sorted({int(w) for w in words})


def check_queues(ifname: str, rxq, queue) -> None:
    """NotFoundError for a queue (an int, or a list of them) outside the device's
    active RX queues (`rxq`, a queues.RxQueues)."""
    for q in [queue] if isinstance(queue, int) else (queue or []):
        if q >= rxq.count:
            raise NotFoundError(f"{rxq.describe(ifname)}; queue {q} is not one of them")


def resolve_target(dev: Optional[str], queue, warn: Callable[[str], None],
                   acting_on: Callable[[str, str], None] = lambda ifname, chosen_by: None) -> Target:
    """Checks before anything is loaded: device, queue(s) (an int, a list, or None for
    all), no XDP program yet, native XDP; and the kfuncs to call (advertised by the
    device and present in kernel BTF)."""
    from dataclasses import replace

    from xdphints_cli.btf.kfuncs import xdp_metadata_kfunc_ids
    from xdphints_cli.device.state import choose_link
    from xdphints_cli.errors import KernelTooOldError
    from xdphints_cli.hints.program import usable_kfuncs
    from xdphints_cli.netlink import netdev
    from xdphints_cli.netlink.session import Netlink

    with Netlink() as nl:
        link, chosen_by = choose_link(nl, dev)
        acting_on(link.ifname, chosen_by)
        if link.xdp.programs:
            raise attached_program_error(link.ifname, link.xdp.programs)
        target = checked_target(nl, link, queue)
        try:
            nd = netdev.get_dev(nl, link.ifindex, link.ifname)
        except KernelTooOldError as e:
            warn(f"{e}; cannot tell which hints {link.ifname} supports")
            nd = None
    if nd is not None and not nd.xdp_features & XDP_FEATURE_BASIC:
        raise NotSupportedError(f"the kernel reports no native XDP for {link.ifname} "
                                f"(xdp-features lacks basic; 'xdphints show {link.ifname}' says "
                                "why when it can tell): dump needs native mode (RX metadata "
                                "kfuncs do not run in generic mode)")
    advertised = nd.xdp_rx_metadata if nd is not None else 0
    return replace(target, advertised=advertised,
                   kfuncs=usable_kfuncs(advertised, xdp_metadata_kfunc_ids()))


def checked_target(nl, link, queue) -> Target:
    """The Target of `link` (no kfuncs yet) once `queue` (an int, a list, or None) is
    checked against its active RX queues; its link state for the link watch."""
    from xdphints_cli.device.queues import active_rx_queues
    from xdphints_cli.netlink.event_wire import is_up

    rxq = active_rx_queues(nl, link)
    check_queues(link.ifname, rxq, queue)
    return Target(link.ifname, link.ifindex, rxq.count, 0, {}, is_up(link.flags), link.mtu)


def _hints_struct_id(spec) -> int:
    """The hints struct the program writes: the one hints struct of its BTF."""
    from xdphints_cli.btf.hints import hints_structs

    found = hints_structs(spec)
    if len(found) != 1:
        raise XdpHintsError(f"the program's BTF has {len(found)} hints structs, expected 1")
    return found[0].id


class Capture:
    """Use as a context manager: __enter__ loads and attaches, __exit__ removes all."""

    # batches carry the built-in hints struct's rows (RowLayout): output can be built
    # in bulk from them (JsonLines, PcapngBlocks)
    bulk_rows = True
    # called with (umem, addrs) before a batch's frames go back to the kernel
    scrub: Optional[Callable] = None

    def __init__(self, target: Target, queue, frames: int = 8192, frame_size: int = 4096,
                 match=None, sample: int = 1, warn: Callable[[str], None] = lambda message: None,
                 transport: str = "auto"):
        """`queue`: one queue, a list of queues, or None for all the device's RX queues
        (one AF_XDP socket per queue, all in one XSKMAP of one program). `transport`:
        a name of transport.NAMES."""
        self._init_common(target, queue, match, sample, warn)
        self.requested = transport
        if frame_size == 4096 and target.mtu is not None and target.mtu <= SMALL_FRAME_MTU:
            # the same UMEM memory as twice the frames: twice the slack for a receive
            # loop held up by the scheduler or the writer
            frames, frame_size = frames * 2, 2048
        if len(self.queues) > 1:   # a UMEM per socket: keep the memory per queue modest
            frames = min(frames, 4096)
        fit = memlock_frames(frames, frame_size, len(self.queues))
        if fit < frames:
            warn(f"no CAP_IPC_LOCK: {fit} frames per queue instead of {frames} to stay "
                 "within RLIMIT_MEMLOCK (ulimit -l); bursts are likelier to be dropped")
            frames = fit
        self.frames = frames
        self.frame_size = frame_size
        # as many RX ring entries as frames (16 bytes each): the loop takes descriptors
        # off the ring at once (rx_detach), so every frame not in a batch being
        # processed can wait in the ring
        self.rx_size = frames

    def _init_common(self, target: Target, queue, match, sample: int,
                     warn: Callable[[str], None]) -> None:
        """What every capture has: the queues (None: all active ones), the match,
        counters, the device-watch state and the ExitStack that owns everything."""
        from xdphints_cli.hints.program import Match

        self.target = target
        if queue is None:
            queue = list(range(target.rx_queues))
        self.queues: List[int] = [queue] if isinstance(queue, int) else list(queue)
        self.queue = self.queues[0]
        self.match = match or Match()
        self.sample = sample
        self.stats = Stats()
        self.warn = warn
        self.gone: Optional[str] = None   # why the capture ended early: the device went away
        self._said: set = set()
        self._stack = contextlib.ExitStack()
        self.prog_id = 0
        self.btf_id = 0
        self.requested = "auto"
        self.transport = None            # transport.Transport, once the program is loaded
        self.transport_why = ""
        self.switches: List[str] = []    # what made auto move on, one line each
        self.unplaced = 0                # packets sent to the stack without hints
        self.counters = None             # the programs' per-CPU counters (a Map)
        self.counts: List[int] = []      # their sums, as last read
        self.passing = False             # dump --pass and verify: the packet goes on
        self._base = (0, 0)              # (unplaced, packets) when this transport began
        self._warned_unplaced = False
        self._next_check = 0.0
        self._link = None
        self.config = None               # config_watch.ConfigWatch: changes said during the capture

    def __enter__(self) -> "Capture":
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    def _open(self) -> None:
        from xdphints_cli.bpf import percpu
        from xdphints_cli.bpf import syscall as sc
        from xdphints_cli.bpf.maps import Map
        from xdphints_cli.hints import program
        from xdphints_cli.hints import transport as T

        t, st = self.target, self._stack
        n_entries = max(t.rx_queues, max(self.queues) + 1)
        self._xmap = st.enter_context(Map.create(sc.BPF_MAP_TYPE_XSKMAP, 4, 4, n_entries,
                                                 name="xdphints_xsks"))
        self.counters = st.enter_context(percpu.counters(program.N_COUNTS, "xdphints_counts"))
        self.transport, self.transport_why = T.choose(self.requested)
        prog = self._load_program(self._xmap.fd)[0]
        if self.layout.size > XDP_PACKET_HEADROOM:
            raise NotSupportedError(f"hints struct of {self.layout.size} bytes does not fit "
                                    f"in the {XDP_PACKET_HEADROOM}-byte headroom")
        self._open_sockets()
        for q, x in zip(self.queues, self.sockets):
            self._xmap.update_u32(q, x.fd)
        self._attach_xdp(prog.fd)
        self.stats.started = time.monotonic()

    def _load_program(self, xskmap_fd: Optional[int], **kw):
        """Load the built-in program for self.transport (owned by the stack) and learn
        what reading its metadata needs: spec, layout, rss_table. Returns (Program,
        ProgramBtf)."""
        from xdphints_cli.hints import program

        t = self.target
        prog, pbtf = program.load(t.ifindex, t.kfuncs, xskmap_fd, match=self.match,
                                  sample=self.sample, counts_fd=self.counters.fd,
                                  transport=self.transport, **kw)
        self._adopt(prog, pbtf)
        return prog, pbtf

    def _adopt(self, prog, pbtf) -> None:
        """Own a loaded built-in program and learn what reading its hints needs."""
        from xdphints_cli.btf.kfuncs import xdp_rss_hash_types
        from xdphints_cli.btf import reader

        self._stack.enter_context(prog)
        info = prog.info()
        self.prog_id, self.btf_id = info.id, info.btf_id
        # the reading side parses the BTF blob the program was loaded with (what the
        # kernel holds as btf_id: reading it back by id would need CAP_SYS_ADMIN); the
        # hints struct's member offsets become one struct.Struct for the bulk path
        self.spec = reader.parse(pbtf.blob)
        self.layout = RowLayout(self.spec, _hints_struct_id(self.spec))
        try:
            self.rss_table = xdp_rss_hash_types()
        except XdpHintsError:
            self.rss_table = {}

    def _attach_xdp(self, prog_fd: int) -> None:
        """Attach with a BPF link; a device that has a program already is refused."""
        from xdphints_cli.bpf.link import DeviceBusyError, XdpLink

        t = self.target
        try:
            self._link = self._stack.enter_context(XdpLink.attach(prog_fd, t.ifindex))
            if self.config is not None:
                self.config.settle()
        except DeviceBusyError:
            from xdphints_cli.netlink import rtnl
            from xdphints_cli.netlink.session import Netlink

            with Netlink() as nl:
                link = rtnl.get_link(nl, t.ifname)
            raise attached_program_error(t.ifname, link.xdp.programs) from None

    # --- the transport at run time ---------------------------------------------------
    def _read_counters(self) -> Optional[List[List[int]]]:
        """The programs' counters per CPU (None: this capture has none); their sums
        go to self.counts, the unplaced packets to self.unplaced."""
        from xdphints_cli.bpf import percpu
        from xdphints_cli.hints import program

        if self.counters is None or self.counters.closed:
            return None
        values = percpu.read_per_cpu(self.counters)
        self.counts = [sum(v) for v in values]
        self.unplaced = self.counts[program.COUNT_UNPLACED]
        return values

    def _placed(self) -> int:
        """Packets that carried hints so far (those the sockets received)."""
        return self.stats.packets

    def _check(self) -> None:
        """Every CHECK_EVERY seconds and when idle: did the program fail to place the
        hints struct? The first such packets make auto move to the next transport when
        this one placed nothing yet, or end the capture when no transport is left; a
        transport that places some and fails others is reported once and kept."""
        from xdphints_cli.hints import program

        self._next_check = time.monotonic() + CHECK_EVERY
        values = self._read_counters()
        new = self.unplaced - self._base[0] if values is not None else 0
        if new <= 0:
            return
        err = next((_signed(v) for v in values[program.COUNT_ERRNO] if v), 0)
        placed = self._placed() - self._base[1]
        failure = (f"{self.transport.helper} returned {errno_name(err) if err else 'an error'} "
                   f"for {new} packets on {self.target.ifname} (driver {self._driver()})")
        if placed:
            if not self._warned_unplaced:
                self._warned_unplaced = True
                self.warn(f"{failure} while {placed} others carried hints through the "
                          f"{self.transport.name} transport: those went on to the kernel stack "
                          "without hints (counted in the summary)")
            return
        self._move_on(failure, "so they went to the stack without hints")

    def _move_on(self, failure: str, consequence: str) -> None:
        """The transport failed on every packet so far: the next one under auto, else
        the end of the capture (exit 3)."""
        from xdphints_cli.hints import transport as T

        self.switches.append(f"{self.transport.name}: {failure}")
        nxt = (T.after(self.transport, self.passing) if self.requested == T.AUTO else None)
        if nxt is None:
            raise NotSupportedError(self._no_transport_error())
        old = self.transport
        self.transport = nxt
        self.transport_why = f"auto: the {old.name} transport failed: {failure}"
        self._replace_programs()
        self._read_counters()
        self._base = (self.unplaced, self._placed())
        self.warn(f"{failure}, {consequence}; switched to the {nxt.name} transport (XDP "
                  f"program id {self.prog_id})")

    def _replace_programs(self) -> None:
        """Programs for self.transport in place of the running ones, atomically (the
        link keeps the device from being without a program)."""
        prog = self._load_program(self._xmap.fd)[0]
        self._link.update(prog.fd)

    def _no_transport_error(self) -> str:
        from xdphints_cli.hints import transport as T

        t = self.target
        tried = "; ".join(self.switches)
        if self.requested != T.AUTO:
            return (f"the {self.transport.name} transport cannot carry hints on {t.ifname}: "
                    f"{tried}; those packets went to the stack without hints (try --transport auto)")
        return (f"no transport can carry hints on {t.ifname}: {tried}; those packets went to "
                "the stack without hints")

    def _driver(self) -> str:
        from xdphints_cli.ioctl.drvinfo import driver_name

        try:
            return driver_name(self.target.ifindex, self.target.ifname) or "unknown"
        except XdpHintsError:
            return "unknown"

    def transport_json(self) -> dict:
        out = {"name": self.transport.name if self.transport else None,
               "why": self.transport_why, "unplaced": self.unplaced}
        if self.switches:
            out["failed"] = list(self.switches)
        return out

    def _open_sockets(self) -> None:
        """One AF_XDP socket per queue, and the watch that tells when the device goes
        away."""
        import select

        from xdphints_cli.netlink.linkwatch import LinkWatch
        from xdphints_cli.xsk.socket import XskSocket

        t = self.target
        self.watch = self._stack.enter_context(LinkWatch(t.ifindex, t.up, t.mtu))
        self._watch_config()
        self.sockets = [self._stack.enter_context(XskSocket(t.ifindex, q, frames=self.frames,
                                                            frame_size=self.frame_size,
                                                            rx_size=self.rx_size))
                        for q in self.queues]
        self.xsk = self.sockets[0]
        self._umem = self.xsk.umem_area.mapping
        self._sources = [(x, q, x.umem_area.mapping) for q, x in zip(self.queues, self.sockets)]
        self._poller = select.poll()
        for x in self.sockets:
            self._poller.register(x.fd, select.POLLIN)

    def _watch_config(self) -> None:
        """Before the program is attached: the config as it is then is what changes
        are told against (config_watch.py)."""
        from xdphints_cli.hints.config_watch import ConfigWatch

        t = self.target
        try:
            self.config = self._stack.enter_context(ConfigWatch(t.ifindex, t.ifname, self.warn))
        except (OSError, XdpHintsError) as e:
            self.warn(f"changes of {t.ifname}'s offloads and hwtstamp config during the capture "
                      f"will not be told: {e}")

    def _check_config(self) -> None:
        if self.config is not None:
            self.config.check(self.stats.packets)

    def batches(self, count: Optional[int] = None, duration: Optional[float] = None,
                stop: Callable[[], bool] = lambda: False) -> Iterator[Batch]:
        """Receive until `count` packets, `duration` seconds or stop() is true, a batch
        per ready source at a time. Counters (packets, bytes, per-hint outcomes) are
        kept in bulk, with no per-packet Python objects beyond one tuple of hint
        members per packet. The frames of a batch go back to the kernel when the
        consumer asks for the next one (or the loop ends): use them before that."""
        stats = self.stats
        deadline = None if duration is None else stats.started + duration
        try:
            while not stop() and (count is None or stats.packets < count):
                wait = _wait_ms(deadline)
                if wait is None:
                    break
                ready = self._ready(wait)
                if not ready:
                    if self._device_gone():
                        break
                    self._check()
                    self._check_config()
                    continue
                for source in ready:
                    if count is not None and stats.packets >= count:
                        break
                    yield from self._take(source, None if count is None else count - stats.packets)
                if time.monotonic() >= self._next_check:
                    self._check()
                    self._check_config()
        finally:
            stats.ended = time.monotonic()
            self._finish()

    def _ready(self, wait: int) -> list:
        """The sources with packets, waiting up to `wait` ms for one: (socket, queue,
        UMEM) of every socket whose RX ring has descriptors. Asking the sockets first
        also kicks the kernel for a fill ring that asks for a wakeup."""
        for x in self.sockets:
            x.refill()
        ready = [s for s in self._sources if s[0].rx.available()]
        if not ready:
            try:
                self._poller.poll(wait)
            except InterruptedError:
                pass
            ready = [s for s in self._sources if s[0].rx.available()]
        return ready

    def _take(self, source, limit: Optional[int]) -> Iterator[Batch]:
        """One batch of a ready socket: its descriptors leave the RX ring at once
        (rx_detach), its frames go back after the consumer is done with them."""
        x, q, umem = source
        stats = self.stats
        n, first = x.rx_batch(MAX_BATCH if limit is None else min(MAX_BATCH, limit))
        if not n:
            return
        now = time.time_ns()
        if not stats.first_batch:
            stats.first_batch = time.monotonic()
        descs, lengths = _ring_slices(x, first, n)
        x.rx_detach(first, n)
        addrs, lengths, rows = self.split(descs, lengths, umem)
        stats.packets += n
        stats.batches += 1
        stats.bytes += sum(lengths)
        try:
            yield Batch(now, q, addrs, lengths, rows, umem)
        finally:
            if self.scrub is not None:
                self.scrub(umem, descs)
            x.return_frames(first, n)
            stats.last_batch = time.monotonic()

    def _finish(self) -> None:
        """When the loop ends: the last counters."""
        self.stats.xsk = _statistics(self.sockets)
        self._read_counters()

    def _device_gone(self) -> bool:
        """Asked when no packet came for a poll interval: true once the device went
        away (the loop ends; self.gone says why). That it went down or changed its
        MTU is said once each, and the capture goes on."""
        t = self.target
        for event in self.watch.changes():
            kind = event[0]
            if kind == "gone":
                self.gone = (f"{t.ifname} went away (deleted, or moved to another network "
                             "namespace) during the capture")
                return True
            if kind in self._said:
                continue
            if kind == "down":
                self._said.add(kind)
                self.warn(f"{t.ifname} is down (or lost its carrier): no packets until it is "
                          "up again; still capturing")
            elif kind == "mtu":
                self._said.add(kind)
                self.warn(f"{t.ifname} changed its MTU from {event[1]} to {event[2]}; still "
                          "capturing")
        return False

    def split(self, addrs: List[int], lengths: List[int], umem):
        """(packet addresses, packet lengths, hints rows) of received frames: the
        transport says where the struct and the packet are; a frame whose struct does
        not carry the program's btf_id is shown whole, row None. Counts the outcomes
        into self.stats."""
        lay, stats = self.layout, self.stats
        metas, paddrs, plens = self.transport.locate(addrs, lengths, lay.size)
        rows = list(map(lay.struct.unpack_from, repeat(umem, len(metas)), metas))
        good = list(map(lay.btf_id, rows)).count(lay.type_id)
        if good == len(rows):
            lay.count(rows, stats.hints)
            return paddrs, plens, rows
        paddrs, plens = list(paddrs), list(plens)
        for i, r in enumerate(rows):
            if lay.btf_id(r) != lay.type_id:
                rows[i], paddrs[i], plens[i] = None, addrs[i], lengths[i]
        stats.no_metadata += len(rows) - good
        lay.count([r for r in rows if r is not None], stats.hints)
        return paddrs, plens, rows

    def decode(self, batch: Batch, snaplen: Optional[int] = None) -> Iterator[Packet]:
        """The batch's packets as decoded Packets (summary, hint values, data); to be
        used before the next batch is asked for."""
        umem, lay = (batch.umem if batch.umem is not None else self._umem), self.layout
        for addr, length, row in zip(batch.addrs, batch.lengths, batch.rows):
            head = bytes(umem[addr:addr + min(length, max(snaplen or 0, 256))])
            if row is None:
                btf_id, hv = None, {}
            else:
                btf_id, hv = lay.type_id, hint_values(lay.meta(row))
            yield Packet(batch.time_ns, batch.queue, length, summarize(head), btf_id, hv,
                         head[:snaplen] if snaplen else head)

    def packets(self, count: Optional[int] = None, duration: Optional[float] = None,
                stop: Callable[[], bool] = lambda: False,
                snaplen: Optional[int] = None) -> Iterator[Packet]:
        """Like batches(), one decoded Packet at a time."""
        for b in self.batches(count, duration, stop):
            yield from self.decode(b, snaplen)


def _statistics(sockets) -> Dict[str, int]:
    """The AF_XDP drop counters of the still-open sockets, added up."""
    total: Dict[str, int] = {}
    for x in sockets:
        if x.closed:
            continue
        try:
            for k, v in x.statistics().items():
                total[k] = total.get(k, 0) + v
        except XdpHintsError:
            pass
    return total


def _signed(v: int) -> int:
    """A u64 counter that holds a negative errno, as the number."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _wait_ms(deadline: Optional[float]) -> Optional[int]:
    """How long one poll may wait: POLL_MS, less near the deadline; None once it passed."""
    if deadline is None:
        return POLL_MS
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    return max(1, min(POLL_MS, int(left * 1000)))


def _ring_slices(xsk, first: int, n: int) -> Tuple[List[int], List[int]]:
    """(addrs, lengths) of RX descriptors first..first+n-1, read from the ring with
    strided memoryview slices (at most two: the ring may wrap)."""
    size = xsk.rx_mask + 1
    s = first & xsk.rx_mask
    a = min(n, size - s)
    ea, ew = xsk.rx_addrs, xsk.rx_words
    addrs = ea[2 * s:2 * (s + a):2].tolist()
    lengths = ew[4 * s + 2:4 * (s + a):4].tolist()
    if a < n:
        addrs += ea[0:2 * (n - a):2].tolist()
        lengths += ew[2:4 * (n - a):4].tolist()
    return addrs, lengths


@contextlib.contextmanager
def stop_on_signals(signums: Tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
                    on_first: Callable[[], None] = lambda: None):
    """Yields a callable that turns true once SIGINT or SIGTERM arrived; `on_first` runs
    in the handler of the first (streams.unblock_stdout_soon, for the CLI)."""
    hit = []

    def handler(signum, _frame):
        if not hit:
            on_first()
        hit.append(signum)

    old = {s: signal.signal(s, handler) for s in signums}
    try:
        yield lambda: bool(hit)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
