"""`xdphints dump`: receive packets on one queue through AF_XDP with the built-in
hints program and print each packet with its RX metadata (decoded through BTF)."""

from __future__ import annotations

import sys
from typing import Optional

import click

from xdphints_cli.cli.app import App, dev_option, json_option, usage_error

DEFAULT_SNAPLEN = 128


@click.command("dump")
@dev_option
@click.option("-q", "--queue", "queue_", required=True, metavar="N|N,M,...|all",
              help="RX queue(s) to capture (0-based), or all: one AF_XDP socket per queue.")
@click.option("-c", "--count", type=int, metavar="N", help="Stop after N packets.")
@click.option("--duration", type=float, metavar="S", help="Stop after S seconds.")
@click.option("--hex", "hex_", is_flag=True, help="Hex dump of each packet (up to --snaplen bytes).")
@click.option("--snaplen", type=int, metavar="N",
              help=f"Bytes of each packet kept for --hex and JSON \"data\" (default {DEFAULT_SNAPLEN}).")
@click.option("--quiet", is_flag=True, help="No per-packet output: only the summary at the end.")
@click.option("--match", "match_", default="ip", show_default=True, metavar="WHAT",
              help="Packets to capture: ip, all, udp, tcp, udp:PORT, tcp:PORT, ptp, vlan; "
                   "the rest goes to the kernel stack.")
@click.option("--sample", type=int, default=1, metavar="N",
              help="Capture one in N matching packets, chosen at random.")
@click.option("-w", "--write", "write_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the packets to a pcapng file instead of printing them.")
@click.option("--enable-timestamps", is_flag=True,
              help="Turn on hardware RX timestamping (rx-filter all) while dumping; the "
                   "previous setting is put back on exit.")
@click.option("--attached", is_flag=True,
              help="Use the XDP program already attached to the device (your hints hook) "
                   "instead of the built-in one: dump's socket goes into its XSKMAP, the "
                   "metadata is decoded through its BTF; the program is never detached.")
@click.option("--pinned", "pinned", metavar="PATH",
              help="With --attached: the program (e.g. under a libxdp dispatcher) or the "
                   "XSKMAP pinned at PATH (bpffs) instead of the device's program.")
@json_option
@click.pass_obj
def dump(app: App, dev: Optional[str], queue_: str, count: Optional[int], duration: Optional[float],
         hex_: bool, snaplen: Optional[int], quiet: bool, match_: str, sample: int,
         write_path: Optional[str], enable_timestamps: bool, attached: bool = False,
         pinned: Optional[str] = None) -> None:
    """Dump packets received on one RX queue with their XDP hints.

    Loads a device-bound XDP program that calls the RX metadata kfuncs the device
    advertises, writes their results in front of each packet (a BTF-described
    struct ending in its own btf_id) and redirects the queue's packets to an AF_XDP
    socket. The program is attached with a BPF link: it comes off when dump ends,
    however it ends. A device that already has an XDP program is left alone (exit 1).
    Only packets selected by --match are captured (default ip: IPv4 and IPv6 except
    neighbour discovery); the test runs in the XDP program, and everything else (ARP,
    neighbour discovery, other protocols) goes on to the kernel stack as usual.
    --match all captures everything, ARP and neighbour discovery included: the device
    stops answering its neighbours while dump runs. --sample N captures one in N
    matching packets (bpf_get_prandom_u32() % N == 0 in the program); the others
    go to the kernel stack.

    Per packet: receive time, queue, length, a summary (MACs, VLAN in frame,
    addresses, protocol, ports), rx-timestamp (ns), rx-hash and its type, rx-vlan;
    a failed kfunc shows its errno (ENODATA, EOPNOTSUPP). Ctrl-C or SIGTERM stops
    with exit 0; a summary (packets, rate, AF_XDP drops, per-hint counts) goes to stderr.

    -w FILE writes a pcapng file (Wireshark, tshark) instead of per-packet output:
    packet time is the hardware RX timestamp when there is one (as system time when
    the device has a PHC), else the receive time; the RX hash goes in the EPB hash
    option, the queue in the EPB queue option, the decoded hints in the packet comment.

    --attached uses the XDP program already on the device (a hints hook of your own)
    instead: it must have a BPF_MAP_TYPE_XSKMAP (dump puts its socket at the queue's
    index, and takes it out again on exit) and BTF. The metadata is decoded through
    that BTF by its trailing btf_id: each packet shows the struct named by the btf_id
    in front of it and its fields; a btf_id the BTF does not have is shown as raw
    bytes with the id. --pinned PATH names a pinned program or XSKMAP to use instead
    of the device's program (a program under a dispatcher, a map with several).
    --match, --sample and --enable-timestamps do not apply (usage error).
    """
    from xdphints_cli.hints import capture

    try:
        queue = capture.parse_queues(queue_)
    except ValueError as e:
        raise usage_error(f"--queue: {e}") from None
    if count is not None and count < 1:
        raise usage_error("--count must be 1 or more")
    if duration is not None and duration <= 0:
        raise usage_error("--duration must be more than 0")
    if snaplen is not None and snaplen < 1:
        raise usage_error("--snaplen must be 1 or more")
    if sample < 1:
        raise usage_error("--sample must be 1 or more")
    from xdphints_cli.hints.program import Match

    if pinned and not attached:
        raise usage_error("--pinned needs --attached")
    if attached:
        from click.core import ParameterSource

        ctx = click.get_current_context()
        bad = [o for o, p in (("--match", "match_"), ("--sample", "sample"),
                              ("--enable-timestamps", "enable_timestamps"))
               if ctx.get_parameter_source(p) not in (None, ParameterSource.DEFAULT,
                                                      ParameterSource.DEFAULT_MAP)]
        if bad:
            raise usage_error(f"{', '.join(bad)} cannot be used with --attached: they "
                              "configure the built-in program (your program decides what "
                              "it redirects)")
        return _dump_attached(app, dev, queue, count, duration, hex_, snaplen, quiet,
                              write_path, pinned)
    try:
        match = Match.parse(match_)
    except ValueError as e:
        raise usage_error(f"--match: {e}") from None
    if match.kind == "all":
        app.warn("--match all captures ARP and IPv6 neighbour discovery too: the device does "
                 "not answer its neighbours while dump runs")

    import contextlib

    from xdphints_cli.hints import clock as hclock

    target = capture.resolve_target(dev, queue, app.warn)
    out = sys.stdout
    with contextlib.ExitStack() as es:
        stop = es.enter_context(capture.stop_on_signals())
        if enable_timestamps:
            es.enter_context(hclock.rx_timestamping(target.ifname, app.warn))
        clock = hclock.open_clock(target.ifname, app.warn)
        cap = es.enter_context(capture.Capture(target, queue, match=match, sample=sample))
        _announce(app, cap)
        keep = snaplen or DEFAULT_SNAPLEN
        batches = cap.batches(count, duration, stop)
        if clock is not None:
            batches = hclock.refreshing(batches, clock)
        if write_path:
            write_pcapng(write_path, cap, batches, clock)
        elif quiet:
            for _ in batches:
                pass
        elif app.json:
            lines = JsonLines(cap.layout, cap.xsk.umem, cap.rss_table, keep if hex_ else None,
                              clock)
            with BatchWriter(out) as w:
                for b in batches:
                    w.write(lines.batch(b))
        else:
            _write_packets(out, cap, batches, keep, hex_, lambda pkt: packet_text(pkt, cap.rss_table, clock))
    _finish(app, cap, quiet)


def _dump_attached(app: App, dev, queue, count, duration, hex_, snaplen, quiet, write_path,
                   pinned) -> None:
    import contextlib

    from xdphints_cli.hints import attached as hatt
    from xdphints_cli.hints import capture

    target, prog, pinned_map = hatt.resolve(dev, queue, pinned)
    out = sys.stdout
    keep = snaplen or DEFAULT_SNAPLEN
    with contextlib.ExitStack() as es:
        stop = es.enter_context(capture.stop_on_signals())
        cap = es.enter_context(hatt.AttachedCapture(target, queue, prog, pinned_map))
        sys.stderr.write(f"xdphints: dumping {target.ifname} {_queues_text(cap)} through the "
                         f"attached XDP program id {prog.id}"
                         f"{' (' + prog.name + ')' if prog.name else ''}, XSKMAP id "
                         f"{cap.map_id}, btf-id {prog.btf_id}; Ctrl-C to stop\n")
        sys.stderr.flush()
        batches = cap.batches(count, duration, stop)
        if write_path:
            write_pcapng(write_path, cap, batches)
        elif quiet:
            for _ in batches:
                pass
        elif app.json:  # hex bytes go in the JSON "data" key, not in a hexdump
            _write_packets(out, cap, batches, keep, False, lambda pkt: _json_line(packet_json(pkt, None, hex_)))
        else:
            _write_packets(out, cap, batches, keep, hex_, lambda pkt: packet_text(pkt, None))
    _finish(app, cap, quiet)


def _write_packets(out, cap, batches, keep: int, hex_: bool, line) -> None:
    """Per-packet output, one write per batch; `line(pkt)` formats one packet."""
    with BatchWriter(out) as w:
        for b in batches:
            chunks = []
            for pkt in cap.decode(b, keep):
                chunks.append(line(pkt) + "\n")
                if hex_ and pkt.data is not None:
                    chunks.append(hexdump(pkt.data))
            w.write("".join(chunks))


def _finish(app: App, cap, quiet: bool) -> None:
    if quiet and app.json:
        app.emit_json(summary_json(cap))
    sys.stderr.write(summary_text(cap))
    sys.stderr.flush()


def metadata_text(meta) -> str:
    """One packet's --attached metadata as text: struct, btf-id and fields, or the
    unknown btf-id and the raw bytes in front of the packet."""
    if meta is None:
        return "no metadata"
    if "struct" not in meta:
        return f"btf-id {meta['btf-id']} (not in the program's BTF) raw {meta['raw']}"
    fields = " ".join(f"{k} {v}" for k, v in meta["fields"].items() if k != "btf_id")
    return f"struct {meta['struct']} btf-id {meta['btf-id']}: {fields}"


def _json_line(obj) -> str:
    import json

    return json.dumps(obj, separators=(", ", ": "))


def _announce(app: App, cap) -> None:
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
    sys.stderr.write(f"xdphints: dumping {t.ifname} {_queues_text(cap)} (XDP program id "
                     f"{cap.prog_id}, btf-id {cap.btf_id}; match {cap.match}{sample}); "
                     "Ctrl-C to stop\n")
    sys.stderr.flush()


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
    return head + " | " + " | ".join(_hint_text(h, pkt.hints[h], rss_table, clock, pkt.time_ns)
                                     for h in HINTS)


def hints_comment(pkt, rss_table) -> str:
    """The pcapng packet comment: the decoded hints, as in the text output."""
    from xdphints_cli.hints.decoding import HINTS

    if pkt.metadata is not None:
        return metadata_text(pkt.metadata)
    if pkt.btf_id is None:
        return "no hints metadata"
    return f"btf-id {pkt.btf_id} | " + " | ".join(_hint_text(h, pkt.hints[h], rss_table)
                                                  for h in HINTS)


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
    with PcapngWriter(path) as w:
        if_id = w.add_interface(cap.target.ifname, f"xdphints dump {_queues_text(cap)}")
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

    Each line is exactly `_json_line(packet_json(...))` (a test compares them), built
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
    """The members of a JSON object as _json_line writes them, without the braces."""
    return _json_line(obj)[1:-1]


# --- summary ----------------------------------------------------------------------

def _queues_text(cap) -> str:
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
    return out


def summary_text(cap) -> str:
    s = cap.stats
    lines = [f"{s.packets} packets, {s.bytes} bytes in {s.seconds:.2f} s ({s.rate:.1f} pps; "
             f"{s.active_rate:.1f} pps while receiving) on {cap.target.ifname} {_queues_text(cap)}"]
    x = s.xsk
    if x:
        lines.append(f"AF_XDP drops: rx_dropped {x.get('rx_dropped', 0)}, rx_ring_full "
                     f"{x.get('rx_ring_full', 0)}, fill ring empty "
                     f"{x.get('rx_fill_ring_empty_descs', 0)}, invalid descs "
                     f"{x.get('rx_invalid_descs', 0)}")
    parts = []
    if hasattr(cap, "metadata_summary"):
        parts = [f"{k}: {n}" for k, n in cap.metadata_summary().items()]
        parts = ["metadata " + (", ".join(parts) or "-")]
    for h, c in s.hints.items():
        parts.append(f"{h}: " + (", ".join(f"{k} {n}" for k, n in sorted(c.items())) or "-"))
    lines.append("; ".join(parts))
    if s.no_metadata:
        lines.append(f"{s.no_metadata} packets without hints metadata")
    return "".join(f"xdphints: {line}\n" for line in lines)
