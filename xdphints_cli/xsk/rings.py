"""The four AF_XDP rings as memoryviews over their mmaps.

Each ring is a single-producer/single-consumer queue: a u32 producer index, a u32
consumer index, a u32 flags word and `size` (power of two) entries; indices run
freely and wrap at 2**32, the slot is index & (size - 1).

Memory ordering: the kernel publishes with smp_store_release/smp_load_acquire. From
Python we can only do plain loads and stores through memoryviews (each one a
separate C call, so the compiler does not reorder them), and we rely on the CPU not
reordering them either. That holds on x86 (TSO: loads are not reordered with older
loads, stores not with older stores), which is what consumer "read producer, then
read descriptors" and producer "write entries, then bump producer" need. On weakly
ordered CPUs (arm64, riscv) a barrier would be required that pure Python cannot emit;
this code is correct on x86_64 only and may, rarely, see stale descriptors elsewhere.
"""

from __future__ import annotations

import mmap
import socket
from typing import Optional, Tuple

from xdphints_cli.xsk._sys import ADDR_SIZE, XDP_DESC_SIZE, XDP_RING_NEED_WAKEUP, RingOffsets

MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0x8000)
_MASK32 = 0xFFFFFFFF


class Ring:
    """One mmapped ring. `entries` is a memoryview of the entry area cast to u64
    ('Q'): fill/completion entries are one u64 each; an RX/TX descriptor is two
    (addr at 2*slot; `words` ('I') has its len at 4*slot + 2)."""

    def __init__(self, sock: socket.socket, pgoff: int, off: RingOffsets, size: int,
                 entry_size: int):
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring size must be a power of two, not {size}")
        self.size = size
        self.mask = size - 1
        self.entry_size = entry_size
        self._mm: Optional[mmap.mmap] = mmap.mmap(
            sock.fileno(), off.desc + size * entry_size,
            flags=mmap.MAP_SHARED | MAP_POPULATE, prot=mmap.PROT_READ | mmap.PROT_WRITE,
            offset=pgoff)
        base = memoryview(self._mm)
        self._views = [base]
        self.producer = self._view(base, off.producer, 4, "I")
        self.consumer = self._view(base, off.consumer, 4, "I")
        self.flags = self._view(base, off.flags, 4, "I") if off.flags >= 0 else None
        self.entries = self._view(base, off.desc, size * entry_size, "Q")
        self.words = self._view(base, off.desc, size * entry_size, "I")

    def _view(self, base: memoryview, off: int, n: int, fmt: str) -> memoryview:
        v = base[off:off + n].cast(fmt)
        self._views.append(v)
        return v

    def needs_wakeup(self) -> bool:
        return bool(self.flags is not None and self.flags[0] & XDP_RING_NEED_WAKEUP)

    def close(self) -> None:
        """Release every view, then unmap (the mapping pins the socket otherwise)."""
        for v in reversed(self._views):
            v.release()
        self._views.clear()
        self.producer = self.consumer = self.flags = self.entries = self.words = None  # type: ignore
        if self._mm is not None:
            self._mm.close()
            self._mm = None


class ProducerRing(Ring):
    """User space produces (fill, TX)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.cached_prod = self.producer[0]

    def free(self) -> int:
        return self.size - ((self.cached_prod - self.consumer[0]) & _MASK32)

    def push_addrs(self, src: memoryview, first: int, n: int, src_mask: int, stride: int) -> None:
        """Copy n u64 addresses into the ring (caller checked free() >= n) and publish.
        `src` is a u64 view; element k is src[stride * ((first + k) & src_mask)]."""
        prod = self.cached_prod
        ents = self.entries
        while n:
            s = first & src_mask
            d = prod & self.mask
            k = min(n, src_mask + 1 - s, self.size - d)
            ents[d:d + k] = src[stride * s:stride * (s + k):stride]
            first += k
            prod += k
            n -= k
        self.cached_prod = prod & _MASK32
        self.producer[0] = self.cached_prod  # publish after the entries (x86 TSO)

    def push_addr_list(self, addrs) -> int:
        """Push as many addresses from a sequence as fit; returns how many."""
        n = min(len(addrs), self.free())
        prod = self.cached_prod
        ents, mask = self.entries, self.mask
        for i in range(n):
            ents[(prod + i) & mask] = addrs[i]
        self.cached_prod = (prod + n) & _MASK32
        self.producer[0] = self.cached_prod
        return n


class ConsumerRing(Ring):
    """The kernel produces (RX, completion)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.cached_cons = self.consumer[0]

    def available(self) -> int:
        return (self.producer[0] - self.cached_cons) & _MASK32

    def peek(self, max_n: int) -> Tuple[int, int]:
        """(count, first index) of entries ready to read, without consuming them."""
        n = self.available()
        return (n if n < max_n else max_n), self.cached_cons

    def release(self, n: int) -> None:
        self.cached_cons = (self.cached_cons + n) & _MASK32
        self.consumer[0] = self.cached_cons


def open_ring(sock: socket.socket, kind: str, off: RingOffsets, size: int) -> Ring:
    """kind: 'rx', 'tx', 'fill' or 'completion'."""
    from xdphints_cli.xsk import _sys
    pgoff, entry, cls = {
        "rx": (_sys.XDP_PGOFF_RX_RING, XDP_DESC_SIZE, ConsumerRing),
        "tx": (_sys.XDP_PGOFF_TX_RING, XDP_DESC_SIZE, ProducerRing),
        "fill": (_sys.XDP_UMEM_PGOFF_FILL_RING, ADDR_SIZE, ProducerRing),
        "completion": (_sys.XDP_UMEM_PGOFF_COMPLETION_RING, ADDR_SIZE, ConsumerRing),
    }[kind]
    return cls(sock, pgoff, off, size, entry)
