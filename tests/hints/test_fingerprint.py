"""The fingerprint transport of dump --pass and verify: each stack-side record holds
the hints of its own frame, and frames that could be mistaken for one another are
counted, never paired. Frames the stack drops are made by a tcx program of the test's
that runs before xdphints' (as a filter of the user's would)."""

from __future__ import annotations

import json
import socket

import pytest

from test_dump import finish, start_dump
from test_transport import send_frames, udp_frames

pytestmark = pytest.mark.privileged

MARK = 100          # a frame byte past the fingerprint's 76 (the dropper looks at it)


def _pass(pair, *args):
    return start_dump(pair, "-d", pair.dev, "--queue", "0", "--pass", "--match", "udp",
                      "--transport", "fingerprint", *args)


def test_every_frame_pairs_with_its_own_hints(veth):
    """200 frames, each its own flow (so its own RX hash) and sequence number: every
    record's packet carries its number once, and the hash XDP read for it is the one
    the stack holds for the same frame."""
    frames = udp_frames(veth, 200, size=64, flows=True)
    p = _pass(veth, "--count", "200", "-j", "--hex")
    send_frames(veth, frames)
    rc, out, err = finish(p)
    assert rc == 0, err
    pkts = [json.loads(line) for line in out.splitlines()]
    assert sorted(bytes.fromhex(p["data"]) for p in pkts) == sorted(frames)
    hashes = {p["rx-hash"]["hash"] for p in pkts}
    assert len(hashes) > 190                                # flows hash apart
    assert all(p["rx-hash"]["hash"] == p["stack"]["hash"] for p in pkts)


def _dropper():
    """A tcx ingress program that drops UDP frames to port 9999 whose byte MARK is 1."""
    from xdphints_cli.bpf import syscall as sc
    from xdphints_cli.bpf.insn import (
        JGT, JNE, R0, R2, R3, R4, Label, add64_imm, exit_, jmp_imm, jmp_reg, ldx_mem,
        mov64_imm, mov64_reg,
    )
    from xdphints_cli.bpf.prog import Program

    insns = [ldx_mem(4, R2, 1, 76), ldx_mem(4, R3, 1, 80),           # skb->data, data_end
             mov64_reg(R4, R2), add64_imm(R4, MARK + 1), jmp_reg(JGT, R4, R3, "next"),
             ldx_mem(2, R0, R2, 36), jmp_imm(JNE, R0, 0x0F27, "next"),  # dport 9999
             ldx_mem(1, R0, R2, MARK), jmp_imm(JNE, R0, 1, "next"),
             mov64_imm(R0, 2), exit_(),                                 # TCX_DROP
             Label("next"), mov64_imm(R0, -1), exit_()]                 # TCX_NEXT
    return Program.load(insns, prog_type=sc.BPF_PROG_TYPE_SCHED_CLS,
                        expected_attach_type=sc.BPF_TCX_INGRESS, name="xh_dropper")


def _marked(frame: bytes, mark: int) -> bytes:
    return frame[:MARK] + bytes([mark]) + frame[MARK + 1:]


def test_a_dropped_frame_is_never_paired_with_its_twin(veth):
    """Twins share length and fingerprint bytes and differ past them. The first of each
    pair is dropped before tc, so its record waits; its twin finds it (identical),
    and tc pairs neither (ambiguous): pairing the twin would have given it the dropped
    frame's hints. Frames of their own pair as usual."""
    from xdphints_cli.process import netns
    from xdphints_cli.bpf.link import TcxLink

    twins = udp_frames(veth, 10, size=120)
    own = udp_frames(veth, 10, size=120, first=100)
    frames = []
    for t, o in zip(twins, own):
        frames += [_marked(t, 1), _marked(t, 0), _marked(o, 0)]
    with netns.inside(veth.ns), _dropper() as prog, \
            TcxLink.attach(prog.fd, socket.if_nametoindex(veth.dev)):
        p = _pass(veth, "--duration", "3", "-j", "--hex", "--snaplen", "200")
        send_frames(veth, frames)
        rc, out, err = finish(p)
    assert rc == 0, err
    got = [bytes.fromhex(json.loads(line)["data"]) for line in out.splitlines()]
    assert got == [_marked(o, 0) for o in own]
    assert "fingerprints: 10 frames met an identical one in flight, 10 not compared for it" in err
    assert "10 records never claimed" in err


def test_verify_counts_what_it_could_not_compare(veth):
    """The same twins through verify: 10 compared (the frames of their own), the 10
    twins listed as not compared, the 10 dropped frames as never reaching tc."""
    from xdphints_cli.process import netns
    from xdphints_cli.bpf.link import TcxLink

    twins = udp_frames(veth, 10, size=120)
    own = udp_frames(veth, 10, size=120, first=100)
    frames = [f for t, o in zip(twins, own) for f in (_marked(t, 1), _marked(t, 0), _marked(o, 0))]
    with netns.inside(veth.ns), _dropper() as prog, \
            TcxLink.attach(prog.fd, socket.if_nametoindex(veth.dev)):
        p = start_dump(veth, "-d", veth.dev, "--match", "udp", "--transport", "fingerprint",
                       "--duration", "3", command="verify")
        send_frames(veth, frames)
        rc, out, err = finish(p)
    assert rc == 0, err
    assert "rx-hash       compared 10, agree 10" in out
    assert ("not compared: 10 with an identical frame in flight, 10 records never claimed "
            "(frames dropped or merged before tc)") in out


def test_frames_gro_merged_are_counted_not_compared(veth):
    """A TCP transfer with GRO on: the merged skbs are no frame XDP saw; verify counts
    their segments and compares the rest, all in agreement."""
    import subprocess

    from test_dump_pass import TCP_CLIENT, TCP_SERVER, _in_ns

    veth.run("ethtool", "-K", veth.dev, "gro", "on")
    p = start_dump(veth, "-d", veth.dev, "--match", "tcp", "--transport", "fingerprint",
                   "--duration", "3", "-j", command="verify")
    srv = subprocess.Popen(_in_ns(veth.ns, "-c", TCP_SERVER, veth.addr, "5001"),
                           stdout=subprocess.PIPE, text=True)
    assert srv.stdout.readline().strip() == "ready"
    c = subprocess.run(_in_ns(veth.peer_ns, "-c", TCP_CLIENT, veth.addr, "5001"),
                       capture_output=True, text=True, timeout=30)
    srv.wait(timeout=10)
    rc, out, err = finish(p)
    assert rc == 0 and c.stdout.strip() == "ok", (err, c.stdout)
    j = json.loads(out)
    c = j["pass"]
    assert c["merged"] > 0 and c["records"] == j["packets"] > 0
    assert c["records"] + c["merged"] <= c["marked"]
    assert j["verdict"] == "agree" and j["hints"]["rx-hash"]["disagree"] == 0
