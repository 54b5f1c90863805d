"""AF_XDP uapi (include/uapi/linux/if_xdp.h) and the calls Python's socket module
cannot make: bind() with a sockaddr_xdp."""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import Dict, NamedTuple

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

