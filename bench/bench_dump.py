#!/usr/bin/env python3
"""Throughput of `xdphints dump` beside `tcpdump -w` on a veth pair
(needs root).

Builds its own throwaway namespaces and veth pair (names carry the pid; always
deleted), pins the generator (peer namespace) to CPU0, where veth's RX work also runs, and
the capture to CPU1. The generator sends a fixed number of identical 74-byte UDP/IPv4
frames to the DUT's MAC and IP, so it stops by itself: trafgen at full speed, and
bench/pacer.c (built here with cc) for a given rate. trafgen's own `-b Npps` is no
steady rate: it sends each second's N packets in one burst at full speed and then
waits for the next second (measured: 20,001 frames within 50 ms, then none for
950 ms), so any capture slower than line rate loses most of a burst longer than its
ring. The pacer sends bursts (sendmmsg on AF_PACKET) of at most 32 frames, or 160 us
of traffic above 200k pps (one syscall per 32 frames cannot go past ~550k pps here),
each due at its own time on CLOCK_MONOTONIC, so the offered rate holds over every 10 ms.

Captures compared, each at the same offered rates:

  quiet    `dump --quiet -j`            (counters only: the ceiling of the RX loop)
  json     `dump -j > FILE`             (JSON lines to a file)
  pcapng   `dump -w FILE`               (pcapng with the hints)
  tcpdump  `tcpdump -i DEV -w FILE`     (AF_PACKET, no XDP: what users compare with)
  pass     `dump --pass --quiet -j`     (observe without stealing: the packets go on to
                                         the stack; shown: packets the device delivered
                                         (its rx counter), ring records read and dropped;
                                         "lost" is records not read)

When tcpdump kept every packet at full speed, each dump capture is also run paced at
the rate tcpdump's full speed reached, for a comparison at one rate.

Files are written in the working directory (where a user's capture would go: a disk,
not tmpfs) and removed afterwards. Each capture first runs at trafgen's full speed,
then down the rate ladder (the pacer, BENCH_SECONDS of traffic per run) until a rate
is kept with zero drops in BENCH_REPEAT runs in a row (a run in which the pacer sent
less than 95% of the rate, on a loaded machine, does not count). Printed per capture: the highest zero-drop rate, and per run what was sent, kept, lost and the
drop counters (AF_XDP XDP_STATISTICS for dump, "dropped by kernel" for tcpdump), and
the capture's peak memory (sum of the proportional set size, PSS, of the process and
its children, sampled every 20 ms, and the main process's peak RSS, VmHWM).

How lost packets are counted: sent - packets in the file (or in dump's summary for
--quiet); the capture is told to stop after the number sent, and is stopped with
SIGINT when the generator is done and nothing has arrived for a second.

Background load: BENCH_LOAD=N runs N CPU hogs (busy loops, not pinned, nice 0) during
every run, so the capture shares its CPU as it would on a machine doing other work.

Transport: BENCH_TRANSPORT (auto, metadata, headroom or tail; unset: dump's default,
auto) is given to every dump capture as --transport, BENCH_PASS_TRANSPORT (auto,
metadata or fingerprint) to the pass one; each run prints the transport dump actually
used (its summary says).

CPU: each run also prints the capture's CPU time per packet kept (user + system time
of its process, all threads, sampled from /proc every 20 ms, from the moment its
program is attached), a figure that compares
captures and transports at the same offered rate even when the generator, not the
capture, is what limits the rate.

A fixed rate: BENCH_AT=RATE runs every capture paced at RATE pps, BENCH_REPEAT times,
after its full-speed run (no ladder), and the summary gives the median CPU per packet
there: the comparison of captures, transports or releases at one rate.

Environment: BENCH_MODES (comma list, default all five), BENCH_SECONDS (2),
BENCH_REPEAT (1), BENCH_FULL_PACKETS (1,000,000), BENCH_RATES (comma list of pps,
overrides the ladder), BENCH_DIR (where files go; default the working directory),
BENCH_LOAD (0).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

PY = sys.executable
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, NO_COLOR="1")
ENV.pop("XDPHINTS_DEV", None)
GEN_CPU, CAP_CPU = "0", "1"
MODES = tuple(os.environ.get("BENCH_MODES", "quiet,json,pcapng,tcpdump,pass").split(","))
SECONDS = float(os.environ.get("BENCH_SECONDS", "2"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "1"))
FULL_PACKETS = int(os.environ.get("BENCH_FULL_PACKETS", "1000000"))
RATES = tuple(int(r) for r in os.environ.get(
    "BENCH_RATES", "900000,800000,700000,600000,500000,400000,300000,250000,200000,150000,100000,50000,20000"
).split(","))
OUT_DIR = os.environ.get("BENCH_DIR", os.getcwd())
LOAD = int(os.environ.get("BENCH_LOAD", "0"))
AT = int(os.environ.get("BENCH_AT", "0"))
TRANSPORT = os.environ.get("BENCH_TRANSPORT", "")          # empty: dump's default
PASS_TRANSPORT = os.environ.get("BENCH_PASS_TRANSPORT", "")
ADDR, PEER_ADDR = "198.51.100.1", "198.51.100.2"
GEN_SHORT = 0.95      # a run whose generator sent slower than this share of the rate does not count
LABELS = {"quiet": "dump --quiet -j", "json": "dump -j > FILE", "pcapng": "dump -w FILE",
          "pass": "dump --pass --quiet -j",
          "tcpdump": "tcpdump -w FILE"}


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


def build_pacer(workdir: str) -> str:
    exe = os.path.join(workdir, "pacer")
    cc = shutil.which("cc") or shutil.which("clang") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("bench_dump needs a C compiler for bench/pacer.c")
    subprocess.run([cc, "-O2", "-o", exe, os.path.join(ROOT, "bench", "pacer.c")], check=True)
    return exe


def run_generator(s: Setup, conf: str, n: int, rate: Optional[int]) -> Tuple[float, subprocess.Popen]:
    """trafgen at full speed (rate None), else the pacer at `rate` pps."""
    if rate:
        cmd = [s.pacer, s.peer, s.frame.hex(), str(n), str(rate), str(max(32, rate * 160 // 10**6))]
    else:
        cmd = ["trafgen", "--dev", s.peer, "--conf", conf, "-P", "1", "-n", str(n), "-Q", "-C"]
    cmd = ["ip", "netns", "exec", s.peer_ns, "taskset", "-c", GEN_CPU] + cmd
    t0 = time.monotonic()
    return t0, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# --- memory -------------------------------------------------------------------------

def _tree(pid: int) -> List[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for f in glob.glob(f"/proc/{p}/task/*/children"):
            try:
                with open(f) as fh:
                    todo.extend(int(c) for c in fh.read().split())
            except OSError:
                pass
    return out


def _kb(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (/proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class MemoryPeak:
    """Samples the PSS of a process tree, its main process's VmHWM and CPU time until
    stopped."""

    def __init__(self, pid: int):
        self.pid, self.pss_kb, self.hwm_kb = pid, 0, 0
        self.cpu_s = self.cpu0 = _cpu_s(pid)     # from here on: start-up not counted
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            pss = sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in _tree(self.pid))
            self.pss_kb = max(self.pss_kb, pss)
            self.hwm_kb = max(self.hwm_kb, _kb(f"/proc/{self.pid}/status", "VmHWM:"))
            self.cpu_s = max(self.cpu_s, _cpu_s(self.pid))

    def stop(self) -> None:
        self._stop.set()
        self._t.join()


# --- one run ------------------------------------------------------------------------

def count_pcapng(path: str) -> int:
    n = 0
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        if blen < 12:
            break
        n += btype == 6
        off += blen
    return n


def count_pcap(path: str) -> int:
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return 0
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    n, off = 0, 24
    while off + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, off + 8)[0]
        off += 16 + incl
        n += off <= len(data)
    return n


def _wait_ready(s: Setup, p: subprocess.Popen, mode: str, errpath: str) -> None:
    t_end = time.monotonic() + 30
    while time.monotonic() < t_end:
        if p.poll() is not None:
            with open(errpath) as f:
                raise SystemExit(f"{mode} exited early: {f.read()}")
        if mode == "tcpdump":
            with open(errpath) as f:
                if "listening on" in f.read():
                    return
        elif "prog/xdp" in sh("ip", "link", "show", s.dev, ns=s.ns).stdout:
            return
        time.sleep(0.02)
    raise SystemExit(f"{mode} did not start")


class Hogs:
    """BENCH_LOAD busy loops for the length of one run (the machine's other work)."""

    def __enter__(self) -> "Hogs":
        self.procs = [subprocess.Popen([PY, "-c", "while True: pass"]) for _ in range(LOAD)]
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def run_once(s: Setup, conf: str, mode: str, rate: Optional[int], n: int) -> dict:
    """One generator run of n packets (at `rate` pps, or full speed) into the capture,
    with BENCH_LOAD CPU hogs running alongside."""
    with Hogs():
        return _run_once(s, conf, mode, rate, n)


def _run_once(s: Setup, conf: str, mode: str, rate: Optional[int], n: int) -> dict:
    fd, path = tempfile.mkstemp(prefix="xhbench-", dir=OUT_DIR)
    os.close(fd)
    err = tempfile.NamedTemporaryFile("w+", prefix="xhbench-err-")
    try:
        if mode == "tcpdump":
            cmd = ["tcpdump", "-i", s.dev, "-w", path, "-c", str(n), "-n"]
            stdout = subprocess.DEVNULL
        else:
            cmd = [PY, "-m", "xdphints_cli", "dump", "-d", s.dev, "-q", "0", "--count", str(n)]
            cmd += {"quiet": ["--quiet", "-j"], "json": ["-j"], "pcapng": ["-w", path],
                    "pass": ["--pass", "--quiet", "-j"]}[mode]
            transport = PASS_TRANSPORT if mode == "pass" else TRANSPORT
            cmd += ["--transport", transport] if transport else []
            stdout = open(path, "w") if mode in ("json", "quiet", "pass") else subprocess.DEVNULL
        rx_before = rx_packets(s)
        full = ["ip", "netns", "exec", s.ns, "taskset", "-c", CAP_CPU] + cmd
        # cwd: `python3 -m` would put the working directory first on sys.path
        cap = subprocess.Popen(full, stdout=stdout, stderr=err, env=ENV, cwd=ROOT)
        if stdout is not subprocess.DEVNULL:
            stdout.close()
        _wait_ready(s, cap, mode, err.name)
        mem = MemoryPeak(cap.pid)
        t0, gen = run_generator(s, conf, n, rate)
        gen_out, _ = gen.communicate(timeout=600)
        t_gen = time.monotonic() - t0
        if gen.returncode != 0:
            cap.send_signal(signal.SIGINT)
            cap.wait(timeout=60)
            raise SystemExit(f"generator failed ({gen.returncode}): {gen_out}")
        # stop once it is done, or when nothing has arrived for a second
        last, idle_since = -1, time.monotonic()
        while cap.poll() is None:
            size = os.path.getsize(path)
            if size != last:
                last, idle_since = size, time.monotonic()
            elif time.monotonic() - idle_since > 1.0 + (mode in ("quiet", "pass")) * 2:
                cap.send_signal(signal.SIGINT)
                cap.wait(timeout=60)
                break
            time.sleep(0.05)
        mem.stop()
        err.seek(0)
        errtext = err.read()
        drops: Dict[str, int] = {}
        transport = "-"
        m = re.search(r"^xdphints: transport (\S+)", errtext, re.M)
        if m:
            transport = m.group(1)
        if mode in ("quiet", "pass"):
            with open(path) as f:
                summary = json.loads(f.read().strip().splitlines()[-1])
            got = summary["packets"]
            transport = summary.get("transport", {}).get("name", "-")   # (releases before it)
            drops = {k: v for k, v in summary["xsk"].items() if k in ("rx-dropped", "rx-ring-full")}
            drops.update({k: v for k, v in summary.get("pass", {}).items() if "dropped" in k})
        elif mode == "json":
            with open(path, "rb") as f:
                got = sum(1 for _ in f)
        elif mode == "pcapng":
            got = count_pcapng(path)
        else:
            got = count_pcap(path)
            m = re.search(r"(\d+) packets? dropped by kernel", errtext)
            drops = {"dropped-by-kernel": int(m.group(1))} if m else {}
        if mode in ("json", "pcapng"):
            m = re.search(r"rx_dropped (\d+), rx_ring_full (\d+)", errtext)
            drops = {"rx-dropped": int(m.group(1)), "rx-ring-full": int(m.group(2))} if m else {}
            m = re.search(r"(\d+) packets, \d+ bytes", errtext)
            if m and int(m.group(1)) != got:
                raise SystemExit(f"{mode}: dump counted {m.group(1)} packets, file has {got}")
        if cap.returncode not in (0, -signal.SIGINT):
            raise SystemExit(f"{mode} failed ({cap.returncode}): {errtext}")
        return {"mode": mode, "transport": transport, "rate_asked": rate, "sent": n,
                "gen_pps": n / t_gen,
                "received": got, "lost": n - got, "drops": drops,
                "delivered": rx_packets(s) - rx_before,
                "pss_mb": mem.pss_kb / 1024, "hwm_mb": mem.hwm_kb / 1024,
                "cpu_ns": (mem.cpu_s - mem.cpu0) * 1e9 / max(got, 1),
                "file_mb": os.path.getsize(path) / 1e6}
    finally:
        err.close()
        os.unlink(path)


def show(r: dict) -> str:
    asked = f"pacer {r['rate_asked']:>9,} pps" if r["rate_asked"] else "trafgen full speed  "
    drops = ", ".join(f"{k} {v:,}" for k, v in r["drops"].items()) or "-"
    to_stack = f"delivered to the stack {r['delivered']:,}, " if r["mode"] == "pass" else ""
    via = f" via {r['transport']}" if r["mode"] != "tcpdump" else ""
    return (f"    {asked}: sent {r['sent']:>9,} at {r['gen_pps']:>9,.0f} pps | {to_stack}kept{via} "
            f"{r['received']:>9,}, lost {r['lost']:>9,} ({drops}) | cpu {r['cpu_ns']:,.0f} ns/pkt | "
            f"mem PSS {r['pss_mb']:.0f} MB, main RSS peak {r['hwm_mb']:.0f} MB")


def rx_packets(s: Setup) -> int:
    """The device's rx counter: what it delivered, to AF_XDP or to the stack."""
    return int(sh("cat", f"/sys/class/net/{s.dev}/statistics/rx_packets", ns=s.ns).stdout)


def load() -> str:
    return "load " + " ".join(open("/proc/loadavg").read().split()[:3])


def sustained(s: Setup, conf: str, mode: str) -> Tuple[dict, Optional[dict], List[dict]]:
    """(full-speed run, highest zero-drop run or None, all runs)."""
    full = run_once(s, conf, mode, None, FULL_PACKETS)
    print(show(full) + f" [{load()}]", flush=True)
    runs = [full]
    if AT:
        return full, None, runs
    if full["lost"] == 0:
        return full, full, runs
    for rate in RATES:
        ok = None
        for _ in range(REPEAT):
            r = run_once(s, conf, mode, rate, int(rate * SECONDS))
            runs.append(r)
            short = r["gen_pps"] < GEN_SHORT * rate
            print(show(r) + (" GENERATOR SHORT OF THE RATE: not counted" if short else "")
                  + f" [{load()}]", flush=True)
            if r["lost"] or short:
                ok = None
                break
            ok = r
        if ok is not None:
            return full, ok, runs
    return full, None, runs


def main() -> int:
    if os.geteuid() != 0:
        print("bench_dump needs root (network namespaces, BPF)", file=sys.stderr)
        return 1
    if "tcpdump" in MODES and not shutil.which("tcpdump"):
        print("tcpdump not found (Debian package tcpdump)", file=sys.stderr)
        return 1
    results = {}
    with Setup() as s, tempfile.NamedTemporaryFile("w", prefix="xhbench-", suffix=".cfg") as cfg, \
            tempfile.TemporaryDirectory(prefix="xhbench-") as work:
        s.pacer = build_pacer(work)
        s.frame = udp_frame(s.mac, s.peer_mac, PEER_ADDR, ADDR)
        cfg.write(trafgen_conf(s.frame))
        cfg.flush()
        print(f"veth {s.dev} <- {s.peer}; generator on CPU{GEN_CPU}, capture on CPU{CAP_CPU}; "
              f"74-byte frames; {FULL_PACKETS:,} at full speed, {SECONDS:g} s per rate, "
              f"{REPEAT} run(s) per rate; files in {OUT_DIR}; {LOAD} CPU hog(s) alongside; "
              f"--transport {TRANSPORT} (--pass: {PASS_TRANSPORT}) [{load()}]")
        for mode in MODES:
            print(f"{mode}: {LABELS[mode]}", flush=True)
            results[mode] = sustained(s, cfg.name, mode)

        if AT:
            matched = paced_at(s, cfg.name, AT, f"at BENCH_AT, {AT:,} pps, paced")
        else:
            matched = match_tcpdump(s, cfg.name, results)

    print()
    print("summary: highest offered rate kept with zero drops"
          + (f" ({REPEAT} runs in a row)" if REPEAT > 1 else ""))
    gen = max(r[0]["gen_pps"] for r in results.values())
    for mode, (full, ok, runs) in results.items():
        peak = max(r["pss_mb"] for r in runs)
        hwm = max(r["hwm_mb"] for r in runs)
        if AT:
            what = f"full speed ({full['gen_pps']:,.0f} pps) lost {full['lost']:,}"
        elif ok is full:
            what = f"full speed, {full['gen_pps']:,.0f} pps ({full['gen_pps'] / gen:.2f}x generator)"
        elif ok is not None:
            what = f"{ok['rate_asked']:,} pps asked ({ok['gen_pps']:,.0f} sent, steady)"
        else:
            what = f"none down to {min(RATES):,} pps"
        print(f"  {LABELS[mode]:<18} {what}; full speed lost {full['lost']:,} of "
              f"{full['sent']:,}; memory PSS peak {peak:.0f} MB, main RSS peak {hwm:.0f} MB")
    for mode, rate, runs in matched:
        lost = [r["lost"] for r in runs]
        short = sum(r["gen_pps"] < GEN_SHORT * rate for r in runs)
        cpu = statistics.median(r["cpu_ns"] for r in runs)
        where = f"BENCH_AT {rate:,} pps" if AT else f"tcpdump -w's full-speed rate ({rate:,} pps"
        print(f"  {LABELS[mode]:<18} at {where}, paced): lost "
              f"{', '.join(f'{n:,}' for n in lost)} in {len(runs)} run(s)"
              + (f" ({short} with the generator short of the rate)" if short else "")
              + f"; cpu median {cpu:,.0f} ns/pkt")
    print(f"  trafgen full speed: {gen:,.0f} pps [{load()}]")
    return 0


def match_tcpdump(s: Setup, conf: str, results: dict) -> List[Tuple[str, int, List[dict]]]:
    """When tcpdump -w kept every packet at trafgen's full speed, that speed is only the
    rate its own receive path let the generator reach (the stack's work runs on the
    generator's CPU): each dump capture then runs paced at that very rate, BENCH_REPEAT
    times, for a comparison at one rate."""
    if "tcpdump" not in results or results["tcpdump"][0]["lost"]:
        return []
    rate = int(results["tcpdump"][0]["gen_pps"]) // 1000 * 1000
    return paced_at(s, conf, rate, f"at tcpdump -w's full-speed rate, {rate:,} pps, paced",
                    skip=("tcpdump", "pass"))


def paced_at(s: Setup, conf: str, rate: int, heading: str,
             skip: Tuple[str, ...] = ()) -> List[Tuple[str, int, List[dict]]]:
    """Every capture but `skip` paced at `rate`, BENCH_REPEAT times."""
    out = []
    print(f"{heading}:", flush=True)
    for mode in MODES:
        if mode in skip:
            continue
        runs = []
        for _ in range(REPEAT):
            r = run_once(s, conf, mode, rate, int(rate * SECONDS))
            runs.append(r)
            print(show(r) + f" [{LABELS[mode]}] [{load()}]", flush=True)
        out.append((mode, rate, runs))
    return out


if __name__ == "__main__":
    sys.exit(main())
