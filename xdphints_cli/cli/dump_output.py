"""What `xdphints dump` prints: per-packet text and JSON lines, the summary, hex dumps,
pcapng records, and the batched writer that keeps output off the receive loop.

Only the standard library is imported here at module level, so `dump --help` stays light.
"""

from __future__ import annotations

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
        f"BTF object id {cap.btf_id}{via}; match {cap.match}{sample}); Ctrl-C to stop\n")


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
    from xdphints_cli.hints.decoding import HINTS

    if pkt.metadata is not None:
        return metadata_text(pkt.metadata)
    if pkt.btf_id is None:
        return "no hints metadata"
    stack = "" if pkt.stack is None else " | " + pkt.stack.text()
    return f"btf-id {pkt.btf_id} | " + " | ".join(_hint_text(h, pkt.hints[h], rss_table)
                                                  for h in HINTS) + stack


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
    from xdphints_cli.pcapng import PcapngWriter

    frame = cap.frame_size
    rss = cap.rss_table
    with PcapngWriter(sys.stdout.buffer if path == "-" else path) as w:  # "-": stdout, as tcpdump -w -
        if_id = w.add_interface(cap.target.ifname, f"xdphints dump {queues_text(cap)}")
        for b in batches:
            for pkt in cap.decode(b, frame):
                h = pkt.hints.get("rx-hash") if pkt.hints else None
                rx_hash = h.get("rx_hash") if h is not None and h.status == "ok" else None
                w.write_packet(if_id, packet_time_ns(pkt, clock), pkt.data, orig_len=pkt.length,
                               hash=rx_hash, queue=pkt.queue, comment=hints_comment(pkt, rss))
            w.flush()


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
    """Writes (and flushes) each batch's text from a thread of its own, so a slow
    file or pipe (page-cache writeback, a slow reader) does not stop the receive loop
    from emptying the RX ring: write(2) runs without the GIL. Everything queued is
    written before the context exits; a write error is raised there."""

    def __init__(self, out):
        import queue
        import threading

        self.out = out
        self._q: "queue.Queue" = queue.Queue()
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="dump-writer", daemon=True)

    def __enter__(self) -> "BatchWriter":
        self._thread.start()
        return self

    def write(self, text: str) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(text)

    def _run(self) -> None:
        out, q = self.out, self._q
        while True:
            text = q.get()
            if text is None:
                return
            if self._error is not None:
                continue
            try:
                out.write(text)
                out.flush()
            except BaseException as e:  # noqa: BLE001 (handed to the main thread)
                self._error = e

    def __exit__(self, *exc) -> None:
        self._q.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error


# --- JSON lines in bulk --------------------------------------------------------------

class JsonLines:
    """The JSON line of every packet of a batch, as one string.

    Each line is exactly `json_line(packet_json(...))` (a test compares them), built
    from pieces: the batch's time, each packet's queue and length, a summary piece and
    a hints piece. Both pieces come from packet_json itself the first time and are then
    cached, the summary by the header bytes it is made of (IPv4 and IPv6 without
    extension headers; other frames are summarized each time), the hints by the
    packet's hints row (the timestamp value is spliced in, so a hardware timestamp per
    packet does not defeat the cache)."""

    MAX_CACHED = 65536

    def __init__(self, layout, umem, rss_table, snaplen: Optional[int] = None, clock=None):
        self.layout = layout
        self.clock = clock              # phc.ClockMap: add realtime and delay-ns
        self.umem = umem
        self.rss_table = rss_table
        self.snaplen = snaplen          # None: no "data"
        self._flows: dict = {}
        self._hints: dict = {}
        self._ts = layout.index.get("rx_timestamp")
        self._ts_ret = layout.index.get("rx_timestamp_ret")

    def batch(self, b) -> str:
        from xdphints_cli.hints.packet import summarize

        t = b.time_ns
        prefix = f'{{"time": "{t // 10**9}.{t % 10**9:09d}", "queue": {b.queue}, "len": '
        umem = self.umem if b.umem is None else b.umem
        flows, hints, snaplen = self._flows, self._hints, self.snaplen
        hints_piece, ts_i, ts_ret_i = self._hints_piece, self._ts, self._ts_ret
        clock = self.clock
        out = []
        for addr, length, row in zip(b.addrs, b.lengths, b.rows):
            head = bytes(umem[addr:addr + (length if length < 64 else 64)])
            key = _flow_key(head)
            flow = flows.get(key) if key is not None else None
            if flow is None:
                if key is None or len(head) < length:
                    head = bytes(umem[addr:addr + min(length, max(snaplen or 0, 256))])
                flow = _piece(_summary_json(summarize(head)))
                if key is not None:
                    if len(flows) >= self.MAX_CACHED:
                        flows.clear()
                    flows[key] = flow
            if row is None:
                h = '"metadata": null'
            else:
                ts = row[ts_i] if ts_i is not None else 0
                hkey = row if not ts else row[:ts_i] + (-1,) + row[ts_i + 1:]
                piece = hints.get(hkey)
                if piece is None:
                    if len(hints) >= self.MAX_CACHED:
                        hints.clear()
                    piece = hints[hkey] = hints_piece(row, ts_i, ts_ret_i)
                if piece[1] is None:
                    h = piece[0]
                elif clock is None:
                    h = f"{piece[0]}{ts}{piece[1]}"
                else:
                    h = f"{piece[0]}{ts}{realtime_fields(ts, clock, t)}{piece[1]}"
            line = f"{prefix}{length}, {flow}, {h}"
            if snaplen is not None:
                line += f', "data": "{bytes(umem[addr:addr + min(length, snaplen)]).hex()}"'
            out.append(line + "}\n")
        return "".join(out)

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
    out: dict = {"ifname": cap.target.ifname, "queue": cap.queue}
    if len(cap.queues) > 1:
        out["queues"] = list(cap.queues)
    out.update(cap.stats.to_json())
    if hasattr(cap, "metadata_summary"):
        out["metadata"] = cap.metadata_summary()
    if hasattr(cap, "counters_json"):
        out["pass"] = cap.counters_json()
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
    parts = []
    if hasattr(cap, "metadata_summary"):
        parts = [f"{k}: {n}" for k, n in cap.metadata_summary().items()]
        parts = ["metadata " + (", ".join(parts) or "-")]
    for h, c in s.hints.items():
        parts.append(f"{h}: " + (", ".join(f"{k} {n}" for k, n in sorted(c.items())) or "-"))
    lines.append("; ".join(parts))
    if s.no_metadata:
        lines.append(f"{plural(s.no_metadata, 'packet')} without hints metadata")
    return "".join(f"xdphints: {line}\n" for line in lines)
