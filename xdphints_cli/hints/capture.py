"""The capture session behind `xdphints dump`: device checks, XSKMAP, dev-bound hints
program, AF_XDP socket, XDP link, the receive loop and its counters.

Everything is owned by one ExitStack; the link is a bpf_link, so the program comes off
the device when the process ends, however it ends (kill -9 included).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, Optional, Tuple

from xdphints_cli.errors import NotFoundError, NotSupportedError, XdpHintsError
from xdphints_cli.hints.decoding import HINTS, HintValue, MetadataDecoder, hint_values
from xdphints_cli.hints.packet import PacketSummary, summarize

XDP_FEATURE_BASIC = 1
BATCH = 64
POLL_MS = 100
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


@dataclass
class Stats:
    packets: int = 0
    bytes: int = 0
    no_metadata: int = 0
    started: float = 0.0
    ended: float = 0.0
    hints: Dict[str, Counter] = field(default_factory=lambda: {h: Counter() for h in HINTS})
    xsk: Dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return max(self.ended - self.started, 0.0)

    @property
    def rate(self) -> float:
        return self.packets / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {"packets": self.packets, "bytes": self.bytes,
                "seconds": round(self.seconds, 6), "pps": round(self.rate, 1),
                "no-metadata": self.no_metadata,
                "xsk": {k.replace("_", "-"): self.xsk[k] for k in XSK_STAT_KEYS if k in self.xsk},
                "hints": {h: dict(c) for h, c in self.hints.items()}}


@dataclass(frozen=True)
class Target:
    ifname: str
    ifindex: int
    rx_queues: Optional[int]
    advertised: int              # netdev xdp-rx-metadata-features bits
    kfuncs: Dict[str, int]       # kfunc name -> BTF id the program calls


def attached_program_error(ifname: str, programs) -> DeviceHasProgramError:
    """The message for a device that already has XDP programs: which, and what to do."""
    from xdphints_cli.programs import describe

    descs = []
    for mode, prog_id in programs:
        try:
            p = describe(prog_id, mode)
            descs.append(f"id {p.id} name {p.name or '-'} ({p.mode} mode)")
        except XdpHintsError:
            descs.append(f"id {prog_id} ({mode} mode)")
    return DeviceHasProgramError(
        f"{ifname} already has an XDP program attached: {'; '.join(descs)}. dump never "
        f"replaces or detaches a program: stop the tool that owns it (or, for a program "
        f"attached through netlink, run 'ip link set dev {ifname} xdp off'), or dump on "
        "another device")


def resolve_target(dev: Optional[str], queue: int, warn: Callable[[str], None]) -> Target:
    """Checks before anything is loaded: device, queue, no XDP program yet, native XDP;
    and the kfuncs to call (advertised by the device and present in kernel BTF)."""
    from xdphints_cli.btf.kfuncs import xdp_metadata_kfunc_ids
    from xdphints_cli.device import default_device
    from xdphints_cli.errors import KernelTooOldError
    from xdphints_cli.hints.program import usable_kfuncs
    from xdphints_cli.netlink import netdev, rtnl
    from xdphints_cli.netlink.session import Netlink

    with Netlink() as nl:
        name = dev or default_device(nl)
        link = rtnl.get_link(nl, name)
        if link.xdp.programs:
            raise attached_program_error(link.ifname, link.xdp.programs)
        if link.num_rx_queues is not None and queue >= link.num_rx_queues:
            n = link.num_rx_queues
            raise NotFoundError(f"device {link.ifname} has {n} RX queue{'s' if n != 1 else ''}; "
                                f"queue {queue} does not exist")
        try:
            nd = netdev.get_dev(nl, link.ifindex, link.ifname)
        except KernelTooOldError as e:
            warn(f"{e}; cannot tell which hints {link.ifname} supports")
            nd = None
    if nd is not None and not nd.xdp_features & XDP_FEATURE_BASIC:
        raise NotSupportedError(f"device {link.ifname} has no native (driver) XDP support; "
                                "dump needs native mode (RX metadata kfuncs do not run in "
                                "generic mode)")
    advertised = nd.xdp_rx_metadata if nd is not None else 0
    ids = xdp_metadata_kfunc_ids()
    return Target(link.ifname, link.ifindex, link.num_rx_queues, advertised,
                  usable_kfuncs(advertised, ids))


class Capture:
    """Use as a context manager: __enter__ loads and attaches, __exit__ removes all."""

    def __init__(self, target: Target, queue: int, frames: int = 4096, frame_size: int = 4096):
        self.target = target
        self.queue = queue
        self.frames = frames
        self.frame_size = frame_size
        self.stats = Stats()
        self._stack = contextlib.ExitStack()
        self.prog_id = 0
        self.btf_id = 0

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
        from xdphints_cli.bpf import syscall as sc
        from xdphints_cli.bpf.link import DeviceBusyError, XdpLink
        from xdphints_cli.bpf.maps import Map
        from xdphints_cli.btf.kfuncs import xdp_rss_hash_types
        from xdphints_cli.hints import program
        from xdphints_cli.progbtf import spec_of_btf
        from xdphints_cli.xsk.socket import XskSocket

        t, st = self.target, self._stack
        n_entries = max(t.rx_queues or 1, self.queue + 1)
        xmap = st.enter_context(Map.create(sc.BPF_MAP_TYPE_XSKMAP, 4, 4, n_entries,
                                           name="xdphints_xsks"))
        prog, _pbtf = program.load(t.ifindex, t.kfuncs, xmap.fd)
        st.enter_context(prog)
        info = prog.info()
        self.prog_id, self.btf_id = info.id, info.btf_id
        # the reading side uses the kernel's copy of the program's BTF, like any tool would
        self.decoder = MetadataDecoder(spec_of_btf(info.btf_id))
        try:
            self.rss_table = xdp_rss_hash_types()
        except XdpHintsError:
            self.rss_table = {}
        self.xsk = st.enter_context(XskSocket(t.ifindex, self.queue, frames=self.frames,
                                              frame_size=self.frame_size))
        xmap.update_u32(self.queue, self.xsk.fd)
        try:
            st.enter_context(XdpLink.attach(prog.fd, t.ifindex))
        except DeviceBusyError:
            from xdphints_cli.netlink import rtnl
            from xdphints_cli.netlink.session import Netlink

            with Netlink() as nl:
                link = rtnl.get_link(nl, t.ifname)
            raise attached_program_error(t.ifname, link.xdp.programs) from None
        self.stats.started = time.monotonic()

    def packets(self, count: Optional[int] = None, duration: Optional[float] = None,
                stop: Callable[[], bool] = lambda: False, details: bool = True,
                snaplen: Optional[int] = None) -> Iterator[Packet]:
        """Receive until `count` packets, `duration` seconds or stop() is true. With
        details=False only the counters are kept (nothing is yielded)."""
        xsk, stats, dec = self.xsk, self.stats, self.decoder
        fsize = self.frame_size
        deadline = None if duration is None else stats.started + duration
        try:
            while not stop() and (count is None or stats.packets < count):
                wait = POLL_MS
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    wait = max(1, min(wait, int(left * 1000)))
                if not xsk.poll(wait):
                    continue
                n, first = xsk.rx_batch(BATCH)
                if count is not None:
                    n = min(n, count - stats.packets)
                now = time.time_ns()
                umem = xsk.umem
                for k in range(n):
                    addr, length = xsk.desc(first + k)
                    got = dec.decode(umem, addr, addr % fsize)
                    if got is None:
                        stats.no_metadata += 1
                        btf_id, hv = None, {}
                    else:
                        btf_id, hv = got[0], hint_values(got[1])
                        for h, v in hv.items():
                            stats.hints[h][v.counter_key] += 1
                    stats.packets += 1
                    stats.bytes += length
                    if details:
                        head = bytes(umem[addr:addr + min(length, max(snaplen or 0, 256))])
                        yield Packet(now, self.queue, length, summarize(head), btf_id, hv,
                                     head[:snaplen] if snaplen else head)
                xsk.rx_release(n)
        finally:
            stats.ended = time.monotonic()
            try:
                stats.xsk = xsk.statistics()
            except XdpHintsError:
                pass


@contextlib.contextmanager
def stop_on_signals(signums: Tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)):
    """Yields a callable that turns true once SIGINT or SIGTERM arrived."""
    hit = []

    def handler(signum, _frame):
        hit.append(signum)

    old = {s: signal.signal(s, handler) for s in signums}
    try:
        yield lambda: bool(hit)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
