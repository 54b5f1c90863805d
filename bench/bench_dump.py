#!/usr/bin/env python3
"""Throughput of `xdphints dump` against trafgen on a veth pair (needs root).

Builds its own throwaway namespaces and veth pair (names carry the pid; always
deleted), pins trafgen (peer namespace) to CPU0, where veth's RX work also runs, and
dump to CPU1, like the measurements in the shared reference. trafgen sends a fixed
number of identical UDP/IPv4 frames to the DUT's MAC and IP, so it stops by itself.

Per mode it prints the generator's own rate measured in the same run, what dump
received, its rate and the AF_XDP drops (XDP_STATISTICS, from dump's JSON summary or
its stderr summary):

  (a) stats only: `dump --quiet -j`  (one summary object, no per-packet output)
  (b) JSON lines to a file: `dump -j > FILE`
  (c) `dump --pass --quiet -j` beside (a), at the same offered rates: the packets go on
      to the kernel stack (no socket listens: the stack drops them after the tcx copy);
      shown: the generator's rate beside a run with no program at all (does the copy
      slow the traffic?), the packets the device delivered (its rx counter), the
      ring-buffer records and the records dropped

First at full generator speed; when that drops packets, at lower trafgen rates
(`--rate Npps`) to find the highest rate sustained with zero drops.
Targets (issue #5): (a) >= 0.9x the generator's rate with zero drops;
(b) >= 250,000 packets/s with zero drops. Exits 0 either way and says met / not met.

How a dump rate is measured: dump runs with `--count N`, so it exits by itself
when the last packet arrives; rate = packets received / (dump exit - trafgen start).
This includes dump's teardown (tens of ms): it errs on the low side. When packets
are lost, dump is stopped with SIGINT once trafgen is done and the ring drained, and
its rate is its own "pps while receiving" (first batch to last). Lost = sent -
received; the XDP_STATISTICS counters (rx-dropped, rx-ring-full) are shown beside it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Tuple

PY = sys.executable
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, NO_COLOR="1")
ENV.pop("XDPHINTS_DEV", None)
N = int(os.environ.get("BENCH_PACKETS", "2000000"))
GEN_CPU, DUMP_CPU = "0", "1"
STATS_TARGET_RATIO = 0.9
JSON_TARGET_PPS = 250_000
RATE_STEPS = (900_000, 800_000, 700_000, 600_000, 500_000, 400_000, 350_000, 300_000, 275_000,
              260_000, 250_000, 200_000)
ADDR, PEER_ADDR = "198.51.100.1", "198.51.100.2"


def sh(*args: str, ns: str = "", check: bool = True, **kw) -> subprocess.CompletedProcess:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


class Setup:
    """Namespaces + veth pair; a context manager that always removes them."""

    def __init__(self):
        pid = os.getpid()
        self.ns, self.peer_ns = f"xhb-d{pid}", f"xhb-p{pid}"
        self.dev, self.peer = f"xb{pid}a"[:15], f"xb{pid}b"[:15]
        self.made: List[str] = []

    def __enter__(self) -> "Setup":
        try:
            for n in (self.ns, self.peer_ns):
                sh("ip", "netns", "add", n)
                self.made.append(n)
            sh("ip", "-n", self.ns, "link", "add", self.dev, "type", "veth", "peer", "name",
               self.peer, "netns", self.peer_ns)
            for n, dev, a in ((self.ns, self.dev, ADDR), (self.peer_ns, self.peer, PEER_ADDR)):
                sh("sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1", ns=n, check=False)
                sh("ip", "-n", n, "addr", "add", f"{a}/24", "dev", dev)
                sh("ip", "-n", n, "link", "set", dev, "up")
            self.mac = sh("cat", f"/sys/class/net/{self.dev}/address", ns=self.ns).stdout.strip()
            self.peer_mac = sh("cat", f"/sys/class/net/{self.peer}/address",
                               ns=self.peer_ns).stdout.strip()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for n in self.made:
            sh("ip", "netns", "del", n, check=False)
        self.made.clear()


def _csum(data: bytes) -> int:
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(dst_mac: str, src_mac: str, src_ip: str, dst_ip: str, payload: int = 32) -> bytes:
    import socket

    udp = struct.pack("!HHHH", 40000, 9999, 8 + payload, 0) + b"x" * payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                               socket.inet_aton(src_ip), socket.inet_aton(dst_ip)))
    ip[10:12] = struct.pack("!H", _csum(bytes(ip)))
    eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
    return eth + b"\x08\x00" + bytes(ip) + udp


def trafgen_conf(frame: bytes) -> str:
    """A static frame (no dynamic elements: they slow trafgen down)."""
    return "{ " + ", ".join(f"0x{b:02x}" for b in frame) + " }\n"


def run_trafgen(s: Setup, conf: str, n: int, rate: Optional[int]) -> Tuple[float, subprocess.Popen]:
    cmd = ["ip", "netns", "exec", s.peer_ns, "taskset", "-c", GEN_CPU, "trafgen", "--dev",
           s.peer, "--conf", conf, "-P", "1", "-n", str(n), "-Q", "-C"]
    if rate:
        cmd += ["-b", f"{rate}pps"]
    t0 = time.monotonic()
    return t0, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start_dump(s: Setup, args: List[str], stdout) -> subprocess.Popen:
    cmd = ["ip", "netns", "exec", s.ns, "taskset", "-c", DUMP_CPU, PY, "-m", "xdphints_cli",
           "dump", "-d", s.dev, "-q", "0", *args]
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, env=ENV)
    while "prog/xdp" not in sh("ip", "link", "show", s.dev, ns=s.ns).stdout:
        if p.poll() is not None:
            raise SystemExit(f"dump exited early: {p.communicate()[1]}")
        time.sleep(0.02)
    return p


def _xsk_from_stderr(err: str) -> dict:
    m = re.search(r"rx_dropped (\d+), rx_ring_full (\d+), fill ring empty (\d+), invalid descs (\d+)", err)
    keys = ("rx-dropped", "rx-ring-full", "rx-fill-ring-empty-descs", "rx-invalid-descs")
    return dict(zip(keys, map(int, m.groups()))) if m else {}


def _active_pps_from_stderr(err: str) -> float:
    m = re.search(r"; ([\d.]+) pps while receiving", err)
    return float(m.group(1)) if m else 0.0


def _packets_from_stderr(err: str) -> int:
    m = re.search(r"(\d+) packets, \d+ bytes", err)
    return int(m.group(1)) if m else -1


def run_once(s: Setup, conf: str, mode: str, rate: Optional[int], n: int) -> dict:
    """One trafgen run of n packets (at `rate` pps, or full speed) into dump."""
    out = tempfile.NamedTemporaryFile("w+", prefix="xhbench-", suffix=".jsonl", delete=False)
    try:
        args = ["--count", str(n), "-j"] + (["--quiet"] if mode in ("stats", "pass") else [])
        args += ["--pass"] if mode == "pass" else []
        rx_before = rx_packets(s)
        dump = start_dump(s, args, out)
        t0, gen = run_trafgen(s, conf, n, rate)
        gen_out, _ = gen.communicate(timeout=600)
        t_gen = time.monotonic() - t0
        if gen.returncode != 0:
            dump.send_signal(signal.SIGINT)
            dump.communicate(timeout=60)
            raise SystemExit(f"trafgen failed ({gen.returncode}): {gen_out}")
        try:
            _, err = dump.communicate(timeout=5 + n / 200_000)
        except subprocess.TimeoutExpired:     # packets were dropped: count never reached
            dump.send_signal(signal.SIGINT)
            _, err = dump.communicate(timeout=60)
        t_dump = time.monotonic() - t0
        out.flush()
        out.seek(0)
        ring = {}
        if mode in ("stats", "pass"):
            summary = json.loads(out.read().strip().splitlines()[-1])
            got, xsk, active = summary["packets"], summary["xsk"], summary["active-pps"]
            ring = summary.get("pass", {})
        else:
            got = sum(1 for _ in out)
            xsk, active = _xsk_from_stderr(err), _active_pps_from_stderr(err)
            if _packets_from_stderr(err) not in (got, -1):
                raise SystemExit(f"dump counted {_packets_from_stderr(err)} packets, file has {got}")
        return {"mode": mode, "rate_asked": rate, "sent": n, "gen_s": t_gen, "gen_pps": n / t_gen,
                "received": got, "drops": n - got, "xsk": xsk, "active_pps": active,
                "dump_pps": got / t_dump if got == n else active, "rc": dump.returncode,
                "ring": ring, "delivered": rx_packets(s) - rx_before}
    finally:
        out.close()
        os.unlink(out.name)


def run_baseline(s: Setup, conf: str, rate: Optional[int], n: int) -> dict:
    """trafgen into the device with no program at all: what (c) is compared with."""
    before = rx_packets(s)
    t0, gen = run_trafgen(s, conf, n, rate)
    gen.communicate(timeout=600)
    t_gen = time.monotonic() - t0
    time.sleep(0.2)
    return {"gen_pps": n / t_gen, "delivered": rx_packets(s) - before, "sent": n}


def rx_packets(s: Setup) -> int:
    """The device's RX packet counter (XDP_PASS and redirected packets alike)."""
    return int(sh("cat", f"/sys/class/net/{s.dev}/statistics/rx_packets", ns=s.ns).stdout)


def show(r: dict) -> str:
    asked = f"{r['rate_asked']:>9,} pps" if r["rate_asked"] else "full speed  "
    if r["mode"] == "pass":
        return (f"  trafgen {asked}: sent {r['sent']:,} at {r['gen_pps']:,.0f} pps | device "
                f"delivered {r['delivered']:,} to the stack | dump read {r['received']:,} "
                f"records at {r['dump_pps']:,.0f} pps, ring-dropped "
                f"{r['ring'].get('ring-dropped', '?'):,}")
    return (f"  trafgen {asked}: sent {r['sent']:,} at {r['gen_pps']:,.0f} pps | dump received "
            f"{r['received']:,} at {r['dump_pps']:,.0f} pps, lost {r['drops']:,} "
            f"(XDP_STATISTICS rx-dropped {r['xsk'].get('rx-dropped', '?')}, rx-ring-full "
            f"{r['xsk'].get('rx-ring-full', '?')})")


def sustained(s: Setup, conf: str, mode: str, n: int) -> Tuple[dict, Optional[dict]]:
    """(full-speed run, highest zero-drop run or None)."""
    full = run_once(s, conf, mode, None, n)
    print(show(full), flush=True)
    if full["drops"] == 0 and full["received"] == n:
        return full, full
    for rate in RATE_STEPS:
        if rate >= full["gen_pps"]:
            continue
        r = run_once(s, conf, mode, rate, min(n, rate * 2))
        print(show(r), flush=True)
        if r["drops"] == 0 and r["received"] == r["sent"]:
            return full, r
    return full, None


def main() -> int:
    if os.geteuid() != 0:
        print("bench_dump needs root (network namespaces, BPF)", file=sys.stderr)
        return 1
    with Setup() as s, tempfile.NamedTemporaryFile("w", prefix="xhbench-", suffix=".cfg") as cfg:
        cfg.write(trafgen_conf(udp_frame(s.mac, s.peer_mac, PEER_ADDR, ADDR)))
        cfg.flush()
        print(f"veth {s.dev} <- {s.peer}; trafgen on CPU{GEN_CPU}, dump on CPU{DUMP_CPU}; "
              f"{N:,} packets of 74 bytes per full-speed run")
        print("(a) stats only: dump --quiet -j")
        a_full, a_ok = sustained(s, cfg.name, "stats", N)
        print("(c) observing without stealing: dump --pass --quiet -j, at (a)'s rates")
        c_runs = [run_once(s, cfg.name, "pass", r["rate_asked"], r["sent"])
                  for r in ([a_full] + ([a_ok] if a_ok is not None and a_ok is not a_full else []))]
        for r in c_runs:
            print(show(r), flush=True)
        c_base = [run_baseline(s, cfg.name, r["rate_asked"], r["sent"]) for r in c_runs]
        for r, b in zip(c_runs, c_base):
            offered = f"{r['rate_asked']:>9,} pps" if r["rate_asked"] else "full speed  "
            print(f"  trafgen {offered}: no program at all: sent {b['sent']:,} at "
                  f"{b['gen_pps']:,.0f} pps, device delivered {b['delivered']:,}", flush=True)
        print("(b) JSON lines to a file: dump -j > FILE")
        b_full, b_ok = sustained(s, cfg.name, "json", N)

    print()
    print("summary")
    gen = a_full["gen_pps"]
    a_met = a_ok is a_full and a_full["dump_pps"] >= STATS_TARGET_RATIO * gen
    print(f"  generator (trafgen, full speed):  {gen:,.0f} pps")
    print(f"  (a) stats only at full speed:     {a_full['dump_pps']:,.0f} pps "
          f"({a_full['dump_pps'] / gen:.2f}x the generator), drops {a_full['drops']:,}")
    if a_ok is not a_full:
        print(f"      highest zero-drop rate tried: "
              + (f"{a_ok['gen_pps']:,.0f} pps" if a_ok else "none"))
    print(f"      target >= {STATS_TARGET_RATIO}x generator with 0 drops: "
          f"{'met' if a_met else 'NOT met'}")
    for c, a, base in zip(c_runs, [a_full, a_ok], c_base):
        offered = f"{c['rate_asked']:,} pps" if c["rate_asked"] else "full speed"
        print(f"  (c) --pass, offered {offered}: generator {c['gen_pps']:,.0f} pps (no program: "
              f"{base['gen_pps']:,.0f}; redirect mode: {a['gen_pps']:,.0f}), delivered to the "
              f"stack {c['delivered']:,}/"
              f"{c['sent']:,}, records {c['received']:,}, ring-dropped "
              f"{c['ring'].get('ring-dropped', '?')}")
    b_rate = b_ok["dump_pps"] if b_ok else 0.0
    b_met = b_ok is not None and b_rate >= JSON_TARGET_PPS
    print(f"  (b) JSON lines at full speed:     {b_full['dump_pps']:,.0f} pps, drops "
          f"{b_full['drops']:,}")
    print(f"      sustained with 0 drops:       "
          + (f"{b_rate:,.0f} pps (generator {b_ok['gen_pps']:,.0f} pps)" if b_ok else "none found"))
    print(f"      target >= {JSON_TARGET_PPS:,} pps with 0 drops: {'met' if b_met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
