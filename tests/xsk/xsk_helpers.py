"""Test helpers: the test hints program, a UDP sender run in the peer namespace."""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from typing import Dict, Iterator, List, Tuple

# one kfunc-id scanner for both test directories
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bpf"))
from bpftest_helpers import KFUNCS, vmlinux_func_ids  # noqa: E402,F401

from xdphints_cli.process import netns
from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.link import XdpLink
from xdphints_cli.bpf.maps import Map
from xdphints_cli.bpf.prog import Program
from xdphints_cli.xsk.socket import XskSocket
from xdphints_cli.bpf.insn import (
    JGT, JNE, R0, R1, R2, R3, R4, R6, R7, XDP_PASS, Label, add64_imm,
    call_helper, call_kfunc, exit_, jmp_imm, jmp_reg, ld_map_fd, ldx_mem, mov64_imm,
    mov64_reg, st_mem, stx_mem,
)


# struct meta (32 bytes) the program writes right before the packet:
#   u64 timestamp; u32 hash; u32 hash_type; s32 ts_ret; s32 hash_ret; s32 vlan_ret;
#   be16 vlan_proto; u16 vlan_tci
META_FMT = "<QIIiiiHH"
META_LEN = struct.calcsize(META_FMT)
UDP_PORT = 9999
HELPER_REDIRECT_MAP = 51


def transport():
    """Where the test program puts its struct: the metadata area, or the headroom on a
    kernel that refuses bpf_xdp_adjust_meta (what dump's auto picks)."""
    from xdphints_cli.hints.transport import choose

    return choose("auto")[0]


def packet_offset(t) -> int:
    """Bytes in front of the packet at a descriptor's address."""
    return t.locate([0], [META_LEN], META_LEN)[1][0]


def hints_program(xskmap_fd: int, ids: Dict[str, int], port: int = UDP_PORT, t=None):
    """IPv4/UDP to `port` (IHL 5): make room for META_LEN bytes (the transport `t`,
    default transport()), fill them from the three kfuncs, redirect to the XSKMAP by
    rx_queue_index; everything else PASS."""
    t = t or transport()
    return [
        mov64_reg(R6, R1),
        # parse: eth + ipv4 (ihl 5) + udp dport
        ldx_mem(4, R2, R6, 0),              # data
        ldx_mem(4, R3, R6, 4),              # data_end
        mov64_reg(R4, R2), add64_imm(R4, 42),
        jmp_reg(JGT, R4, R3, "pass"),
        ldx_mem(2, R4, R2, 12), jmp_imm(JNE, R4, 0x0008, "pass"),   # h_proto == htons(0x800)
        ldx_mem(1, R4, R2, 14), jmp_imm(JNE, R4, 0x45, "pass"),     # version 4, ihl 5
        ldx_mem(1, R4, R2, 23), jmp_imm(JNE, R4, 17, "pass"),       # UDP
        ldx_mem(2, R4, R2, 36),
        jmp_imm(JNE, R4, ((port & 0xFF) << 8) | (port >> 8), "pass"),  # dport
        # room for the struct: r2 points at it
        *t.reserve(META_LEN, "pass", "pass"),
        mov64_reg(R7, R2),
        st_mem(8, R7, 0, 0), st_mem(4, R7, 8, 0), st_mem(4, R7, 12, 0), st_mem(4, R7, 28, 0),
        mov64_reg(R1, R6), mov64_reg(R2, R7),
        call_kfunc(ids["bpf_xdp_metadata_rx_timestamp"]),
        stx_mem(4, R7, R0, 16),
        mov64_reg(R1, R6), mov64_reg(R2, R7), add64_imm(R2, 8),
        mov64_reg(R3, R7), add64_imm(R3, 12),
        call_kfunc(ids["bpf_xdp_metadata_rx_hash"]),
        stx_mem(4, R7, R0, 20),
        mov64_reg(R1, R6), mov64_reg(R2, R7), add64_imm(R2, 28),
        mov64_reg(R3, R7), add64_imm(R3, 30),
        call_kfunc(ids["bpf_xdp_metadata_rx_vlan_tag"]),
        stx_mem(4, R7, R0, 24),
        # redirect
        ldx_mem(4, R2, R6, 16),             # rx_queue_index
        ld_map_fd(R1, xskmap_fd),
        mov64_imm(R3, XDP_PASS),
        call_helper(HELPER_REDIRECT_MAP),
        exit_(),
        Label("pass"),
        mov64_imm(R0, XDP_PASS),
        exit_(),
    ]


SENDER = """
import socket, sys
dst, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
srcports = [int(p) for p in sys.argv[4].split(',')]
socks = []
for sp in srcports:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('', sp))
    socks.append(s)
for i in range(count):
    for s in socks:
        s.sendto(b'x' * 32, (dst, port))
"""


def send_udp(pair, count: int, src_ports=(40000,), port: int = UDP_PORT) -> None:
    """Send `count` datagrams per source port from the peer namespace."""
    pair.run_peer(sys.executable, "-c", SENDER, pair.addr, str(port), str(count),
                  ",".join(str(p) for p in src_ports))


def dev_mac(pair) -> str:
    return pair.run("cat", f"/sys/class/net/{pair.dev}/address").stdout.strip()


def static_neigh(pair) -> None:
    """Let the peer reach `addr` without ARP (ARP might be tagged or redirected)."""
    pair.run_peer("ip", "neigh", "replace", pair.addr, "lladdr", dev_mac(pair),
                  "dev", pair.peer, "nud", "permanent")


@contextlib.contextmanager
def hints_setup(pair, queue: int = 0, **xsk_kw) -> Iterator[XskSocket]:
    """Dev-bound hints program + XSKMAP + XskSocket on (pair.dev, queue) + XDP link,
    all created inside the test namespace and closed afterwards in reverse order."""
    ids = vmlinux_func_ids(KFUNCS)
    ifindex = pair.ifindex()
    t = transport()
    with contextlib.ExitStack() as stack:
        with netns.inside(pair.ns):
            xmap = stack.enter_context(Map.create(sc.BPF_MAP_TYPE_XSKMAP, 4, 4, 64, name="xh_xsks"))
            prog = stack.enter_context(Program.load(
                hints_program(xmap.fd, ids, t=t), ifindex=ifindex,
                flags=sc.BPF_F_XDP_DEV_BOUND_ONLY, name="xh_hints"))
            xsk = stack.enter_context(XskSocket(ifindex, queue, **xsk_kw))
            xsk.test_transport = t
            xmap.update_u32(queue, xsk.fd)
            stack.enter_context(XdpLink.attach(prog.fd, ifindex))
        yield xsk


def receive(xsk: XskSocket, want: int, idle_ms: int = 500, cap: int = 100000) -> List[Tuple]:
    """Read until `want` packets arrived and then one idle poll passes (so extra
    packets would be seen too), or until the ring stays idle. Returns
    [(meta tuple, udp sport, udp dport, frame len)]."""
    got: List[Tuple] = []
    while len(got) < cap:
        if not xsk.poll(idle_ms if len(got) < want else 50):
            if len(got) >= want or not xsk.poll(idle_ms * 4):
                break
        n, first = xsk.rx_batch(64)
        for k in range(n):
            desc, dlen = xsk.desc(first + k)
            (meta_at,), (addr,), (length,) = xsk.test_transport.locate([desc], [dlen], META_LEN)
            meta = struct.unpack_from(META_FMT, xsk.umem, meta_at)
            sport, dport = struct.unpack_from("!HH", xsk.umem, addr + 34)
            got.append((meta, sport, dport, length))
        xsk.rx_release(n)
    return got
