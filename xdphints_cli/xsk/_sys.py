"""AF_XDP uapi (include/uapi/linux/if_xdp.h) and the calls Python's socket module
cannot make: bind() with a sockaddr_xdp, and the RX queue count of a device."""

from __future__ import annotations

import ctypes
import os
import socket
import struct
from typing import Dict, NamedTuple, Optional

AF_XDP = 44
SOL_XDP = 283

# sockopts
XDP_MMAP_OFFSETS = 1
XDP_RX_RING = 2
XDP_TX_RING = 3
XDP_UMEM_REG = 4
XDP_UMEM_FILL_RING = 5
XDP_UMEM_COMPLETION_RING = 6
XDP_STATISTICS = 7
XDP_OPTIONS = 8
XDP_OPTIONS_ZEROCOPY = 1

# sockaddr_xdp.sxdp_flags
XDP_SHARED_UMEM = 1 << 0
XDP_COPY = 1 << 1
XDP_ZEROCOPY = 1 << 2
XDP_USE_NEED_WAKEUP = 1 << 3
XDP_USE_SG = 1 << 4

# xdp_umem_reg.flags
XDP_UMEM_UNALIGNED_CHUNK_FLAG = 1 << 0
XDP_UMEM_TX_SW_CSUM = 1 << 1
XDP_UMEM_TX_METADATA_LEN = 1 << 2

XDP_RING_NEED_WAKEUP = 1 << 0

# mmap page offsets
XDP_PGOFF_RX_RING = 0
XDP_PGOFF_TX_RING = 0x80000000
XDP_UMEM_PGOFF_FILL_RING = 0x100000000
XDP_UMEM_PGOFF_COMPLETION_RING = 0x180000000

XDP_PACKET_HEADROOM = 256  # what the kernel puts before the data in copy mode

UMEM_REG_FMT = "=QQIIII"     # struct xdp_umem_reg, 32 bytes (pass all of it)
SOCKADDR_XDP_FMT = "=HHIII"  # struct sockaddr_xdp, 16 bytes
XDP_DESC_SIZE = 16           # struct xdp_desc {u64 addr; u32 len; u32 options;}
ADDR_SIZE = 8                # fill/completion ring entries are u64 addresses

STAT_FIELDS = ("rx_dropped", "rx_invalid_descs", "tx_invalid_descs", "rx_ring_full",
               "rx_fill_ring_empty_descs", "tx_ring_empty_descs")


class RingOffsets(NamedTuple):
    producer: int
    consumer: int
    desc: int
    flags: int


def mmap_offsets(sock: socket.socket) -> Dict[str, RingOffsets]:
    """getsockopt(XDP_MMAP_OFFSETS): {'rx', 'tx', 'fr', 'cr'} -> RingOffsets.
    Kernels before 5.4 return 96 bytes without the flags field (flags = -1 then)."""
    raw = sock.getsockopt(SOL_XDP, XDP_MMAP_OFFSETS, 128)
    out = {}
    if len(raw) >= 128:
        for i, name in enumerate(("rx", "tx", "fr", "cr")):
            out[name] = RingOffsets(*struct.unpack_from("=4Q", raw, 32 * i))
    else:
        for i, name in enumerate(("rx", "tx", "fr", "cr")):
            p, c, d = struct.unpack_from("=3Q", raw, 24 * i)
            out[name] = RingOffsets(p, c, d, -1)
    return out


def statistics(sock: socket.socket) -> Dict[str, int]:
    raw = sock.getsockopt(SOL_XDP, XDP_STATISTICS, 8 * len(STAT_FIELDS))
    n = len(raw) // 8
    return dict(zip(STAT_FIELDS, struct.unpack_from(f"={n}Q", raw, 0)))


def options(sock: socket.socket) -> int:
    return struct.unpack("=I", sock.getsockopt(SOL_XDP, XDP_OPTIONS, 4))[0]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.bind.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
_libc.bind.restype = ctypes.c_int


def bind(fd: int, ifindex: int, queue: int, flags: int, shared_umem_fd: int = 0) -> int:
    """bind(2) with a sockaddr_xdp; returns 0 or -errno."""
    addr = struct.pack(SOCKADDR_XDP_FMT, AF_XDP, flags, ifindex, queue, shared_umem_fd)
    if _libc.bind(fd, addr, len(addr)) == 0:
        return 0
    return -ctypes.get_errno()


def ifname(ifindex: int) -> str:
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return f"ifindex {ifindex}"


# --- RX queue count (rtnetlink RTM_GETLINK, IFLA_NUM_RX_QUEUES) --------------------------
# sysfs (/sys/class/net/DEV/queues) shows the netns that mounted /sys, which is not the
# one we are in after setns(); rtnetlink always answers for the current netns.
_RTM_NEWLINK, _RTM_GETLINK = 16, 18
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_IFLA_NUM_RX_QUEUES = 32


def rx_queue_count(ifindex: int) -> Optional[int]:
    """Number of RX queues of `ifindex` in the current netns, or None if unknown."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as nl:
            nl.settimeout(1.0)
            body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, ifindex, 0, 0)
            msg = struct.pack("=IHHII", 16 + len(body), _RTM_GETLINK, _NLM_F_REQUEST, 1, 0) + body
            nl.send(msg)
            data = nl.recv(65536)
    except OSError:
        return None
    if len(data) < 16:
        return None
    length, mtype = struct.unpack_from("=IH", data, 0)
    if mtype != _RTM_NEWLINK:
        return None
    off = 16 + 16
    end = min(length, len(data))
    while off + 4 <= end:
        alen, atype = struct.unpack_from("=HH", data, off)
        if alen < 4:
            break
        if atype & 0x3FFF == _IFLA_NUM_RX_QUEUES and alen >= 8:
            return struct.unpack_from("=I", data, off + 4)[0]
        off += (alen + 3) & ~3
    return None


def sysfs_rx_queue_count(dev: str) -> Optional[int]:
    """Count of /sys/class/net/DEV/queues/rx-* (valid only when /sys is this netns's)."""
    try:
        return sum(1 for n in os.listdir(f"/sys/class/net/{dev}/queues") if n.startswith("rx-"))
    except OSError:
        return None

