"""The capture behind `dump --pass` and `verify`: observe without taking packets away.

The XDP_PASS variant of the built-in program writes the hints in front of the
packets it matches (the metadata transport) or stores them under the frame's
fingerprint (fingerprint.py, where there is no metadata area) and passes them to the
kernel stack; the tcx ingress program of pass_program.py copies the hints, the first
bytes of the packet and the stack's own view of it (skb hash, VLAN tag, hardware
timestamp, queue mapping) into a ring buffer; this module reads the ring. Both
programs hang on BPF links, so they leave with the process, kill -9 included. Records that do not fit in the ring are dropped and
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
from xdphints_cli.hints.capture import Capture, Packet, Target
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
    `snaplen`: bytes of each packet the tcx program copies (at least SUMMARY_BYTES).
    `transport`: auto, metadata or fingerprint (transport.PASS_NAMES)."""

    bulk_rows = False

    def __init__(self, target: Target, queue, snaplen: int, match=None, sample: int = 1,
                 warn: Callable[[str], None] = lambda message: None, transport: str = "auto"):
        self._init_common(target, queue, match, sample, warn)
        self.requested = transport
        self.passing = True
        self._queue_filter = None if queue is None else self.queues
        self.snap = max(snaplen, SUMMARY_BYTES)
        self.frame_size = self.snap
        self.tc_prog_id = 0
        self.counts = [0] * N_COUNTS
        self.left: Optional[int] = None
        self._fingerprints = None

    def _open(self) -> None:
        from xdphints_cli.bpf import percpu
        from xdphints_cli.bpf.link import TcxLink
        from xdphints_cli.bpf.ringbuf import RingBuffer
        from xdphints_cli.hints import transport as T
        from xdphints_cli.netlink.linkwatch import LinkWatch

        t, st = self.target, self._stack
        self.counters = st.enter_context(percpu.counters(N_COUNTS, "xdphints_counts"))
        rec = PP.record_size(self.snap) + 8
        self.ring = st.enter_context(RingBuffer(max(RING_BYTES, RING_RECORDS * rec)))
        self.transport, self.transport_why = T.choose(self.requested, passing=True)
        prog, tc = self._load_pair()
        self.watch = st.enter_context(LinkWatch(t.ifindex, t.up, t.mtu))
        self._watch_config()
        # tc first: no packet the XDP program marks may pass before tc is there to see it
        try:
            self._tc_link = st.enter_context(TcxLink.attach(tc.fd, t.ifindex))
        except KernelError as e:
            if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                raise NotSupportedError(f"{e}: this kernel cannot attach tc programs with "
                                        "tcx links (Linux 6.6 or later needed for --pass)") from None
            raise
        self._attach_xdp(prog.fd)
        self.stats.started = time.monotonic()

    def _load_pair(self):
        """The XDP and tcx programs of self.transport (owned by the stack)."""
        from xdphints_cli.hints import fingerprint
        from xdphints_cli.hints import program
        from xdphints_cli.hints import transport as T

        t, st = self.target, self._stack
        if self.transport is T.FINGERPRINT:
            if self._fingerprints is None:
                self._fingerprints = st.enter_context(fingerprint.create_map())
            fp_fd = self._fingerprints.fd
            xdp, pbtf = program.load_items(t.ifindex, lambda struct_id: fingerprint.generate_xdp(
                t.kfuncs, fp_fd, self.counters.fd, struct_id, self.match, self.sample,
                self._queue_filter), "xdphints_dump")
            self._adopt(xdp, pbtf)
        else:
            fp_fd = None
            xdp, pbtf = self._load_program(None, queues=self._queue_filter)
        tc = st.enter_context(PP.load(self.ring.fd, self.counters.fd, pbtf.struct_id, self.snap,
                                      l4=PP.l4_hash_bit(), fingerprints_fd=fp_fd))
        self.tc_prog_id = tc.info().id
        return xdp, tc

    def _replace_programs(self) -> None:
        xdp, tc = self._load_pair()
        self._tc_link.update(tc.fd)        # it takes both kinds of record: first
        self._link.update(xdp.fd)

    def _placed(self) -> int:
        return self.counts[COUNT_MARKED] if self.counts else 0

    def _check(self) -> None:
        """Capture's check, and: marked packets whose metadata area never reached tc
        (the driver drops it on the way to the stack) move auto to the fingerprint
        transport; otherwise end the capture (exit 3)."""
        from xdphints_cli.hints import transport as T

        super()._check()
        c = self.counts
        if (self.transport is T.METADATA and not self.stats.packets
                and c[COUNT_MARKED] >= MARKED_PROBE and not c[COUNT_RECORDS] + c[COUNT_DROPPED]):
            t = self.target
            failure = (f"the XDP metadata area of {t.ifname} (driver {self._driver()}) does not "
                       f"reach tc: the XDP program marked {c[COUNT_MARKED]} packets and the "
                       "tcx program saw none of them with metadata")
            if self.requested != T.AUTO:
                raise NotSupportedError(f"{failure}; --transport metadata needs a driver that "
                                        "keeps the metadata in the skb (try --transport auto)")
            self._move_on(failure, "so they were not compared")

    def _ready(self, wait: int) -> list:
        return [self.ring] if self.ring.wait(wait) else []

    def _take(self, ring, limit: Optional[int]) -> Iterator[PassBatch]:
        """The ring's records as they come; counts as Capture._take does."""
        stats, lay = self.stats, self.layout
        recs = ring.batch(limit)
        if not recs:
            return
        now = time.time_ns()
        if not stats.first_batch:
            stats.first_batch = time.monotonic()
        stats.packets += len(recs)
        stats.batches += 1
        unpack = HEADER.unpack_from
        stats.bytes += sum(unpack(r)[0] for r in recs)
        meta_off = PP.REC_META + PP.L.META_SIZE - lay.size
        lay.count([lay.struct.unpack_from(r, meta_off) for r in recs], stats.hints)
        try:
            yield PassBatch(now, recs)
        finally:
            ring.release()
            stats.last_batch = time.monotonic()

    def _finish(self) -> None:
        from xdphints_cli.hints import fingerprint

        self._read_counters()
        if self._fingerprints is not None and not self._fingerprints.closed:
            self.left = fingerprint.records_left(self._fingerprints)

    def decode(self, batch: PassBatch, snaplen: Optional[int] = None) -> Iterator[Packet]:
        for r in batch.records:
            yield decode_record(r, self.layout, batch.time_ns, snaplen)

    def counters_json(self) -> Dict[str, int]:
        from xdphints_cli.hints import fingerprint
        from xdphints_cli.hints import transport as T

        c = self.counts
        out = {"marked": c[COUNT_MARKED], "records": c[COUNT_RECORDS],
               "ring-dropped": c[COUNT_DROPPED]}
        if self._fingerprints is not None or self.transport is T.FINGERPRINT:
            out.update(fingerprint.counters_json(c, self.left))
        return out
