"""README.md's sample output is what the tool prints today: each `$ xdphints ...` block
with output is run on devices named as in the README (a veth pair v0/v1 and one
xh0/xh1 with rx-vlan off, each in a throwaway namespace of its own) and compared
line by line, after the numbers a machine picks (ifindex, BTF ids) are normalised."""

from __future__ import annotations

import os
import re
import shlex
import sys

import pytest

from conftest import REPO_ROOT, sh, unique_name, xdphints

pytestmark = pytest.mark.privileged

# the dump sample: its own veth pair (xa, and xb that sends), four UDP packets
DUMP_SAMPLE = "xdphints dump -d xa --queue 0 --count 4"
# runs until stopped: its own test makes the sample's events
MONITOR_SAMPLE = "xdphints -n lab monitor xh0"
SEND = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 42625))
for port in (4000, 4001, 4000, 4001):
    s.sendto(b"x" * 7, ("192.0.2.1", port))
"""


def samples(commands_of: str = "xdphints ") -> list:
    """(command, expected output lines) for each `$ xdphints` line (or `$ cat`, for the
    files a sample reads) of README.md that is followed by output."""
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        blocks = re.findall(r"^```\n(.*?)^```$", f.read(), re.M | re.S)
    out = []
    for block in blocks:
        current = None
        for line in block.splitlines():
            if line.startswith("$ "):
                current = (line[2:], [])
                out.append(current)
            elif current is not None:
                current[1].append(line)
    # a blank line parts two samples in one block
    out = [(cmd, lines[:-1] if lines and lines[-1] == "" else lines) for cmd, lines in out]
    return [(cmd, lines) for cmd, lines in out if cmd.startswith(commands_of) and lines]


def readme_file(name: str) -> str:
    """The text of a file a sample reads, as its `$ cat NAME` shows it."""
    (lines,) = [lines for cmd, lines in samples("cat ") if cmd == f"cat {name}"]
    return "\n".join(lines) + "\n"


def normalise(lines, area_status=None, transport=None) -> list:
    """Numbers this machine picks become N; the kfunc table's id column is N at any
    width. The metadata-area line depends on the kernel (6.18.44 builds refuse the
    area, others accept it): when `area_status` (the README's) differs from the
    status printed, only that the line is there is compared."""
    out = []
    for line in lines:
        line = line.rstrip()
        line = re.sub(r"\b(ifindex|btf-id|program id|BTF object id) \d+", r"\1 N", line)
        line = re.sub(r"\bid \d+", "id N", line)     # monitor's program and BTF object ids
        # dump: receive times, MACs, hash values, the rate
        line = re.sub(r"^\d\d:\d\d:\d\d\.\d{6} ", "T ", line)
        line = re.sub(r"\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b", "MAC", line)
        line = re.sub(r"rx-hash 0x[0-9a-f]+", "rx-hash H", line)
        # the rate while receiving shows from the second batch on: as the run's timing falls
        line = re.sub(r" in [\d.]+ s \([\d.]+ pps(; [\d.]+ pps while receiving)?\)", " in S s (R pps)", line)
        line = re.sub(r"^ *(\d+|ID)  ", "N  ", line)
        m = re.match(r"^(\S+: )?(metadata-area|  metadata-area) +(\S+)", line)
        if m and area_status is not None and m.group(3) != area_status:
            line = (m.group(1) or "") + m.group(2) + " (another kernel's verdict)"
        # dump's transport under auto is the kernel's choice too (headroom where it refuses the area)
        m = re.search(r"transport (\S+) \(auto: [^)]*\)", line)
        if m and transport is not None and m.group(1) != transport:
            line = line.replace(m.group(0), "transport (another kernel's choice)")
        out.append(line)
    return out


@pytest.fixture(scope="module")
def namespaces():
    """v0/v1 up (the show samples), xh0/xh1 up with rx-vlan off on xh0 (the check
    sample); lo up in both, as on a host."""
    made = {}
    try:
        for key, (a, b) in (("v", ("v0", "v1")), ("xh", ("xh0", "xh1"))):
            ns = unique_name(f"xdph-rm{key}")
            sh("ip", "netns", "add", ns)
            made[key] = ns
            sh("ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b)
            for dev in ("lo", a, b):
                sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ethtool", "-K", "xh0", "rxvlan", "off", ns=made["xh"])
        yield made
    finally:
        for ns in made.values():
            sh("ip", "netns", "del", ns, check=False)


def test_readme_lists_samples():
    cmds = [cmd for cmd, _ in samples()]
    for cmd in ("xdphints show v0", "xdphints show", "xdphints btf --kfuncs", DUMP_SAMPLE):
        assert cmd in cmds, cmd


def test_readme_dump_sample_is_what_dump_prints():
    """Four packets to ports 4000 and 4001 from 192.0.2.2:42625, as the sample has
    them: the start line, the packets (stdout), the summary."""
    from conftest import VethPair
    from test_dump import finish, start_dump

    pair = VethPair(ns=unique_name("xdph-rma"), peer_ns=unique_name("xdph-rmb"), dev="xa", peer="xb")
    try:
        for ns in (pair.ns, pair.peer_ns):
            sh("ip", "netns", "add", ns)
            pair.namespaces.append(ns)
        sh("ip", "-n", pair.ns, "link", "add", "xa", "type", "veth", "peer", "name", "xb", "netns", pair.peer_ns)
        for ns, dev, addr in ((pair.ns, "xa", pair.addr), (pair.peer_ns, "xb", pair.peer_addr)):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        p = start_dump(pair, *shlex.split(DUMP_SAMPLE)[2:])
        pair.run_peer(sys.executable, "-c", SEND)
        _, out, err = finish(p)
    finally:
        for ns in pair.namespaces:
            sh("ip", "netns", "del", ns, check=False)
    assert p.returncode == 0, err
    err_lines = err.splitlines()
    got = err_lines[:1] + out.splitlines() + err_lines[1:]
    (expected,) = [lines for cmd, lines in samples() if cmd == DUMP_SAMPLE]
    transport = re.search(r"transport (\S+) \(auto", "\n".join(expected)).group(1)
    assert normalise(got, transport=transport) == normalise(expected, transport=transport), \
        f"README.md's sample of `{DUMP_SAMPLE}` is stale"


def test_readme_monitor_sample_is_what_monitor_prints(tmp_path):
    """The events of the sample, made as it shows them (rx-vlan turned off, a program
    with a hints struct attached, the device renamed), with monitor running."""
    from event_helpers import build_hints_pass
    from test_monitor import Monitor

    (expected,) = [lines for cmd, lines in samples() if cmd == MONITOR_SAMPLE]
    obj = build_hints_pass(tmp_path)
    ns = unique_name("xdph-rmm")
    sh("ip", "netns", "add", ns)
    monitor = None
    try:
        sh("ip", "-n", ns, "link", "add", "xh0", "type", "veth", "peer", "name", "xh1")
        for dev in ("lo", "xh0", "xh1"):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        monitor = Monitor(ns, *shlex.split(MONITOR_SAMPLE)[4:])
        monitor.ready("xh0")
        steps = ((["ethtool", "-K", "xh0", "rxvlan", "off"], "offloads:"),
                 (["ip", "link", "set", "dev", "xh0", "xdpdrv", "obj", obj, "sec", "xdp"], "xdp attach"),
                 (["ip", "link", "set", "dev", "xh0", "name", "xh9"], "renamed"))
        for cmd, word in steps:
            sh(*cmd, ns=ns)
            assert monitor.until(lambda line: word in line), (cmd, monitor.seen)
        code, err = monitor.stop()
    finally:
        if monitor is not None:
            monitor.kill()
        sh("ip", "netns", "del", ns, check=False)
    assert code == 0, err
    got = [line.rstrip("\n") for line in monitor.seen]
    assert normalise(got) == normalise(expected), f"README.md's sample of `{MONITOR_SAMPLE}` is stale"


def _filtered(words, lines):
    """What `| grep WORD` after the command would leave."""
    return [line for line in lines if words[0] in line] if words else lines


@pytest.mark.parametrize("cmd,expected", [s for s in samples() if s[0] not in (DUMP_SAMPLE, MONITOR_SAMPLE)],
                         ids=lambda v: str(v)[:40])
def test_readme_sample_is_what_the_tool_prints(cmd, expected, namespaces, tmp_path):
    command, _, grep = cmd.split(";")[0].partition(" | grep ")
    words = shlex.split(command)[1:]
    if words[:2] == ["-n", "lab"]:      # the namespace the test made stands for lab
        words = words[2:]
    if "hints.toml" in words:           # the file as the sample's `cat` shows it
        (tmp_path / "hints.toml").write_text(readme_file("hints.toml"))
        words[words.index("hints.toml")] = str(tmp_path / "hints.toml")
    ns = namespaces["xh" if "xh0" in cmd or any("xh0" in line for line in expected) else "v"]
    res = xdphints(*words, ns=ns)
    if "apply" in words:                # the check sample wants xh0's rx-vlan off again
        sh("ethtool", "-K", "xh0", "rxvlan", "off", ns=ns)
    got = _filtered(shlex.split(grep), res.stdout.splitlines())
    if cmd.endswith("; echo $?"):
        got.append(str(res.returncode))
    else:
        assert res.returncode == 0, res.stderr
    status = next((m.group(1) for ln in expected for m in [re.search(r"metadata-area +(\S+)", ln)] if m), None)
    assert normalise(got, status) == normalise(expected, status), f"README.md's sample of `{cmd}` is stale"
