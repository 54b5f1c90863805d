"""Shared fixtures: throwaway network namespaces with veth pairs on the real kernel.

Privileged tests carry the `privileged` marker. Outside CI they skip with a reason
when not root; under CI=true they fail instead, so a skip can never hide them.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import List

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
IS_ROOT = os.geteuid() == 0
_counter = itertools.count()
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_runtest_setup(item):
    if item.get_closest_marker("privileged") and not IS_ROOT:
        reason = "needs root (CAP_NET_ADMIN, CAP_BPF) to create network namespaces"
        if IN_CI:
            pytest.fail(f"privileged test would be skipped under CI: {reason}")
        pytest.skip(reason)


def need_tool(*names: str) -> str:
    """The path of the first tool; skip when any is missing, but fail under CI, whose
    .ci/run installs them, so a skip there can never hide a test."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        msg = f"{', '.join(missing)} not installed (.ci/run installs it)"
        if IN_CI:
            pytest.fail(f"would skip under CI: {msg}")
        pytest.skip(msg)
    return shutil.which(names[0])


def need_metadata_area() -> None:
    """Skip when this kernel refuses bpf_xdp_adjust_meta in XDP programs, with the
    verifier's own words: a property of the kernel (some 6.18 builds), not of
    privileges, so it may skip under CI too. A probe that cannot tell fails."""
    from xdphints_cli.hints.metadata_area import kernel_metadata_area

    area = kernel_metadata_area()
    if area.status == "refused":
        pytest.skip(f"this kernel refuses the XDP metadata area: {area.reason}")
    assert area.status == "accepted", area


def sh(*args: str, check: bool = True, ns: str = "") -> subprocess.CompletedProcess:
    """Run a command (inside namespace `ns` when given) and return its result."""
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def unique_name(prefix: str) -> str:
    """Unique per test process and call, so parallel or leftover runs never collide."""
    return f"{prefix}{os.getpid()}-{next(_counter)}"


@dataclass
class VethPair:
    """`dev` in namespace `ns` is the device under test; `peer` in `peer_ns` sends traffic."""

    ns: str
    peer_ns: str
    dev: str = "xh0"
    peer: str = "xh1"
    addr: str = "192.0.2.1"
    peer_addr: str = "192.0.2.2"
    addr6: str = "2001:db8::1"
    peer_addr6: str = "2001:db8::2"
    namespaces: List[str] = field(default_factory=list)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh(*args, check=check, ns=self.ns)

    def run_peer(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh(*args, check=check, ns=self.peer_ns)

    def ifindex(self) -> int:
        return int(self.run("cat", f"/sys/class/net/{self.dev}/ifindex").stdout)


def make_veth_pair(rx_queues: int = 1, tx_queues: int = 1) -> VethPair:
    ns, peer_ns = unique_name("xdph-t"), unique_name("xdph-p")
    pair = VethPair(ns=ns, peer_ns=peer_ns)
    try:
        for name in (ns, peer_ns):
            sh("ip", "netns", "add", name)
            pair.namespaces.append(name)
        sh("ip", "-n", ns, "link", "add", pair.dev,
           "numrxqueues", str(rx_queues), "numtxqueues", str(tx_queues),
           "type", "veth", "peer", "name", pair.peer, "netns", peer_ns,
           "numrxqueues", str(tx_queues), "numtxqueues", str(rx_queues))
        for n, dev, a, a6 in ((ns, pair.dev, pair.addr, pair.addr6),
                              (peer_ns, pair.peer, pair.peer_addr, pair.peer_addr6)):
            sh("ip", "-n", n, "addr", "add", f"{a}/24", "dev", dev)
            sh("ip", "-n", n, "addr", "add", f"{a6}/64", "dev", dev, "nodad")
            sh("ip", "-n", n, "link", "set", dev, "up")
            sh("ip", "-n", n, "link", "set", "lo", "up")
    except BaseException:
        remove_veth_pair(pair)
        raise
    return pair


def remove_veth_pair(pair: VethPair) -> None:
    for name in pair.namespaces:
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def veth():
    """A veth pair across two fresh namespaces, removed afterwards even on failure."""
    pair = make_veth_pair()
    try:
        yield pair
    finally:
        remove_veth_pair(pair)


@pytest.fixture
def veth_factory():
    """Make veth pairs with chosen queue counts: veth_factory(rx_queues=4)."""
    made: List[VethPair] = []

    def make(**kw) -> VethPair:
        pair = make_veth_pair(**kw)
        made.append(pair)
        return pair

    try:
        yield make
    finally:
        for pair in made:
            remove_veth_pair(pair)


NO_CAPS = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]  # root without any capability


def xdphints(*args: str, ns: str = "", unprivileged: bool = False, env: dict = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a fresh process (inside namespace `ns`, as nobody if asked)."""
    cmd = [sys.executable, "-m", "xdphints_cli", *args]
    if unprivileged:
        cmd = NO_CAPS + cmd
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    full_env = dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT)
    full_env.pop("XDPHINTS_DEV", None)
    full_env.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=120)
