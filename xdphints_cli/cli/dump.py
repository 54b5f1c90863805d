"""`xdphints dump`: receive packets on one queue through AF_XDP with the built-in
hints program and print each packet with its RX metadata (decoded through BTF)."""

from __future__ import annotations

import sys
from typing import Optional

import click

from xdphints_cli.cli.app import App
from xdphints_cli.cli.options import FLOAT, INT, dev_option, nonempty, usage_error
from xdphints_cli.cli.dump_output import (BatchWriter, JsonLines, announce, announce_attached, hexdump, json_line,
                                          output_closed_check, packet_json, packet_text, say, summary_json,
                                          summary_text, write_pcapng)
from xdphints_cli.cli.options import global_options
from xdphints_cli.cli.streams import unblock_stdout_soon

DEFAULT_SNAPLEN = 128
# transport.NAMES and the --pass one, spelled out: --help must not import the hints code
TRANSPORTS = ("auto", "metadata", "headroom", "tail", "fingerprint")


@click.command("dump", epilog="Exit codes: 0 done or stopped, 1 failed or the device has another XDP "
                               "program, 2 usage error, 3 no native XDP or no transport that can carry the "
                               "hints, 4 permission denied, 5 no such device or queue (or it went away), "
                               "141 the reader of stdout left.")
@dev_option
@click.option("-q", "--queue", "queue_", required=True, metavar="N|N,M,...|all",
              help="RX queue(s) to capture (0-based), or all: one AF_XDP socket per queue.")
@click.option("-c", "--count", type=INT, metavar="N", help="Stop after N packets.")
@click.option("--duration", type=FLOAT, metavar="S", help="Stop after S seconds.")
@click.option("--hex", "hex_", is_flag=True, help="Hex dump of each packet (up to --snaplen bytes).")
@click.option("--snaplen", type=INT, metavar="N",
              help=f"Bytes of each packet kept for --hex and JSON \"data\" (default {DEFAULT_SNAPLEN}).")
@click.option("--quiet", is_flag=True, help="No per-packet output: only the summary at the end.")
@click.option("--match", "match_", default="ip", show_default=True, metavar="WHAT",
              help="Packets to capture: ip, all, udp, tcp, udp:PORT, tcp:PORT, ptp, vlan; "
                   "the rest goes to the kernel stack.")
@click.option("--sample", type=INT, default=1, metavar="N",
              help="Capture one in N matching packets, chosen at random.")
@click.option("-w", "--write", "write_path", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True),
              callback=nonempty,
              help="Write the packets to a pcapng file instead of printing them (- for stdout).")
@click.option("--enable-timestamps", is_flag=True,
              help="Turn on hardware RX timestamping (rx-filter all) while dumping; the "
                   "previous setting is put back on exit.")
@click.option("--attached", is_flag=True,
              help="Use the XDP program already attached to the device (your hints hook) "
                   "instead of the built-in one: dump's socket goes into its XSKMAP, the "
                   "metadata is decoded through its BTF; the program is never detached.")
@click.option("--pinned", "pinned", metavar="PATH", callback=nonempty,
              help="With --attached: the program (e.g. under a libxdp dispatcher) or the "
                   "XSKMAP pinned at PATH (bpffs) instead of the device's program.")
@click.option("--struct", "struct_name", metavar="NAME", callback=nonempty,
              help="With --attached: decode each packet's metadata as struct NAME (for "
                   "programs whose metadata has no trailing btf_id), ending where the packet "
                   "begins.")
@click.option("--btf", "btf_file", metavar="FILE", type=click.Path(dir_okay=False), callback=nonempty,
              help="With --struct: look NAME up in FILE first (an ELF object such as the "
                   "program's .o, its BTF or else its DWARF; or raw BTF).")
@click.option("--transport", "transport", type=click.Choice(TRANSPORTS), default="auto",
              show_default=True,
              help="How the hints travel with each packet: metadata (the XDP metadata area "
                   "in front of the packet), headroom (in front of it, stripped), tail "
                   "(after it, stripped); auto takes the metadata area and moves on when "
                   "the kernel or driver refuses it. With --pass: auto, metadata or "
                   "fingerprint (the packet is never changed).")
@click.option("--pass", "pass_", is_flag=True,
              help="Observe without taking packets away: the built-in program passes "
                   "them to the kernel stack, where a tcx program reads the hints and "
                   "the stack's own view (skb hash, VLAN tag, hwtstamp, queue mapping).")
@global_options
@click.pass_obj
def dump(app: App, dev: Optional[str], queue_: str, count: Optional[int], duration: Optional[float],
         hex_: bool, snaplen: Optional[int], quiet: bool, match_: str, sample: int,
         write_path: Optional[str], enable_timestamps: bool, attached: bool = False,
         pinned: Optional[str] = None, struct_name: Optional[str] = None,
         btf_file: Optional[str] = None, pass_: bool = False, transport: str = "auto") -> None:
    """Dump packets received on one RX queue with their XDP hints.

    \b
    Examples:
      xdphints dump -d eth0 -q 0                     # packets with hints
      xdphints dump -d eth0 -q all --match ptp -c 10 # PTP, all queues
      xdphints dump -d eth0 -q 0 -w - | tshark -r -  # pcapng to tshark
      xdphints dump -d eth0 -q 0 --pass -j           # observe only
      xdphints dump -d eth0 -q 0 --attached          # your own program

    A built-in device-bound XDP program calls the RX metadata kfuncs and hands
    each packet --match selects to an AF_XDP socket with its hints (--transport:
    where they travel); the rest goes on to the kernel stack. A device that
    already has an XDP program is left alone. Ctrl-C or SIGTERM stops (exit 0),
    with a summary on stderr. The details (transports, --pass, --attached,
    --struct, JSON keys): man 8 xdphints.
    """
    from xdphints_cli.hints import capture
    from xdphints_cli.process import caps

    _check_numbers(count, duration, snaplen, sample)
    try:
        queue = capture.parse_queues(queue_)
    except ValueError as e:
        raise usage_error(f"--queue: {e}") from None
    from xdphints_cli.hints.program import Match

    if write_path == "-" and app.json:
        raise usage_error("-w - writes pcapng to stdout, where JSON cannot go too")
    for opt, given in (("--pinned", pinned), ("--struct", struct_name)):
        if given and not attached:
            raise usage_error(f"{opt} needs --attached")
    if btf_file and not struct_name:
        raise usage_error("--btf needs --struct")
    if pass_ and attached:
        raise usage_error("--pass cannot be used with --attached")
    if attached:
        from click.core import ParameterSource

        ctx = click.get_current_context()
        bad = [o for o, p in (("--match", "match_"), ("--sample", "sample"),
                              ("--transport", "transport"))
               if ctx.get_parameter_source(p) not in (None, ParameterSource.DEFAULT,
                                                      ParameterSource.DEFAULT_MAP)]
        if bad:
            raise usage_error(f"{', '.join(bad)} cannot be used with --attached: they "
                              "configure the built-in program (your program decides what "
                              "it redirects and where its metadata goes)")
        if enable_timestamps:
            raise usage_error("--enable-timestamps cannot be used with --attached: the "
                              "timestamping config is left to the program's owner (turn it on "
                              "with 'xdphints enable rx-timestamp')")
        caps.require("dump --attached", ATTACHED_CAPS, "it opens the program, its XSKMAP "
                     "and its BTF by id, and binds AF_XDP sockets")
        return _dump_attached(app, dev, queue, count, duration, hex_, snaplen, quiet,
                              write_path, pinned, struct_name, btf_file)
    try:
        match = Match.parse(match_)
    except ValueError as e:
        raise usage_error(f"--match: {e}") from None
    if pass_ and transport in ("headroom", "tail"):
        raise usage_error(f"--transport {transport} changes the frame, and --pass hands every "
                          "packet to the stack as it came: use auto, metadata or fingerprint")
    if not pass_ and transport == "fingerprint":
        raise usage_error("--transport fingerprint is for --pass (the stack's side looks the "
                          "hints up by the frame's bytes): use auto, metadata, headroom or tail")
    if match.kind == "all" and not pass_:
        app.warn("--match all captures ARP and IPv6 neighbour discovery too: the device does "
                 "not answer its neighbours while dump runs")

    if pass_:
        caps.require("dump --pass", PASS_CAPS, PASS_WHY)
    else:
        caps.require("dump", DUMP_CAPS, "it loads and attaches an XDP program and binds "
                     "AF_XDP sockets")
    import contextlib

    from xdphints_cli.hints import clock as hclock

    target = capture.resolve_target(dev, queue, app.warn, app.acting_on)
    keep = snaplen or DEFAULT_SNAPLEN
    with contextlib.ExitStack() as es:
        signalled = es.enter_context(capture.stop_on_signals(on_first=unblock_stdout_soon))
        stop = _stop_when(signalled, quiet or write_path)
        if enable_timestamps:
            es.enter_context(hclock.rx_timestamping(target.ifindex, target.ifname, app.warn))
        clock = hclock.open_clock(target.ifindex, target.ifname, app.warn)
        if pass_:
            from xdphints_cli.hints.pass_capture import PassCapture

            cap = es.enter_context(PassCapture(target, queue, keep, match=match, sample=sample,
                                               warn=app.warn, transport=transport))
        else:
            cap = es.enter_context(capture.Capture(target, queue, match=match, sample=sample,
                                                   warn=app.warn, transport=transport))
        announce(app, cap)
        _output(app, es, cap, count, duration, stop, write_path, quiet, hex_, keep, clock)
    _finish(app, cap, quiet)


def _output(app: App, es, cap, count, duration, stop, write_path, quiet: bool, hex_: bool,
            keep: int, clock=None) -> None:
    """Receive and write, for every kind of capture: pcapng, nothing (--quiet), JSON
    lines (in bulk where the batches carry hints rows) or text."""
    import contextlib

    from xdphints_cli.hints import clock as hclock

    out = sys.stdout
    freeze_heap()
    # closed before the capture is (ExitStack order), also when output fails
    batches = es.enter_context(contextlib.closing(cap.batches(count, duration, stop)))
    if clock is not None:
        batches = hclock.refreshing(batches, clock)
    if write_path:
        write_pcapng(write_path, cap, batches, clock)
    elif quiet:
        for _ in batches:
            pass
    elif app.json and cap.bulk_rows:
        lines = JsonLines(cap.layout, cap.xsk.umem, cap.rss_table, keep if hex_ else None, clock)
        with BatchWriter(out) as w:
            for b in batches:
                w.write(lines.batch(b))
    elif app.json:  # hex bytes go in the JSON "data" key, not in a hexdump
        _write_packets(out, cap, batches, keep, False,
                       lambda pkt: json_line(packet_json(pkt, cap.rss_table, hex_, clock)))
    else:
        _write_packets(out, cap, batches, keep, hex_, lambda pkt: packet_text(pkt, cap.rss_table, clock))


# what the kernel checks: CAP_BPF for maps and programs, CAP_NET_ADMIN for an XDP
# program and an XSKMAP, CAP_NET_RAW for AF_XDP sockets; opening objects by id
# (--attached) needs CAP_SYS_ADMIN. Without CAP_IPC_LOCK the UMEM is sized to fit
# RLIMIT_MEMLOCK (xsk.umem.memlock_frames).
DUMP_CAPS = ["CAP_BPF", "CAP_NET_ADMIN", "CAP_NET_RAW"]
ATTACHED_CAPS = DUMP_CAPS + ["CAP_SYS_ADMIN"]
# --pass and verify: no AF_XDP socket, an XDP and a tcx program and their maps
PASS_CAPS = ["CAP_BPF", "CAP_NET_ADMIN"]
PASS_WHY = "it loads and attaches an XDP and a tcx program"
MAX_SNAPLEN = 262144          # tcpdump's upper bound
MAX_SAMPLE = 2**32 - 1         # the program compares a u32 random number


def _check_numbers(count, duration, snaplen, sample) -> None:
    """Every numeric option, before anything is loaded or attached (exit 2)."""
    import math

    if count is not None and count < 1:
        raise usage_error("--count must be 1 or more")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise usage_error(f"--duration must be a finite number of seconds more than 0, not {duration}")
    if snaplen is not None and not 1 <= snaplen <= MAX_SNAPLEN:
        raise usage_error(f"--snaplen must be 1 to {MAX_SNAPLEN}")
    if not 1 <= sample <= MAX_SAMPLE:
        raise usage_error(f"--sample must be 1 to {MAX_SAMPLE}")


def _dump_attached(app: App, dev, queue, count, duration, hex_, snaplen, quiet, write_path,
                   pinned, struct_name, btf_file) -> None:
    import contextlib

    from xdphints_cli.hints import attached as hatt
    from xdphints_cli.hints import capture

    target, prog, pinned_map = hatt.resolve(dev, queue, pinned, app.acting_on)
    keep = snaplen or DEFAULT_SNAPLEN
    with contextlib.ExitStack() as es:
        signalled = es.enter_context(capture.stop_on_signals(on_first=unblock_stdout_soon))
        stop = _stop_when(signalled, quiet or write_path)
        cap = es.enter_context(hatt.AttachedCapture(target, queue, prog, pinned_map,
                                                    struct_name, btf_file, warn=app.warn))
        announce_attached(app, cap)
        refused = metadata_area_refused(cap.prog.id)
        if refused:
            app.warn(refused)
        _output(app, es, cap, count, duration, stop, write_path, quiet, hex_, keep)
    _finish(app, cap, quiet)


def metadata_area_refused(prog_id: int) -> str:
    """What --attached must say on a kernel that refuses bpf_xdp_adjust_meta: the
    device's program cannot have put metadata in front of its packets either."""
    from xdphints_cli.hints.metadata_area import kernel_metadata_area

    area = kernel_metadata_area()
    if area.status != "refused":
        return ""
    return (f"this kernel refuses bpf_xdp_adjust_meta in XDP programs ({area.reason}): program "
            f"id {prog_id} cannot use the metadata area either, so its packets show without "
            "metadata (the built-in program moves its hints to the headroom instead)")


def freeze_heap() -> None:
    """Before a receive loop: everything imported and set up so far (tens of thousands
    of objects) goes out of the cyclic GC's reach. A full collection of it took 18-25
    ms here, a full RX ring at 800k pps; collections still run over what the loop makes."""
    import gc

    gc.freeze()


def _stop_when(signalled, no_stdout):
    """stop() for the receive loop: a signal came, or (when packets go to stdout) its
    reader went away, which then ends the command as a broken pipe does."""
    if no_stdout:
        return signalled
    closed = output_closed_check()

    def stop() -> bool:
        if closed():
            raise BrokenPipeError
        return signalled()

    return stop


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
    """The summary (with --quiet -j the JSON one on stdout only, as the README says); then,
    when the device went away under the capture, the error (exit 5) naming it."""
    if quiet and app.json:
        app.emit_json(summary_json(cap))
    else:
        say(summary_text(cap))
    if cap.gone:
        from xdphints_cli.errors import NotFoundError

        raise NotFoundError(cap.gone)
