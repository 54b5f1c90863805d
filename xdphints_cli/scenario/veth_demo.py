"""`xdphints demo`: XDP hints end to end on a throwaway veth pair, with no NIC needed.

The demo runs the real commands (show, enable, dump, verify) as a user would, inside two
network namespaces it creates and always removes: the device under test `xd0` in
one, its peer `xd1` in the other sending a few UDP flows, one of them VLAN-tagged
by the sender's tx-vlan offload (a tiny tcx program calling bpf_skb_vlan_push).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from xdphints_cli.process import netns
from xdphints_cli.errors import Interrupted, PermissionDeniedError, XdpHintsError

DUT, PEER = "xd0", "xd1"
ADDR, PEER_ADDR = "192.0.2.1", "192.0.2.2"  # documentation range, only inside the demo's namespaces
DUT_MAC, PEER_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
FLOWS: Tuple[Tuple[int, int], ...] = ((40001, 7000), (40002, 7000), (40003, 7001))  # (src port, dst port)
VLAN_FLOW = (40004, 7002)
VLAN_ID, VLAN_PCP = 100, 5
PER_FLOW = 3
TOTAL = PER_FLOW * (len(FLOWS) + 1)
FEATURES = ("rx-vlan", "rx-hash", "rx-timestamp")

# netns creation, links, BPF, the AF_XDP socket
_CAPS = ("CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_BPF", "CAP_NET_RAW")
NS_PREFIX = "xdph-demo-"


def require_privileges() -> None:
    from xdphints_cli.process.caps import missing as lacking

    missing = lacking(_CAPS)
    if missing:
        raise PermissionDeniedError(f"demo needs root: {', '.join(missing)} missing (it creates network "
                                    "namespaces, a veth pair and XDP programs)")


def vlan_push_program(proto: int, tci: int) -> list:
    """A tcx egress program that pushes an accel VLAN tag (bpf_skb_vlan_push, helper 18)
    and lets the packet go on (TCX_NEXT), as a NIC's tx-vlan offload would."""
    from xdphints_cli.bpf.insn import R0, R2, R3, call_helper, exit_, mov64_imm

    return [mov64_imm(R2, socket.htons(proto)), mov64_imm(R3, tci), call_helper(18),
            mov64_imm(R0, -1), exit_()]


class DemoFailed(XdpHintsError):
    """A step of the demo failed; `doc` holds what the steps before it found (the JSON
    document so far), `step` names it."""

    def __init__(self, step: str, message: str, doc: dict):
        super().__init__(f"{step} failed: {message}")
        self.step = step
        self.doc = doc


def their_error(stderr: str) -> str:
    """A sub-command's one-line error without its own "xdphints: error: " prefix (the
    demo's error carries one already); else its last line."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX):]
    return lines[-1] if lines else "no message"


ERROR_PREFIX = "xdphints: error: "


def _ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], capture_output=True, text=True)
    if res.returncode:
        raise XdpHintsError(f"ip {' '.join(args)}: {res.stderr.strip()}")


@dataclass
class Lab:
    """Two namespaces and a veth pair; removed on exit however the demo ends."""

    ns: str = field(default_factory=lambda: f"{NS_PREFIX}{os.getpid()}-a")
    peer_ns: str = field(default_factory=lambda: f"{NS_PREFIX}{os.getpid()}-b")
    _made: List[str] = field(default_factory=list)

    def __enter__(self) -> "Lab":
        remove_orphans()
        try:
            for name in (self.ns, self.peer_ns):
                self._made.append(name)  # first: an interrupt may land while ip creates it
                _ip("netns", "add", name)
            _ip("-n", self.ns, "link", "add", DUT, "address", DUT_MAC, "type", "veth",
                "peer", "name", PEER, "address", PEER_MAC, "netns", self.peer_ns)
            for ns, dev, addr, other, other_mac in ((self.ns, DUT, ADDR, PEER_ADDR, PEER_MAC),
                                                    (self.peer_ns, PEER, PEER_ADDR, ADDR, DUT_MAC)):
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
                # static neighbours: ARP sent while tagging is on would be tagged too
                _ip("-n", ns, "neigh", "replace", other, "lladdr", other_mac, "dev", dev, "nud", "permanent")
                _ip("-n", ns, "link", "set", dev, "up")
            # no IPv6 on the peer: its MLD reports would only add noise to the capture
            subprocess.run(["ip", "netns", "exec", self.peer_ns, "sysctl", "-qw",
                            f"net.ipv6.conf.{PEER}.disable_ipv6=1"], capture_output=True)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        # a second Ctrl-C must not cut the cleanup short: hold the signals until it is done
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            while self._made:
                subprocess.run(["ip", "netns", "del", self._made.pop()], capture_output=True)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    # --- running the real commands ---------------------------------------------------

    def command(self, *args: str) -> List[str]:
        """The command line a user would type (shown in the output)."""
        return ["xdphints", "-n", self.ns, *args]

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self._argv(args), capture_output=True, text=True, env=_env(), timeout=120)

    def _argv(self, args) -> List[str]:
        return [sys.executable, "-m", "xdphints_cli", "-n", self.ns, *args]

    @contextmanager
    def dump(self, *args: str) -> Iterator[subprocess.Popen]:
        """Start dump and yield once its program is attached; always stop it."""
        proc = subprocess.Popen(self._argv(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=_env())
        try:
            deadline = time.monotonic() + 30
            while not self._xdp_attached():
                if proc.poll() is not None or time.monotonic() > deadline:
                    out, err = proc.communicate()
                    raise XdpHintsError(f"did not start: {their_error(err or out or 'timeout')}")
                time.sleep(0.05)
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def _xdp_attached(self) -> bool:
        res = subprocess.run(["ip", "-n", self.ns, "link", "show", DUT], capture_output=True, text=True)
        return "prog/xdp" in res.stdout

    # --- traffic from the peer -------------------------------------------------------

    def send(self, flows, count: int) -> None:
        with netns.inside(self.peer_ns):
            for sport, dport in flows:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind((PEER_ADDR, sport))
                    for i in range(count):
                        s.sendto(b"xdphints demo %d" % i, (ADDR, dport))

    @contextmanager
    def vlan_tagging(self) -> Iterator[None]:
        """Tag everything the peer sends, as its tx-vlan offload would (an accel tag)."""
        from xdphints_cli.bpf import syscall as sc
        from xdphints_cli.bpf.link import TcxLink
        from xdphints_cli.bpf.prog import Program

        with netns.inside(self.peer_ns):
            prog = Program.load(vlan_push_program(0x8100, VLAN_PCP << 13 | VLAN_ID),
                                prog_type=sc.BPF_PROG_TYPE_SCHED_CLS,
                                expected_attach_type=sc.BPF_TCX_EGRESS, name="xdph_demo_vlan")
            with prog, TcxLink.attach(prog.fd, socket.if_nametoindex(PEER), sc.BPF_TCX_EGRESS):
                yield


def remove_orphans() -> List[str]:
    """Namespaces of earlier demos whose process is gone (a kill -9 skips every cleanup)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    removed = []
    for name in (line.split()[0] for line in out.splitlines() if line.startswith(NS_PREFIX)):
        pid = name[len(NS_PREFIX):].rsplit("-", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            removed.append(name)
    return removed


def _env() -> Dict[str, str]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("XDPHINTS_DEV", None)
    return env


# --- what the packets show ---------------------------------------------------------------

@dataclass(frozen=True)
class Observations:
    """What the captured hints say, checked against what the demo sent."""

    hashes: Dict[str, List[str]]  # flow -> the rx-hash values seen
    hash_types: List[str]
    vlan_tags: Dict[str, List[str]]  # flow -> the rx-vlan values seen
    timestamps: List[str]

    @property
    def hash_stable_within_flows(self) -> bool:
        return all(len(set(v)) == 1 for v in self.hashes.values())

    @property
    def hash_differs_across_flows(self) -> bool:
        firsts = [v[0] for v in self.hashes.values() if v]
        return len(set(firsts)) == len(firsts) > 1

    def to_json(self) -> dict:
        return {"rx-hash": {"per-flow": self.hashes, "types": self.hash_types,
                            "stable-within-flows": self.hash_stable_within_flows,
                            "differs-across-flows": self.hash_differs_across_flows},
                "rx-vlan": {"per-flow": self.vlan_tags},
                "rx-timestamp": {"values": sorted(set(self.timestamps))}}


def flow_key(pkt: dict) -> str:
    return f"{pkt.get('src-port')}->{pkt.get('dst-port')}"


def hint_text(hint: Optional[dict], kind: str) -> str:
    if not hint:
        return "absent"
    if hint.get("status") != "ok":
        return hint.get("errno") or hint.get("status", "?")
    if kind == "rx-hash":
        return f"{hint['hash']} {hint.get('type-name', '')}".strip()
    if kind == "rx-vlan":
        return f"vid {hint['vid']} pcp {hint['pcp']} ({hint['proto']})"
    return f"{hint['ns']} ns"


def observe(packets: List[dict]) -> Observations:
    hashes: Dict[str, List[str]] = {}
    vlans: Dict[str, List[str]] = {}
    types, stamps = [], []
    for p in packets:
        key = flow_key(p)
        rx_hash = p.get("rx-hash") or {}
        if rx_hash.get("status") == "ok":
            hashes.setdefault(key, []).append(rx_hash["hash"])
            types.append(rx_hash.get("type-name", ""))
        vlans.setdefault(key, []).append(hint_text(p.get("rx-vlan"), "rx-vlan"))
        stamps.append(hint_text(p.get("rx-timestamp"), "rx-timestamp"))
    return Observations(hashes, sorted(set(types)), vlans, stamps)


TRANSPORT_TEXT = {
    "metadata": "in the XDP metadata area, in front of each packet, which stays untouched",
    "headroom": ("in the frame's headroom, in front of each packet (bpf_xdp_adjust_head), "
                 "stripped before output"),
    "tail": "after each packet (bpf_xdp_adjust_tail), stripped before output",
}


def explain(obs: Observations, transport: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """A short explanation per hint, grounded in what this run saw, and how the hints
    travelled to the AF_XDP socket."""
    vlan_flow = f"{VLAN_FLOW[0]}->{VLAN_FLOW[1]}"
    tagged = obs.vlan_tags.get(vlan_flow, [])
    out = {}
    if transport:
        out["transport"] = (f"the hints travelled {TRANSPORT_TEXT.get(transport['name'], transport['name'])}"
                            f" ({transport['why']}).")
    return {**out,
        "rx-hash": ("the RX hash the driver reports for the packet's flow, with its type "
                    f"({', '.join(obs.hash_types) or 'none'}): on a NIC the RSS hash its hardware "
                    "computed; veth has no hardware, so it reports the kernel's software flow hash "
                    "(skb->hash, as show says). Here it was "
                    + ("the same for every packet of a flow" if obs.hash_stable_within_flows
                       else "NOT the same within a flow") + " and "
                    + ("different across flows" if obs.hash_differs_across_flows else "NOT different across flows")
                    + ": an AF_XDP application can spread or steer flows without hashing packets itself."),
        "rx-vlan": ("the VLAN tag the NIC stripped from the frame (proto, VID, PCP). The flow "
                    f"{vlan_flow} was tagged VID {VLAN_ID} PCP {VLAN_PCP} by the sender's offload and "
                    f"arrived with {tagged[0] if tagged else 'nothing'}; untagged frames give ENODATA."),
        "rx-timestamp": ("the NIC's hardware RX time in ns of its PTP hardware clock. veth has no "
                         "hardware clock, so it is none here; on a NIC with a PHC, run "
                         "'xdphints enable rx-timestamp' first."),
    }


def transport_of(stderr_lines: List[str]) -> Optional[Dict[str, str]]:
    """dump's transport from its summary line "transport NAME (WHY)"."""
    for line in stderr_lines:
        if line.startswith("transport ") and line.endswith(")"):
            name = line.split()[1]
            return {"name": name, "why": line[len(f"transport {name} ("):-1]}
    return None


def run(emit, json_mode: bool) -> dict:
    """Run the demo; `emit(kind, data)` reports progress as it happens. Returns the
    JSON document of the whole run; a failing step raises DemoFailed with the
    document of the steps before it."""
    require_privileges()
    doc: dict = {}
    step = "setup"
    try:
        with Lab() as lab:
            doc["namespaces"] = [lab.ns, lab.peer_ns]
            doc["device"] = DUT
            emit("intro", {"ns": lab.ns, "peer_ns": lab.peer_ns})

            step = "show"
            show = lab.run(*(["-j"] if json_mode else []), "show", DUT)
            if show.returncode:
                raise XdpHintsError(their_error(show.stderr))
            doc["show"] = json.loads(show.stdout) if json_mode else None
            emit("show", {"command": lab.command("show", DUT), "output": show.stdout})

            step = "enable"
            doc["enable"] = {}
            for feature in FEATURES:
                res = lab.run(*(["-j"] if json_mode else []), "enable", feature, "-d", DUT)
                result = {"exit-code": res.returncode}
                if res.returncode == 0 and json_mode:
                    result.update(json.loads(res.stdout)["features"][feature])
                elif res.returncode:
                    result["error"] = their_error(res.stderr)
                doc["enable"][feature] = result
                emit("enable", {"command": lab.command("enable", feature, "-d", DUT),
                                "feature": feature, "output": res.stdout,
                                "error": result.get("error"), "code": res.returncode})

            step = "dump"
            args = ("-j", "dump", "-d", DUT, "--queue", "0", "--match", "udp", "--count",
                    str(TOTAL), "--duration", "20")
            emit("dump", {"command": lab.command(*args[1:]), "flows": FLOWS, "vlan_flow": VLAN_FLOW,
                          "per_flow": PER_FLOW})
            with lab.dump(*args) as proc:
                lab.send(FLOWS, PER_FLOW)
                with lab.vlan_tagging():
                    lab.send((VLAN_FLOW,), PER_FLOW)
                out, err = proc.communicate(timeout=60)
            if proc.returncode:
                raise XdpHintsError(f"exit {proc.returncode}: {their_error(err)}")
            packets = [json.loads(line) for line in out.splitlines() if line.strip()]
            doc["packets"] = packets
            # what dump said on stderr, as text: its start line, then its summary
            doc["dump-stderr"] = [line.replace("xdphints: ", "", 1)
                                  for line in err.strip().splitlines()]
            doc["transport"] = transport_of(doc["dump-stderr"])
            start = [line for line in doc["dump-stderr"] if line.startswith("dumping ")]
            emit("packets", {"packets": packets, "start": start,
                             "summary": [line for line in doc["dump-stderr"] if line not in start]})

            step = "verify"
            args = ("-j", "verify", "-d", DUT, "--match", "udp", "--count", str(TOTAL),
                    "--duration", "20")
            emit("verify", {"command": lab.command(*args[1:])})
            with lab.dump(*args) as proc:
                lab.send(FLOWS, PER_FLOW)
                with lab.vlan_tagging():
                    lab.send((VLAN_FLOW,), PER_FLOW)
                out, err = proc.communicate(timeout=60)
            if proc.returncode not in (0, 7):
                raise XdpHintsError(f"exit {proc.returncode}: {their_error(err)}")
            doc["verify"] = json.loads(out)
            emit("verified", {"result": doc["verify"], "code": proc.returncode})

            obs = observe(packets)
            doc["observations"] = obs.to_json()
            doc["explanations"] = explain(obs, doc["transport"])
            emit("explain", {"explanations": doc["explanations"]})
    except Interrupted:
        raise
    except XdpHintsError as e:
        raise DemoFailed(step, str(e), doc) from None
    emit("done", {"namespaces": doc["namespaces"]})
    return doc
