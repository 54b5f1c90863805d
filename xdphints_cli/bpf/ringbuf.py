"""`RingBuffer`: a BPF_MAP_TYPE_RINGBUF map and its consumer, read directly.

The kernel's layout (kernel/bpf/ringbuf.c, as libbpf's ringbuf.c reads it):
- mmap offset 0, one page, read-write: the consumer position (u64 at 0);
- mmap offset one page, read-only: the producer position (u64 at 0) on that page,
  then the data area mapped twice in a row, so a record that wraps reads as one piece;
- each record: an 8-byte header {u32 len (bit 31 BUSY: still being written, bit 30
  DISCARD), u32 page offset}, then len bytes, the whole rounded up to 8.
Positions only grow; data offset = position & (size - 1).

`batch()` takes every record committed since the last call in one pass and moves the
consumer position once, after the caller is done with them (the next call, or
`release()`). The map fd polls readable when records wait: `wait()` uses epoll.
"""

from __future__ import annotations

import mmap
import select
import struct
from typing import List, Optional

from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.maps import Map

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HEADER_SIZE = 8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def _round_pow2(n: int) -> int:
    page = mmap.PAGESIZE
    size = page
    while size < n:
        size <<= 1
    return size


class RingBuffer:
    """Owns the map and its two mappings. Use as a context manager."""

    def __init__(self, size: int, name: str = "xdphints_ring"):
        """`size` bytes of data area, rounded up to a power of two pages."""
        self.size = _round_pow2(size)
        self.mask = self.size - 1
        self.map = Map.create(sc.BPF_MAP_TYPE_RINGBUF, 0, 0, self.size, name=name)
        page = mmap.PAGESIZE
        try:
            self._cons = mmap.mmap(self.map.fd, page, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            self._prod = mmap.mmap(self.map.fd, page + 2 * self.size, mmap.MAP_SHARED,
                                   mmap.PROT_READ, offset=page)
        except OSError as e:
            self.map.close()
            raise sc.error("mapping the ring buffer", e.errno or 12) from None
        self._data = memoryview(self._prod)[page:]
        self._pending: Optional[int] = None
        self._epoll = select.epoll()
        self._epoll.register(self.map.fd, select.EPOLLIN)

    @property
    def fd(self) -> int:
        return self.map.fd

    def _consumer(self) -> int:
        return _U64.unpack_from(self._cons, 0)[0]

    def _producer(self) -> int:
        return _U64.unpack_from(self._prod, 0)[0]

    def available(self) -> int:
        """Bytes committed or being written and not yet consumed."""
        return self._producer() - (self._pending if self._pending is not None else self._consumer())

    def wait(self, timeout_ms: int) -> bool:
        """Block until records wait (or timeout); True when there are some."""
        if self.available():
            return True
        try:
            self._epoll.poll(timeout_ms / 1000.0, 1)
        except InterruptedError:
            pass
        return self.available() > 0

    def batch(self, limit: Optional[int] = None) -> List[memoryview]:
        """Every committed record (at most `limit`), as views into the ring, valid until
        the next batch() or release(). Discarded records are skipped; a record still
        being written ends the batch (it is taken next time)."""
        self.release()
        data, mask = self._data, self.mask
        cons = self._consumer()
        prod = self._producer()
        out: List[memoryview] = []
        unpack = _U32.unpack_from
        while cons < prod and (limit is None or len(out) < limit):
            off = cons & mask
            hdr = unpack(data, off)[0]
            if hdr & BUSY_BIT:
                break
            n = hdr & ~(BUSY_BIT | DISCARD_BIT)
            if not hdr & DISCARD_BIT:
                out.append(data[off + HEADER_SIZE:off + HEADER_SIZE + n])
            cons += (n + HEADER_SIZE + 7) & ~7
        self._pending = cons
        return out

    def release(self) -> None:
        """Hand the last batch's space back to the producer."""
        if self._pending is not None:
            _U64.pack_into(self._cons, 0, self._pending)
            self._pending = None

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        self._pending = None
        self._data.release()
        for m in (self._cons, self._prod):
            try:
                m.close()
            except BufferError:   # a caller still holds a record view: the GC frees it
                pass
        self.map.close()

    def __enter__(self) -> "RingBuffer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

