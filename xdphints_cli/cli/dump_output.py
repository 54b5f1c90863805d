"""What `xdphints dump` prints: per-packet text and JSON lines, the summary, hex dumps,
pcapng records, and the batched writer that keeps output off the receive loop.

Only the standard library is imported here at module level, so `dump --help` stays light.
"""

from __future__ import annotations

import struct
import sys
from typing import Optional

from xdphints_cli.cli.app import App
from xdphints_cli.cli.safe_text import escape, escape_text


def metadata_text(meta) -> str:
    """One packet's --attached metadata as text: struct (btf-id) and fields, or the
    raw bytes of a layout nothing names."""
    if meta is None:
        return "no metadata"
    if "struct" not in meta:
        return f"metadata (unknown layout) {meta['raw'] or '-'}"
    fields = " ".join(f"{k} {v}" for k, v in meta["fields"].items() if k != "btf_id")
    btf_id = f" btf-id {meta['btf-id']}" if "btf-id" in meta else ""
    # struct and member names come from the user's program (BTF or DWARF): any bytes
    return escape(f"struct {meta['struct']}{btf_id}: {fields}")


def say(text: str) -> None:
    """Lines of dump's own on stderr (start line, summary), control characters escaped:
    they carry device, program and struct names."""
    sys.stderr.write(escape_text(text))
    sys.stderr.flush()


def json_line(obj) -> str:
    import json

    return json.dumps(obj, separators=(", ", ": "))


def announce(app: App, cap) -> None:
    t = cap.target
    from xdphints_cli.hints.layout import KFUNC_BITS

    called = {n for n in t.kfuncs}
    names = {"bpf_xdp_metadata_rx_timestamp": "rx-timestamp",
             "bpf_xdp_metadata_rx_hash": "rx-hash", "bpf_xdp_metadata_rx_vlan_tag": "rx-vlan"}
    missing = [names[n] for n in KFUNC_BITS if n not in called]
    if missing:
        app.warn(f"{t.ifname} does not provide {', '.join(missing)} (not in its "
                 "xdp-rx-metadata-features, or not in this kernel): shown as unsupported")
    sample = f", one in {cap.sample}" if cap.sample > 1 else ""
    tc = getattr(cap, "tc_prog_id", 0)
    via = f", tcx program id {tc}; packets go on to the stack" if tc else ""
    say(f"xdphints: dumping {t.ifname} {queues_text(cap)} (XDP program id {cap.prog_id}, "
        f"BTF object id {cap.btf_id}{via}; match {cap.match}{sample}; {transport_text(cap)}); "
        "Ctrl-C to stop\n")


def transport_text(cap) -> str:
    """"transport headroom (auto: metadata area refused by this kernel: ...)"."""
    return f"transport {cap.transport.name} ({cap.transport_why})"


def announce_attached(app: App, cap) -> None:
    prog, named = cap.prog, cap.named
    how = (f"metadata as struct {named.name} from {named.where}" if named is not None
           else f"BTF object id {prog.btf_id}")
    say(f"xdphints: dumping {cap.target.ifname} {queues_text(cap)} through the attached XDP "
        f"program id {prog.id}{' (' + prog.name + ')' if prog.name else ''}, XSKMAP id "
        f"{cap.map_id}, {how}; Ctrl-C to stop\n")
    if named is None and not cap.has_hints_structs:
        app.warn(f"the BTF of program id {prog.id} has no hints struct (none named xdp_hints* "
                 "or ending in a __u32 btf_id), so nothing says what its metadata is: it is "
                 "shown raw; name the layout with --struct NAME (and --btf FILE, e.g. the "
                 "program's .o, when only its DWARF has it)")


# --- per packet -------------------------------------------------------------------

def realtime_fields(hw_ns: int, clock, recv_ns: int) -> str:
    """`, "realtime": "S.N", "delay-ns": D` for a hardware timestamp, through `clock`
    (a phc.ClockMap): the timestamp as CLOCK_REALTIME, and how long after it the
    packet reached user space (its batch's receive time)."""
    rt = clock.to_realtime_ns(hw_ns)
    return f', "realtime": "{rt // 10**9}.{rt % 10**9:09d}", "delay-ns": {recv_ns - rt}'


def _hint_json(name: str, v, rss_table, clock=None, recv_ns: int = 0) -> dict:
    out: dict = {"status": v.status}
    if v.errno_name:
        out["errno"] = v.errno_name
    if v.status != "ok":
        return out
    if name == "rx-timestamp":
        out["ns"] = v.get("rx_timestamp")
        if clock is not None:
            rt = clock.to_realtime_ns(out["ns"])
            out["realtime"] = f"{rt // 10**9}.{rt % 10**9:09d}"
            out["delay-ns"] = recv_ns - rt
    elif name == "rx-hash":
        from xdphints_cli.btf.kfuncs import rss_hash_type_name
        from xdphints_cli.hints.decoding import rss_type_names

        htype = v.get("rx_hash_type") or 0
        out.update({"hash": f"0x{v.get('rx_hash'):08x}", "type": htype})
        if rss_table:
            out["type-name"] = rss_hash_type_name(htype, rss_table)
            out["type-bits"] = list(rss_type_names(htype, rss_table))
    elif name == "rx-vlan":
        tci = v.get("rx_vlan_tci") or 0
        out.update({"proto": f"0x{v.get('rx_vlan_proto'):04x}", "tci": tci, "vid": tci & 0xFFF,
                    "pcp": tci >> 13, "dei": (tci >> 12) & 1})
    return out


def packet_json(pkt, rss_table, with_data: bool = False, clock=None) -> dict:
    from xdphints_cli.hints.decoding import HINTS

    out: dict = {"time": f"{pkt.time_ns // 10**9}.{pkt.time_ns % 10**9:09d}",
                 "queue": pkt.queue, "len": pkt.length}
    if pkt.summary is not None:
        out.update(_summary_json(pkt.summary))
    if pkt.metadata is not None:
        out["metadata"] = pkt.metadata
    elif pkt.btf_id is None:
        out["metadata"] = None
    else:
        out["btf-id"] = pkt.btf_id
        for h in HINTS:
            out[h] = _hint_json(h, pkt.hints[h], rss_table, clock, pkt.time_ns)
    if pkt.stack is not None:
        out["stack"] = pkt.stack.to_json()
    if with_data and pkt.data is not None:
        out["data"] = pkt.data.hex()
    return out


def _hint_text(name: str, v, rss_table, clock=None, recv_ns: int = 0) -> str:
    if v.status == "absent":
        return f"{name} n/a"
    if v.status != "ok":
        return f"{name} {v.errno_name or 'none'}"
    j = _hint_json(name, v, rss_table, clock, recv_ns)
    if name == "rx-timestamp":
        if "realtime" in j:
            return f"{name} {j['ns']} (realtime {j['realtime']}, delay {j['delay-ns']} ns)"
        return f"{name} {j['ns']}"
    if name == "rx-hash":
        return f"{name} {j['hash']} {j.get('type-name', j['type'])}"
    return f"{name} {j['proto']} vid {j['vid']} pcp {j['pcp']} dei {j['dei']}"


def packet_text(pkt, rss_table, clock=None) -> str:
    import time as _time

    from xdphints_cli.hints.decoding import HINTS

    secs, ns = divmod(pkt.time_ns, 10**9)
    stamp = _time.strftime("%H:%M:%S", _time.localtime(secs)) + f".{ns // 1000:06d}"
    summary = pkt.summary.text() if pkt.summary is not None else ""
    head = f"{stamp} q{pkt.queue} len {pkt.length} {summary}"
    if pkt.metadata is not None:
        return head + " | " + metadata_text(pkt.metadata)
    if pkt.btf_id is None:
        return head + " | no hints metadata"
    hints = " | ".join(_hint_text(h, pkt.hints[h], rss_table, clock, pkt.time_ns) for h in HINTS)
    stack = "" if pkt.stack is None else " | " + pkt.stack.text()
    return f"{head} | {hints}{stack}"


def hints_comment(pkt, rss_table) -> str:
    """The pcapng packet comment: the decoded hints, as in the text output."""
    if pkt.metadata is not None:
        return metadata_text(pkt.metadata)
    stack = "" if pkt.stack is None else " | " + pkt.stack.text()     # dump --pass
    return _hints_comment(pkt.btf_id, pkt.hints, rss_table) + stack


def _hints_comment(btf_id: Optional[int], hints, rss_table) -> str:
    from xdphints_cli.hints.decoding import HINTS

    if btf_id is None:
        return "no hints metadata"
    return f"btf-id {btf_id} | " + " | ".join(_hint_text(h, hints[h], rss_table) for h in HINTS)


def packet_time_ns(pkt, clock=None) -> int:
    """The time a capture file gives a packet: the hardware RX timestamp when there is
    one (converted to CLOCK_REALTIME through `clock`, a phc.ClockMap, when given),
    else the receive time."""
    ts = pkt.hints.get("rx-timestamp") if pkt.hints else None
    if ts is not None and ts.status == "ok":
        hw = ts.get("rx_timestamp") or 0
        if hw:
            return clock.to_realtime_ns(hw) if clock is not None else hw
    return pkt.time_ns


def write_pcapng(path: str, cap, batches, clock=None) -> None:
    """Write the batches to a pcapng file ("-": stdout) from a writer thread (see
    BatchWriter): in bulk (PcapngBlocks) for the built-in program's AF_XDP batches,
    packet by packet for --attached and --pass."""
    from xdphints_cli.cli.pcapng import PcapngWriter

    with PcapngWriter(sys.stdout.buffer if path == "-" else path) as pw:  # "-": as tcpdump -w -
        if_id = pw.add_interface(cap.target.ifname, f"xdphints dump {queues_text(cap)}")
        out = _Sink(pw.write_blocks, pw.flush)
        with BatchWriter(out) as w:
            if cap.bulk_rows:
                blocks = PcapngBlocks(cap.layout, cap.xsk.umem, cap.rss_table, if_id, clock)
                for b in batches:
                    w.write(blocks.batch(b))
            else:
                for b in batches:
                    w.write(_pcapng_packets(cap, b, if_id, clock))


def _pcapng_packets(cap, b, if_id: int, clock=None) -> bytes:
    """The batch's blocks built packet by packet from decoded Packets (--attached, --pass)."""
    from xdphints_cli.cli.pcapng import epb_frame, epb_options

    parts = []
    for pkt in cap.decode(b, cap.frame_size):
        h = pkt.hints.get("rx-hash") if pkt.hints else None
        rx_hash = h.get("rx_hash") if h is not None and h.status == "ok" else None
        opts = epb_options(rx_hash, pkt.queue, hints_comment(pkt, cap.rss_table))
        head, tail = epb_frame(if_id, packet_time_ns(pkt, clock), len(pkt.data), pkt.length, opts)
        parts += (head, pkt.data, tail)
    return b"".join(parts)


class PcapngBlocks:
    """The Enhanced Packet Blocks of every packet of a batch, as one bytes object.

    Each block is exactly what PcapngWriter.write_packet() writes for that packet from
    its decoded Packet (packet_time_ns, the rx-hash option, the queue, hints_comment;
    a test compares them). The options are cached by the packet's hints row and queue
    (the timestamp value spliced into the comment, so a hardware timestamp per packet
    does not defeat the cache), the bytes around the packet data by its length and row
    for the batch (they hold the batch's receive time). A packet with a hardware
    timestamp has a time of its own, so its block is built for it alone."""

    MAX_CACHED = 65536

    def __init__(self, layout, umem, rss_table, if_id: int, clock=None):
        self.layout = layout
        self.umem = umem
        self.rss_table = rss_table
        self.if_id = if_id
        self.clock = clock              # phc.ClockMap: hardware timestamps as system time
        self._options: dict = {}
        self._ts = layout.index.get("rx_timestamp")
        self._ts_ret = layout.index.get("rx_timestamp_ret")

    def batch(self, b) -> bytes:
        umem = self.umem if b.umem is None else b.umem
        frames: dict = {}
        frame = self._frame
        t, q = b.time_ns, b.queue
        parts: list = []
        ap = parts.append
        for addr, length, row in zip(b.addrs, b.lengths, b.rows):
            key = (length, row)
            ht = frames.get(key)
            if ht is None:
                ht, per_batch = frame(length, row, t, q)
                if per_batch:
                    frames[key] = ht
            ap(ht[0])
            ap(umem[addr:addr + length])
            ap(ht[1])
        return b"".join(parts)

    def _frame(self, length: int, row, t: int, queue: int):
        """((head, tail), True when they hold for every packet of this batch with the
        same length and row)."""
        from xdphints_cli.cli.pcapng import epb_frame, epb_options

        ts_i = self._ts
        hw = 0
        if row is not None and self._timestamped(row):
            hw = row[ts_i]
            hkey = (queue, row[:ts_i] + (-1,) + row[ts_i + 1:])
        else:
            hkey = (queue, row)
        opts = self._options.get(hkey)
        if opts is None:
            if len(self._options) >= self.MAX_CACHED:
                self._options.clear()
            opts = self._options[hkey] = self._options_of(row, queue)
        if hw:
            rx_hash, before, after = opts
            opts = epb_options(rx_hash, queue, f"{before}{hw}{after}")
            when = self.clock.to_realtime_ns(hw) if self.clock is not None else hw
            return epb_frame(self.if_id, when, length, length, opts), False
        return epb_frame(self.if_id, t, length, length, opts), True

    def _timestamped(self, row) -> bool:
        """The row's rx-timestamp status is "ok": the packet has a time of its own."""
        ts_i, ret_i = self._ts, self._ts_ret
        return ts_i is not None and ret_i is not None and bool(row[ts_i]) and row[ret_i] == 0

    def _options_of(self, row, queue: int):
        """The block options for a hints row: bytes, or (rx-hash, comment before the
        timestamp value, after it) for a row with a hardware timestamp."""
        from xdphints_cli.hints.decoding import hint_values
        from xdphints_cli.cli.pcapng import epb_options

        if row is None:
            return epb_options(None, queue, _hints_comment(None, {}, self.rss_table))
        meta = self.layout.meta(row)
        marker = None
        if self._timestamped(row):
            marker = 1 << 64          # no u64 timestamp looks like this
            meta["rx_timestamp"] = marker
        hv = hint_values(meta)
        h = hv.get("rx-hash")
        rx_hash = h.get("rx_hash") if h is not None and h.status == "ok" else None
        comment = _hints_comment(self.layout.type_id, hv, self.rss_table)
        if marker is None:
            return epb_options(rx_hash, queue, comment)
        before, after = comment.split(str(marker), 1)
        return rx_hash, before, after


def hexdump(data: bytes) -> str:
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        hx = " ".join(f"{b:02x}" for b in chunk)
        asc = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"  {off:04x}  {hx:<47}  {asc}\n")
    return "".join(lines)


# --- output -----------------------------------------------------------------------------

def output_closed_check(out=None):
    """A callable that is true once the reader of `out` (stdout) went away: a pipe
    whose reader exited polls as POLLERR. The receive loop asks it between batches,
    so `dump | head -1` ends at once, not at the next packet after the reader left."""
    import select

    out = sys.stdout if out is None else out
    try:
        fd = out.fileno()
    except (OSError, ValueError, AttributeError):
        return lambda: False
    poller = select.poll()
    poller.register(fd, 0)              # POLLERR and POLLHUP are always reported

    def closed() -> bool:
        return any(ev & select.POLLERR for _fd, ev in poller.poll(0))

    return closed


class BatchWriter:
    """Writes (and flushes) each batch's output from a thread of its own, so a slow
    file or pipe (page-cache writeback, a slow reader) does not stop the receive loop
    from emptying the RX ring: write(2) runs without the GIL. At most MAX_QUEUED
    batches wait (up to 1.2 MB each: JSON lines of capture.MAX_BATCH packets): past
    that the receive loop waits too, so memory stays bounded and a writer that cannot
    keep up shows as AF_XDP drops. Everything queued is written before the context
    exits; a write error is raised there (or at the next write())."""

    MAX_QUEUED = 4

    def __init__(self, out):
        import queue
        import threading

        self.out = out
        self._q: "queue.Queue" = queue.Queue(self.MAX_QUEUED)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="dump-writer", daemon=True)

    def __enter__(self) -> "BatchWriter":
        self._thread.start()
        return self

    def write(self, chunk) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(chunk)

    def _run(self) -> None:
        out, q = self.out, self._q
        while True:
            chunk = q.get()
            if chunk is None:
                return
            if self._error is not None:
                continue
            try:
                out.write(chunk)
                out.flush()
            except BaseException as e:  # noqa: BLE001 (handed to the main thread)
                self._error = e

    def __exit__(self, *exc) -> None:
        self._q.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error


class _Sink:
    """A write/flush pair as the object BatchWriter writes to."""

    def __init__(self, write, flush):
        self.write, self.flush = write, flush


# --- JSON lines in bulk --------------------------------------------------------------

class JsonLines:
    """The JSON line of every packet of a batch, as one string.

    Each line is exactly `json_line(packet_json(...))` (a test compares them). A line
    is the batch's time and queue, then everything else, which for most packets is
    cached whole: keyed by the packet's length, the header bytes an IPv4 summary is
    made of (read with one struct call) and its hints row. Packets that key does not
    describe (IPv6, VLAN, other frames, a hardware timestamp of their own, --hex data)
    are built from pieces: a summary piece cached by _flow_key and a hints piece
    cached by the hints row (the timestamp value spliced in), both made by
    packet_json itself the first time."""

    MAX_CACHED = 65536

    def __init__(self, layout, umem, rss_table, snaplen: Optional[int] = None, clock=None):
        self.layout = layout
        self.clock = clock              # phc.ClockMap: add realtime and delay-ns
        self.umem = umem
        self.rss_table = rss_table
        self.snaplen = snaplen          # None: no "data"
        self._flows: dict = {}
        self._hints: dict = {}
        self._lines: dict = {}
        self._ts = layout.index.get("rx_timestamp")
        self._ts_ret = layout.index.get("rx_timestamp_ret")

    def batch(self, b) -> str:
        t = b.time_ns
        prefix = f'{{"time": "{t // 10**9}.{t % 10**9:09d}", "queue": {b.queue}, "len": '
        umem = self.umem if b.umem is None else b.umem
        rest = self._rest
        if self.snaplen is not None:     # hex data of every packet: nothing to cache whole
            return "".join([prefix + rest(umem, addr, length, row, t)
                            for addr, length, row in zip(b.addrs, b.lengths, b.rows)])
        lines, key_of = self._lines, _V4_KEY.unpack_from
        out: list = []
        ap = out.append
        for addr, length, row in zip(b.addrs, b.lengths, b.rows):
            key = (length, key_of(umem, addr), row)
            line = lines.get(key)
            if line is None:
                line = rest(umem, addr, length, row, t)
                if length >= _V4_KEY.size and _ipv4_key(key[1]) and not self._timestamped(row):
                    if len(lines) >= self.MAX_CACHED:
                        lines.clear()
                    lines[key] = line
            ap(prefix)
            ap(line)
        return "".join(out)

    def _timestamped(self, row) -> bool:
        ts_i = self._ts
        return row is not None and ts_i is not None and bool(row[ts_i])

    def _rest(self, umem, addr: int, length: int, row, t: int) -> str:
        """The line after its `"len": `, from the summary and hints pieces."""
        from xdphints_cli.hints.packet import summarize

        head = bytes(umem[addr:addr + (length if length < 64 else 64)])
        key = _flow_key(head)
        flows = self._flows
        flow = flows.get(key) if key is not None else None
        if flow is None:
            if key is None or len(head) < length:
                head = bytes(umem[addr:addr + min(length, max(self.snaplen or 0, 256))])
            flow = _piece(_summary_json(summarize(head)))
            if key is not None:
                if len(flows) >= self.MAX_CACHED:
                    flows.clear()
                flows[key] = flow
        if row is None:
            h = '"metadata": null'
        else:
            ts_i = self._ts
            ts = row[ts_i] if ts_i is not None else 0
            hkey = row if not ts else row[:ts_i] + (-1,) + row[ts_i + 1:]
            hints = self._hints
            piece = hints.get(hkey)
            if piece is None:
                if len(hints) >= self.MAX_CACHED:
                    hints.clear()
                piece = hints[hkey] = self._hints_piece(row, ts_i, self._ts_ret)
            if piece[1] is None:
                h = piece[0]
            elif self.clock is None:
                h = f"{piece[0]}{ts}{piece[1]}"
            else:
                h = f"{piece[0]}{ts}{realtime_fields(ts, self.clock, t)}{piece[1]}"
        line = f"{length}, {flow}, {h}"
        if self.snaplen is not None:
            line += f', "data": "{bytes(umem[addr:addr + min(length, self.snaplen)]).hex()}"'
        return line + "}\n"

    def _hints_piece(self, row, ts_i, ts_ret_i):
        """(piece, None), or (before, after) around the timestamp value when the
        rx-timestamp status is "ok" (its value goes in between)."""
        from xdphints_cli.hints.decoding import HINTS, hint_values

        lay = self.layout
        meta = lay.meta(row)
        marker = None
        if ts_i is not None and row[ts_i] and ts_ret_i is not None and row[ts_ret_i] == 0:
            marker = 1 << 64          # no u64 timestamp looks like this
            meta["rx_timestamp"] = marker
        hv = hint_values(meta)
        obj = {"btf-id": lay.type_id}
        for hname in HINTS:
            obj[hname] = _hint_json(hname, hv[hname], self.rss_table)
        text = _piece(obj)
        if marker is None:
            return text, None
        before, after = text.split(str(marker), 1)
        return before, after


# The bytes an IPv4 (IHL 5) summary is made of, read straight from the UMEM:
# Ethernet header and version/IHL, flags and fragment offset, protocol, addresses and
# ports (the same as _flow_key's IPv4 key, which leaves out TTL, IP id, lengths, checksum).
_V4_KEY = struct.Struct("15s5x2sx1s2x12s")


def _ipv4_key(k) -> bool:
    """A _V4_KEY tuple is the key of an IPv4 frame with a 20-byte header."""
    eth = k[0]
    return eth[12] == 8 and eth[13] == 0 and eth[14] == 0x45


def _flow_key(h: bytes) -> Optional[bytes]:
    """The bytes the summary of `h` is made of, for IPv4 (IHL 5) and IPv6 frames with
    no VLAN tag and no IPv6 extension header; None for other frames. Leaves out what
    the summary never reads (TTL, IP id, lengths, checksums, flow label)."""
    n = len(h)
    if n >= 38 and h[12] == 8 and h[13] == 0 and h[14] == 0x45:
        return b"4" + h[:14] + h[20:22] + h[23:24] + h[26:38]
    if n >= 58 and h[12] == 0x86 and h[13] == 0xDD and h[20] not in (0, 43, 60):
        return b"6" + h[:14] + h[20:21] + h[22:58]
    return None


def _summary_json(summary) -> dict:
    out = {"summary": summary.text()}
    out.update(summary.to_json())
    return out


def _piece(obj: dict) -> str:
    """The members of a JSON object as json_line writes them, without the braces."""
    return json_line(obj)[1:-1]


# --- summary ----------------------------------------------------------------------

def queues_text(cap) -> str:
    if len(cap.queues) == 1:
        return f"queue {cap.queue}"
    return "queues " + ",".join(map(str, cap.queues))


def summary_json(cap) -> dict:
    from xdphints_cli.names import json_name

    out: dict = {**json_name("ifname", cap.target.ifname), "queue": cap.queue}
    if len(cap.queues) > 1:
        out["queues"] = list(cap.queues)
    out.update(cap.stats.to_json())
    if cap.transport is not None:
        out["transport"] = cap.transport_json()
    if hasattr(cap, "metadata_summary"):
        out["metadata"] = cap.metadata_summary()
    if hasattr(cap, "counters_json"):
        out["pass"] = cap.counters_json()
    if getattr(cap, "config", None) is not None:
        out["config-changes"] = list(cap.config.changes)
    return out


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def summary_text(cap) -> str:
    s = cap.stats
    active = f"; {s.active_rate:.1f} pps while receiving" if s.active_rate is not None else ""
    lines = [f"{plural(s.packets, 'packet')}, {plural(s.bytes, 'byte')} in {s.seconds:.2f} s "
             f"({s.rate:.1f} pps{active}) on {cap.target.ifname} {queues_text(cap)}"]
    x = s.xsk
    if x:
        lines.append(f"AF_XDP drops: rx_dropped {x.get('rx_dropped', 0)}, rx_ring_full "
                     f"{x.get('rx_ring_full', 0)}, fill ring empty "
                     f"{x.get('rx_fill_ring_empty_descs', 0)}, invalid descs "
                     f"{x.get('rx_invalid_descs', 0)}")
    if hasattr(cap, "counters_json"):
        c = cap.counters_json()
        lines.append(f"--pass: {c['marked']} packets marked by XDP, {c['records']} records, "
                     f"{c['ring-dropped']} records dropped (ring buffer full)")
        if "identical" in c:
            left = (f", {c['left']} records never claimed (frames dropped or merged before tc)"
                    if "left" in c else "")
            lines.append(f"fingerprints: {c['identical']} frames met an identical one in flight, "
                         f"{c['ambiguous']} not compared for it, {c['merged']} merged by GRO, "
                         f"{c['stale']} stale, {c['lost']} not stored{left}")
    if cap.transport is not None:
        lines.append(transport_text(cap))
        if cap.unplaced:
            lines.append(f"{plural(cap.unplaced, 'packet')} went to the stack without hints (the "
                         "transport could not place them)")
    parts = []
    if hasattr(cap, "metadata_summary"):
        parts = [f"{k}: {n}" for k, n in cap.metadata_summary().items()]
        parts = ["metadata " + (", ".join(parts) or "-")]
    for h, c in s.hints.items():
        parts.append(f"{h}: " + (", ".join(f"{k} {n}" for k, n in sorted(c.items())) or "-"))
    lines.append("; ".join(parts))
    if s.no_metadata:
        lines.append(f"{plural(s.no_metadata, 'packet')} without hints metadata")
    changes = getattr(cap, "config", None) and cap.config.changes
    if changes:
        lines.append(f"the hints config of {cap.target.ifname} changed {plural(len(changes), 'time')} "
                     f"during the capture, first after {plural(changes[0]['packets'], 'packet')} "
                     "(the warnings above say how)")
    return "".join(f"xdphints: {line}\n" for line in lines)
