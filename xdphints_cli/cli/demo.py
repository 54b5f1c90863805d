"""`xdphints demo`: XDP hints end to end on a throwaway veth pair."""

from __future__ import annotations

import signal

import click

from xdphints_cli.cli.app import App
from xdphints_cli.cli.options import global_options, usage_error


@click.command("demo", epilog="Exit codes: 0 done, 1 a step failed, 2 usage error (-n), 4 not root, "
                               "130 interrupted.")
@global_options(netns=False)
@click.pass_obj
def demo(app: App) -> None:
    """Show XDP hints end to end with no NIC: create two throwaway network namespaces
    with a veth pair, show the device, enable what can be enabled, capture UDP flows
    (one VLAN-tagged by the sender's offload) with the built-in hints program, check
    the hints against the kernel stack (verify), explain what each hint shows, and
    remove everything, also when interrupted.

    The capture step says how the hints travelled (the transport: the XDP metadata
    area, or the headroom where this kernel refuses it) and why. When a step fails,
    the error is one line naming the step; with -j the document keeps what the steps
    before it found, with "error", "failed-step" and "exit-code" keys.

    The demo makes its own namespaces: -n is refused (a usage error). Needs root.
    """
    if app.netns is not None:   # given before the command, where every command takes it
        raise usage_error("demo makes its own network namespaces; -n does not apply to it")
    from xdphints_cli.scenario import veth_demo as logic
    from xdphints_cli.errors import Interrupted

    def interrupted(signum, _frame):
        raise Interrupted(f"interrupted by {signal.Signals(signum).name}; the demo's namespaces were removed")

    # both signals unwind the demo, so its namespaces are removed on the way out
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupted)
    emit = (lambda kind, data: None) if app.json else _TextReport(app).emit
    try:
        doc = logic.run(emit, app.json)
    except logic.DemoFailed as e:
        if not app.json:
            raise
        # the steps that worked stay in the document, with the error and exit code as
        # the one-line JSON error has them
        app.emit_json({**e.doc, "error": str(e), "failed-step": e.step, "exit-code": e.exit_code})
        app.fail(str(e), e.exit_code)
    if app.json:
        app.emit_json(doc)


class _TextReport:
    def __init__(self, app: App):
        self.app = app

    def out(self, text: str = "", **kw) -> None:
        self.app.console.print(text, **kw)

    def heading(self, text: str) -> None:
        self.out()
        self.out(f"== {text} ==", style="bold")

    def emit(self, kind: str, data: dict) -> None:
        getattr(self, f"_{kind}")(data)

    def _intro(self, d: dict) -> None:
        from xdphints_cli.scenario.veth_demo import ADDR, DUT, PEER, PEER_ADDR

        self.out(f"xdphints demo: a veth pair across two throwaway network namespaces ({d['ns']}, "
                 f"{d['peer_ns']}): {DUT} ({ADDR}) is the device under test, {PEER} ({PEER_ADDR}) "
                 "sends the traffic. Everything is removed at the end.")

    def _show(self, d: dict) -> None:
        self.heading("1. What the device offers")
        self.out("$ " + " ".join(d["command"]))
        self.out(d["output"].rstrip())

    def _enable(self, d: dict) -> None:
        if d["feature"] == "rx-vlan":
            self.heading("2. Turn on the hardware side")
        self.out("$ " + " ".join(d["command"]))
        self.out(d["output"].rstrip() if not d["code"] else f"{d['error']} (exit {d['code']})")

    def _dump(self, d: dict) -> None:
        from xdphints_cli.scenario.veth_demo import VLAN_ID, VLAN_PCP

        self.heading("3. Capture with the built-in hints program")
        flows = ", ".join(f"{s}->{p}" for s, p in d["flows"])
        vs, vp = d["vlan_flow"]
        self.out(f"Sending {d['per_flow']} UDP packets on each of the flows {flows}, then on {vs}->{vp} "
                 f"tagged VLAN {VLAN_ID} PCP {VLAN_PCP} by the sender's tx-vlan offload.")
        self.out("$ " + " ".join(d["command"]))

    def _packets(self, d: dict) -> None:
        from xdphints_cli.scenario.veth_demo import flow_key, hint_text

        for line in d["start"]:
            self.out(line)
        self.out(f"  {'FLOW':<13} {'RX-HASH':<32} {'RX-VLAN':<26} RX-TIMESTAMP")
        for p in d["packets"]:
            self.out(f"  {flow_key(p):<13} {hint_text(p.get('rx-hash'), 'rx-hash'):<32} "
                     f"{hint_text(p.get('rx-vlan'), 'rx-vlan'):<26} "
                     f"{hint_text(p.get('rx-timestamp'), 'rx-timestamp')}")
        for line in d["summary"]:
            self.out(line)

    def _verify(self, d: dict) -> None:
        self.heading("4. Check the hints against the kernel stack")
        self.out("The same flows again, this time passed on to the stack: verify compares what "
                 "the kfuncs returned with what the stack's sk_buff holds for each packet.")
        self.out("$ " + " ".join(d["command"]))

    def _verified(self, d: dict) -> None:
        from xdphints_cli.hints.verify import render_text

        self.out(render_text(d["result"]).rstrip())

    def _explain(self, d: dict) -> None:
        self.heading("5. What the hints show")
        for hint, text in d["explanations"].items():
            self.out(f"{hint}: {text}")

    def _done(self, d: dict) -> None:
        self.out()
        self.out(f"Removed {', '.join(d['namespaces'])}.")
