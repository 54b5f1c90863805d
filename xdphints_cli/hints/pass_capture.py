"""The capture behind `dump --pass` and `verify`: observe without taking packets away.

The XDP_PASS variant of the built-in program writes the hints in front of the
packets it matches and passes them to the kernel stack; the tcx ingress program of
pass_program.py copies the metadata, the first bytes of the packet and the stack's
own view of it (skb hash, VLAN tag, hardware timestamp, queue mapping) into a ring buffer;
this module reads the ring. Both programs hang on BPF links, so they leave with the
process, kill -9 included. Records that do not fit in the ring are dropped and
counted (a per-CPU counter in the tcx program), never the packets.
"""

from __future__ import annotations

import errno
import struct
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional

from xdphints_cli.errors import KernelError, NotSupportedError, XdpHintsError
from xdphints_cli.hints import pass_program as PP
from xdphints_cli.hints.capture import Capture, Packet, Target, _wait_ms
from xdphints_cli.hints.decoding import RowLayout, hint_values
from xdphints_cli.hints.packet import summarize
from xdphints_cli.hints.program import COUNT_DROPPED, COUNT_MARKED, COUNT_RECORDS, N_COUNTS

HEADER = struct.Struct("<8IQI")     # the record header up to flags (pass_program.py)
SUMMARY_BYTES = 128                 # bytes copied at least, for the packet summary
RING_BYTES = 4 << 20                # the ring's data area, at least
RING_RECORDS = 4096                 # records the ring holds, at least
# the XDP program marked this many packets and none reached tc: the driver drops the
# metadata on the way to the stack
MARKED_PROBE = 8


@dataclass(frozen=True)
class StackView:
    """What the kernel stack holds for a packet (its sk_buff, seen at tc ingress)."""

    hash: int                   # skb->hash, 0: none
    # skb->queue_mapping as is: drivers that record the RX queue store queue + 1 there,
    # veth leaves the sender's TX queue (which is its RX queue), so it is not decoded
    queue_mapping: int
    vlan_present: bool
    vlan_proto: int             # host order
    vlan_tci: int
    hwtstamp: int               # ns, 0: none
    l4_hash: Optional[bool] = None   # skb->l4_hash, None: not read

    @classmethod
    def from_header(cls, h) -> "StackView":
        _len, _caplen, hsh, qmap, present, proto, tci, _rxq, hwts, flags = h
        proto &= 0xFFFF
        l4 = bool(flags & PP.FLAG_L4_HASH) if flags & PP.FLAG_L4_HASH_READ else None
        return cls(hsh, qmap, bool(present),
                   ((proto & 0xFF) << 8) | (proto >> 8), tci & 0xFFFF, hwts, l4)

    def to_json(self) -> dict:
        """Values the stack does not have are left out (hash 0, no tag, no timestamp)."""
        out: dict = {}
        if self.hash:
            out["hash"] = f"0x{self.hash:08x}"
            if self.l4_hash is not None:
                out["l4-hash"] = self.l4_hash
        out["vlan-present"] = self.vlan_present
        if self.vlan_present:
            t = self.vlan_tci
            out["vlan"] = {"proto": f"0x{self.vlan_proto:04x}", "tci": t, "vid": t & 0xFFF,
                           "pcp": t >> 13, "dei": (t >> 12) & 1}
        if self.hwtstamp:
            out["hwtstamp"] = self.hwtstamp
        out["queue-mapping"] = self.queue_mapping
        return out

    def text(self) -> str:
        j = self.to_json()
        parts = [f"hash {j.get('hash', 'n/a')}" + (" (l4)" if j.get("l4-hash") else "")]
        v = j.get("vlan")
        parts.append(f"vlan {v['proto']} vid {v['vid']} pcp {v['pcp']} dei {v['dei']}" if v
                     else "vlan n/a")
        parts.append(f"hwtstamp {j.get('hwtstamp', 'n/a')}")
        return "stack: " + " ".join(parts)


def decode_record(r, layout: RowLayout, time_ns: int, snaplen: Optional[int] = None) -> Packet:
    """One ring record (pass_program.py's layout) as a Packet with its stack view;
    `layout` reads the hints struct. `snaplen` trims the packet bytes kept."""
    if len(r) < PP.RECORD_HEADER:
        raise XdpHintsError(f"ring record of {len(r)} bytes, shorter than its header")
    h = HEADER.unpack_from(r)
    head = bytes(r[PP.RECORD_HEADER:PP.RECORD_HEADER + h[1]])
    row = layout.struct.unpack_from(r, PP.REC_META + PP.L.META_SIZE - layout.size)
    return Packet(time_ns, h[7], h[0], summarize(head), layout.type_id,
                  hint_values(layout.meta(row)), head[:snaplen] if snaplen else head,
                  stack=StackView.from_header(h))


@dataclass(frozen=True)
class PassBatch:
    time_ns: int
    records: List[memoryview]       # views into the ring: use before the next batch


class PassCapture(Capture):
    """Like Capture (same stats, decode, summary, device watch), through the stack.
    `snaplen`: bytes of each packet the tcx program copies (at least SUMMARY_BYTES)."""

    bulk_rows = False

    def __init__(self, target: Target, queue, snaplen: int, match=None, sample: int = 1,
                 warn: Callable[[str], None] = lambda message: None):
        self._init_common(target, queue, match, sample, warn)
        self._queue_filter = None if queue is None else self.queues
        self.snap = max(snaplen, SUMMARY_BYTES)
        self.frame_size = self.snap
        self.tc_prog_id = 0
        self.counts = [0] * N_COUNTS

    def _open(self) -> None:
        from xdphints_cli.bpf import percpu
        from xdphints_cli.bpf.link import TcxLink
        from xdphints_cli.bpf.ringbuf import RingBuffer
        from xdphints_cli.netlink.linkwatch import LinkWatch

        t, st = self.target, self._stack
        self.counters = st.enter_context(percpu.counters(N_COUNTS, "xdphints_counts"))
        rec = PP.record_size(self.snap) + 8
        self.ring = st.enter_context(RingBuffer(max(RING_BYTES, RING_RECORDS * rec)))
        prog, pbtf = self._load_program(None, counts_fd=self.counters.fd,
                                        queues=self._queue_filter)
        tc = st.enter_context(PP.load(self.ring.fd, self.counters.fd, pbtf.struct_id, self.snap,
                                      l4=PP.l4_hash_bit()))
        self.tc_prog_id = tc.info().id
        self.watch = st.enter_context(LinkWatch(t.ifindex, t.up, t.mtu))
        # tc first: no packet the XDP program marks may pass before tc is there to see it
        try:
            st.enter_context(TcxLink.attach(tc.fd, t.ifindex))
        except KernelError as e:
            if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                raise NotSupportedError(f"{e}: this kernel cannot attach tc programs with "
                                        "tcx links (Linux 6.6 or later needed for --pass)") from None
            raise
        self._attach_xdp(prog.fd)
        self.stats.started = time.monotonic()

    def read_counts(self) -> List[int]:
        from xdphints_cli.bpf import percpu

        if not self.counters.closed:
            self.counts = percpu.read_sums(self.counters)
        return self.counts

    @property
    def dropped(self) -> int:
        return self.counts[COUNT_DROPPED]

    def _metadata_lost(self) -> bool:
        """True once the XDP program marked packets and none reached tc ingress."""
        c = self.read_counts()
        return c[COUNT_MARKED] >= MARKED_PROBE and not c[COUNT_RECORDS] + c[COUNT_DROPPED]

    def _lost_error(self) -> NotSupportedError:
        from xdphints_cli.ioctl.drvinfo import driver_name

        t = self.target
        drv = driver_name(t.ifindex, t.ifname) or "unknown"
        return NotSupportedError(
            f"the XDP metadata of {t.ifname} (driver {drv}) does not reach tc: the XDP "
            f"program marked {self.counts[COUNT_MARKED]} packets and the tcx program saw "
            "none of them with metadata; --pass and verify need a driver that keeps the "
            "metadata in the skb (dump without --pass works)")

    def batches(self, count: Optional[int] = None, duration: Optional[float] = None,
                stop: Callable[[], bool] = lambda: False) -> Iterator[PassBatch]:
        """Records as they come, a batch per wake-up; counts as Capture.batches does."""
        ring, stats, unpack = self.ring, self.stats, HEADER.unpack_from
        lay = self.layout
        row_of, meta_off = lay.struct.unpack_from, PP.REC_META + PP.L.META_SIZE - lay.size
        deadline = None if duration is None else stats.started + duration
        try:
            while not stop() and (count is None or stats.packets < count):
                wait = _wait_ms(deadline)
                if wait is None:
                    break
                if not ring.wait(wait):
                    if self._device_gone():
                        break
                    if not stats.packets and self._metadata_lost():
                        raise self._lost_error()
                    continue
                recs = ring.batch(None if count is None else count - stats.packets)
                if not recs:
                    continue
                now = time.time_ns()
                if not stats.first_batch:
                    stats.first_batch = time.monotonic()
                stats.packets += len(recs)
                stats.bytes += sum(unpack(r)[0] for r in recs)
                lay.count([row_of(r, meta_off) for r in recs], stats.hints)
                try:
                    yield PassBatch(now, recs)
                finally:
                    ring.release()
                    stats.last_batch = time.monotonic()
        finally:
            stats.ended = time.monotonic()
            self.read_counts()

    def decode(self, batch: PassBatch, snaplen: Optional[int] = None) -> Iterator[Packet]:
        for r in batch.records:
            yield decode_record(r, self.layout, batch.time_ns, snaplen)

    def counters_json(self) -> Dict[str, int]:
        c = self.counts
        return {"marked": c[COUNT_MARKED], "records": c[COUNT_RECORDS],
                "ring-dropped": c[COUNT_DROPPED]}
