"""`xdphints verify`'s comparison: what the XDP metadata kfuncs returned for a packet
against what the kernel stack holds for the same packet (its sk_buff at tc ingress).

Both views travel in one ring record (dump --pass), so the pairing is exact: the
metadata area travels with the packet, and a fingerprint never pairs frames it cannot
tell apart (fingerprint.py); what could not be compared is counted there. Per hint,
each packet is one of: agree, disagree (both have a value and they differ), xdp-only
(the kfunc gave a value the stack lacks), stack-only, neither. "compared" counts the
packets where both had a value (agree + disagree). Pure logic on decoded Packets:
no kernel, no I/O.

- rx-hash: the kfunc's hash vs skb->hash (0 in the skb means the stack has none),
  and, when the tcx program could read skb->l4_hash, the hash type's L4 bit
  (XDP_RSS_L4) vs l4_hash.
- rx-vlan: the kfunc's (proto, TCI) vs the skb's out-of-frame tag (vlan_present,
  vlan_proto, vlan_tci): proto, VID, PCP and DEI must all match.
- rx-timestamp: the kfunc's ns vs skb_hwtstamps(skb)->hwtstamp (0: none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

HINTS = ("rx-hash", "rx-vlan", "rx-timestamp")
OUTCOMES = ("agree", "disagree", "xdp-only", "stack-only", "neither")
MAX_EXAMPLES = 5
XDP_RSS_L4 = 8          # enum xdp_rss_hash_type (include/net/xdp.h): the hash covers L4


def _vlan_text(proto: int, tci: int) -> str:
    return f"0x{proto:04x} vid {tci & 0xFFF} pcp {tci >> 13} dei {(tci >> 12) & 1}"


def views(pkt) -> Dict[str, Tuple[Optional[str], Optional[str]]]:
    """{hint: (xdp value, stack value)} as comparable text; None where that side has
    no value. Equal text means agreement."""
    hv, st = pkt.hints, pkt.stack
    out: Dict[str, Tuple[Optional[str], Optional[str]]] = {}
    h = hv.get("rx-hash")
    xdp = f"0x{h.get('rx_hash'):08x}" if h is not None and h.status == "ok" else None
    stack = f"0x{st.hash:08x}" if st.hash else None
    if xdp and stack and st.l4_hash is not None:
        xdp += " l4" if (h.get("rx_hash_type") or 0) & XDP_RSS_L4 else " l3"
        stack += " l4" if st.l4_hash else " l3"
    out["rx-hash"] = (xdp, stack)
    v = hv.get("rx-vlan")
    xdp = (_vlan_text(v.get("rx_vlan_proto"), v.get("rx_vlan_tci"))
           if v is not None and v.status == "ok" else None)
    out["rx-vlan"] = (xdp, _vlan_text(st.vlan_proto, st.vlan_tci) if st.vlan_present else None)
    t = hv.get("rx-timestamp")
    xdp = str(t.get("rx_timestamp")) if t is not None and t.status == "ok" else None
    out["rx-timestamp"] = (xdp, str(st.hwtstamp) if st.hwtstamp else None)
    return out


def outcome(xdp: Optional[str], stack: Optional[str]) -> str:
    if xdp is None:
        return "stack-only" if stack is not None else "neither"
    if stack is None:
        return "xdp-only"
    return "agree" if xdp == stack else "disagree"


@dataclass
class HintTally:
    counts: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    examples: List[dict] = field(default_factory=list)

    @property
    def compared(self) -> int:
        return self.counts["agree"] + self.counts["disagree"]

    def to_json(self) -> dict:
        return {"compared": self.compared, **self.counts, "examples": self.examples}


@dataclass
class Verification:
    """Tallies per hint over the packets added."""

    packets: int = 0
    hints: Dict[str, HintTally] = field(default_factory=lambda: {h: HintTally() for h in HINTS})

    def add(self, pkts: Iterable) -> None:
        for pkt in pkts:
            self.packets += 1
            for hint, (xdp, stack) in views(pkt).items():
                tally = self.hints[hint]
                kind = outcome(xdp, stack)
                tally.counts[kind] += 1
                if kind == "disagree" and len(tally.examples) < MAX_EXAMPLES:
                    summary = pkt.summary.text() if pkt.summary is not None else ""
                    ex = {"summary": summary, "xdp": xdp, "stack": stack}
                    if hint == "rx-timestamp":
                        ex["diff-ns"] = int(stack) - int(xdp)
                    tally.examples.append(ex)

    @property
    def disagrees(self) -> bool:
        return any(t.counts["disagree"] for t in self.hints.values())

    @property
    def verdict(self) -> str:
        """"disagree" when any hint disagreed on any packet; "agree" when something was
        compared and all of it agreed; "nothing compared" otherwise."""
        if self.disagrees:
            return "disagree"
        if any(t.compared for t in self.hints.values()):
            return "agree"
        return "nothing compared"

    def to_json(self, ifname: str, ifindex: int) -> dict:
        from xdphints_cli.names import json_name

        return {**json_name("ifname", ifname), "ifindex": ifindex, "packets": self.packets,
                "hints": {h: t.to_json() for h, t in self.hints.items()},
                "verdict": self.verdict}

    def text(self, ifname: str) -> str:
        return render_text(self.to_json(ifname, 0))


def render_text(doc: dict) -> str:
    """verify's text output from its JSON document: a line per hint, its examples,
    the verdict."""
    lines = []
    for h, t in doc["hints"].items():
        lines.append(f"{h:<13} compared {t['compared']}, agree {t['agree']}, disagree "
                     f"{t['disagree']}, xdp-only {t['xdp-only']}, stack-only "
                     f"{t['stack-only']}, neither {t['neither']}")
        for ex in t["examples"]:
            diff = f" ({ex['diff-ns']:+d} ns)" if "diff-ns" in ex else ""
            lines.append(f"  disagree: {ex['summary']}: xdp {ex['xdp']}, stack {ex['stack']}{diff}")
    c = doc.get("pass", {})
    uncompared = [f"{c[k]} {label}" for k, label in UNCOMPARED if c.get(k)]
    if uncompared:
        lines.append("not compared: " + ", ".join(uncompared))
    t = doc.get("transport")
    if t:
        lines.append(f"transport {t['name']} ({t['why']})")
    lines.append(f"verdict: {doc['verdict']} ({doc['packets']} packets on {doc['ifname']})")
    return "\n".join(lines) + "\n"


# counters of dump --pass (PassCapture.counters_json) for packets XDP saw and verify
# could not compare
UNCOMPARED = (("ring-dropped", "dropped (ring buffer full)"),
              ("ambiguous", "with an identical frame in flight"),
              ("merged", "merged by GRO"), ("stale", "stale (the stack dropped the frame)"),
              ("left", "records never claimed (frames dropped or merged before tc)"))
