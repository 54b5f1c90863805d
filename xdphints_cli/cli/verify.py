"""`xdphints verify`: do the XDP hints agree with what the kernel stack holds for the
same packets? Runs the dump --pass capture and compares both views per packet
(hints/verify.py); exit 7 when any hint disagrees."""

from __future__ import annotations

import sys
from typing import Optional

import click

from xdphints_cli.process import caps
from xdphints_cli.cli.app import App
from xdphints_cli.cli.options import FLOAT, INT, dev_option, global_options, usage_error
from xdphints_cli.errors import EXIT_DISAGREE

PASS_TRANSPORTS = ("auto", "metadata", "fingerprint")   # transport.PASS_NAMES, for --help


@click.command("verify")
@dev_option
@click.option("-q", "--queue", "queue_", default="all", show_default=True, metavar="N|N,M,...|all",
              help="RX queue(s) to look at.")
@click.option("-c", "--count", type=INT, metavar="N", help="Stop after N packets.")
@click.option("--duration", type=FLOAT, metavar="S", help="Stop after S seconds.")
@click.option("--match", "match_", default="ip", show_default=True, metavar="WHAT",
              help="Packets to compare: ip, all, udp, tcp, udp:PORT, tcp:PORT, ptp, vlan.")
@click.option("--transport", "transport", type=click.Choice(PASS_TRANSPORTS), default="auto",
              show_default=True,
              help="How the hints reach the stack's side: metadata (the XDP metadata area), "
                   "fingerprint (a map keyed by the frame's bytes); auto takes the metadata "
                   "area and moves on when the kernel or driver refuses it.")
@global_options
@click.pass_obj
def verify(app: App, dev: Optional[str], queue_: str, count: Optional[int],
           duration: Optional[float], match_: str, transport: str = "auto") -> None:
    """Compare, packet by packet, what the XDP metadata kfuncs return with what the
    kernel stack holds for the same packet.

    Uses the dump --pass path: the built-in program writes the kfunc results in
    front of each matched packet (the metadata transport) or stores them under the
    frame's fingerprint (the fingerprint transport, where the kernel or driver gives
    no metadata area) and passes it on; a tcx ingress program copies them with the
    stack's view (skb hash, VLAN tag, hardware timestamp) into one ring buffer
    record. Frames the fingerprint cannot tell apart (identical ones in flight),
    frames GRO merged and frames the stack dropped are counted, never compared.
    Nothing is taken away from the stack.

    Per hint (rx-hash vs skb->hash, rx-vlan vs the skb's VLAN tag: proto, VID, PCP,
    DEI; rx-timestamp vs the skb's hardware timestamp): compared, agree, disagree,
    xdp-only (the kfunc gave a value the stack lacks), stack-only, neither, and the
    first disagreeing packets as examples. Stops after --count packets, --duration
    seconds, or Ctrl-C. Exit 0 when every compared hint agrees, 7 when any
    disagrees, 3 when the device or kernel cannot do it.
    """
    from xdphints_cli.cli.dump import PASS_CAPS, PASS_WHY, _check_numbers, _stop_when, freeze_heap
    from xdphints_cli.cli.dump_output import say, transport_text
    from xdphints_cli.cli.safe_text import escape_text
    from xdphints_cli.hints import capture
    from xdphints_cli.hints.pass_capture import PassCapture
    from xdphints_cli.hints.program import Match
    from xdphints_cli.hints.verify import Verification, render_text

    _check_numbers(count, duration, None, 1)
    try:
        queue = capture.parse_queues(queue_)
        match = Match.parse(match_)
    except ValueError as e:
        raise usage_error(str(e)) from None
    caps.require("verify", PASS_CAPS, PASS_WHY)
    target = capture.resolve_target(dev, queue, app.warn, app.acting_on)
    result = Verification()
    with capture.stop_on_signals() as signalled:
        with PassCapture(target, queue, 0, match=match, warn=app.warn,
                         transport=transport) as cap:
            say(f"xdphints: verifying {target.ifname} (XDP program id {cap.prog_id}, tcx "
                f"program id {cap.tc_prog_id}; match {match}; {transport_text(cap)}); "
                "Ctrl-C to stop\n")
            freeze_heap()
            for batch in cap.batches(count, duration, _stop_when(signalled, True)):
                result.add(cap.decode(batch))
    doc = result.to_json(target.ifname, target.ifindex)
    doc.update({"transport": cap.transport_json(), "pass": cap.counters_json()})
    if app.json:
        app.emit_json(doc)
    else:
        sys.stdout.write(escape_text(render_text(doc)))
        sys.stdout.flush()
    if cap.gone:
        from xdphints_cli.errors import NotFoundError

        raise NotFoundError(cap.gone)
    if result.disagrees:
        click.get_current_context().exit(EXIT_DISAGREE)
