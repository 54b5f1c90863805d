"""`XskSocket`: one AF_XDP socket bound to (ifindex, queue), with its own UMEM,
fill ring and RX ring (TX and completion rings optional).

Typical use (after loading an XDP program that redirects into an XSKMAP):

    with XskSocket(ifindex, queue=0) as xsk:
        xskmap.update_u32(0, xsk.fd)
        while xsk.poll(100):
            n, first = xsk.rx_batch(64)
            for k in range(n):
                addr, length = xsk.desc(first + k)
                frame = xsk.frame(addr, length)   # hints: where the transport put them
                ...
            xsk.rx_release(n)      # returns the frames to the fill ring
(or rx_detach(first, n) at once and return_frames(first, n) when done with them).

For bulk consumers, `rx_addrs` (u64 view: addr of slot s at 2*s) and `rx_words`
(u32 view: len of slot s at 4*s + 2) are the descriptor ring itself, and `umem` is a
memoryview of all packet memory; slot = index & rx_mask.
"""

from __future__ import annotations

import errno
import select
import socket as _socket
import time
from typing import Dict, Optional, Tuple

from xdphints_cli.errors import KernelError, NotFoundError, NotSupportedError, PermissionDeniedError
from xdphints_cli.xsk import _sys
from xdphints_cli.xsk.rings import ConsumerRing, ProducerRing, Ring, open_ring
from xdphints_cli.xsk.umem import Umem

BIND_BUSY_RETRY_S = 0.5   # a queue just released can stay busy for ~30 ms
BIND_BUSY_STEP_S = 0.005


def _pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


class QueueBusyError(KernelError):
    """EBUSY from bind: another AF_XDP socket (or a zero-copy user) owns the queue."""


class XskSocket:
    def __init__(self, ifindex: int, queue: int = 0, *, frames: int = 4096,
                 frame_size: int = 4096, headroom: int = 0, rx_size: Optional[int] = None,
                 zerocopy: bool = False, need_wakeup: bool = True, tx_size: int = 0,
                 bind_retry_s: float = BIND_BUSY_RETRY_S):
        """Create, set up and bind. Copy mode by default (XDP_COPY); `zerocopy=True`
        asks for XDP_ZEROCOPY (NotSupportedError if the driver cannot). The fill ring
        holds every frame (its size is the next power of two >= frames), so frames
        released after RX always fit back in."""
        self.ifindex = ifindex
        self.queue = queue
        self._sock: Optional[_socket.socket] = None
        self._rings: Dict[str, Ring] = {}
        self.umem_area: Optional[Umem] = None
        self._poll: Optional[select.poll] = None
        try:
            self._setup(frames, frame_size, headroom, rx_size, zerocopy, need_wakeup,
                        tx_size, bind_retry_s)
        except BaseException:
            self.close()
            raise

    # --- setup ----------------------------------------------------------------------
    def _setup(self, frames, frame_size, headroom, rx_size, zerocopy, need_wakeup,
               tx_size, bind_retry_s) -> None:
        try:
            self._sock = _socket.socket(_sys.AF_XDP, _socket.SOCK_RAW, 0)
        except PermissionError:
            raise PermissionDeniedError("creating AF_XDP socket: needs CAP_NET_RAW (run as root)") from None
        except OSError as e:
            if e.errno in (errno.EAFNOSUPPORT, errno.EINVAL):
                raise NotSupportedError("this kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)") from None
            raise KernelError("creating AF_XDP socket", e.errno or errno.EIO) from None
        sock = self._sock
        fill_size = _pow2_at_least(frames)
        rx_size = _pow2_at_least(rx_size or frames)
        self.umem_area = Umem(frames, frame_size, headroom)
        try:
            self.umem_area.register(sock)
            sock.setsockopt(_sys.SOL_XDP, _sys.XDP_UMEM_FILL_RING, fill_size)
            # bind() insists on a completion ring for the UMEM owner, even without TX.
            sock.setsockopt(_sys.SOL_XDP, _sys.XDP_UMEM_COMPLETION_RING, _pow2_at_least(tx_size or 1))
            sock.setsockopt(_sys.SOL_XDP, _sys.XDP_RX_RING, rx_size)
            if tx_size:
                sock.setsockopt(_sys.SOL_XDP, _sys.XDP_TX_RING, _pow2_at_least(tx_size))
            off = _sys.mmap_offsets(sock)
        except OSError as e:
            raise KernelError("setting up AF_XDP socket", e.errno or errno.EIO) from None
        self.fill: ProducerRing = open_ring(sock, "fill", off["fr"], fill_size)  # type: ignore
        self._rings["fill"] = self.fill
        self.rx: ConsumerRing = open_ring(sock, "rx", off["rx"], rx_size)  # type: ignore
        self._rings["rx"] = self.rx
        if tx_size:
            n = _pow2_at_least(tx_size)
            self._rings["tx"] = open_ring(sock, "tx", off["tx"], n)
            self._rings["completion"] = open_ring(sock, "completion", off["cr"], n)
        # every frame goes to the kernel up front
        fs = frame_size
        pushed = self.fill.push_addr_list(range(0, frames * fs, fs))
        assert pushed == frames
        flags = _sys.XDP_ZEROCOPY if zerocopy else _sys.XDP_COPY
        if need_wakeup:
            flags |= _sys.XDP_USE_NEED_WAKEUP
        self._bind(flags, bind_retry_s)
        self.zerocopy = bool(_sys.options(sock) & _sys.XDP_OPTIONS_ZEROCOPY)
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        # hot-path aliases
        self.rx_mask = self.rx.mask
        self.rx_addrs = self.rx.entries
        self.rx_words = self.rx.words
        self.umem = self.umem_area.view
        # the frame addresses of detached descriptors, by RX ring slot (rx_detach)
        self._held = memoryview(bytearray(8 * rx_size)).cast("Q")

    def _bind(self, flags: int, retry_s: float) -> None:
        deadline = time.monotonic() + retry_s
        while True:
            ret = _sys.bind(self._sock.fileno(), self.ifindex, self.queue, flags)
            if ret != -errno.EBUSY or time.monotonic() >= deadline:
                break
            time.sleep(BIND_BUSY_STEP_S)
        if ret == 0:
            return
        err = -ret
        dev = _sys.ifname(self.ifindex)
        what = f"binding AF_XDP socket to {dev} queue {self.queue}"
        if err == errno.EINVAL:
            from xdphints_cli.device.queues import active_rx_queues_by_index

            rxq = active_rx_queues_by_index(self.ifindex)
            if rxq is not None and self.queue >= rxq.count:
                raise NotFoundError(f"{rxq.describe(dev)}; queue {self.queue} is not one of them")
        if err == errno.ENODEV:
            raise NotFoundError(f"{what}: no such device (ifindex {self.ifindex})")
        if err == errno.EOPNOTSUPP and flags & _sys.XDP_ZEROCOPY:
            raise NotSupportedError(f"{what}: the driver of {dev} has no zero-copy AF_XDP "
                                    "support (use copy mode)")
        if err == errno.EBUSY:
            raise QueueBusyError(what, err, "queue in use by another AF_XDP socket")
        if err == errno.EPERM:
            raise PermissionDeniedError(f"{what}: needs CAP_NET_RAW (run as root)")
        raise KernelError(what, err)

    # --- properties -----------------------------------------------------------------------
    @property
    def fd(self) -> int:
        if self._sock is None:
            raise ValueError("socket closed")
        return self._sock.fileno()

    def fileno(self) -> int:
        return self.fd

    @property
    def closed(self) -> bool:
        return self._sock is None

    # --- RX ---------------------------------------------------------------------------------
    def poll(self, timeout_ms: int = -1) -> bool:
        """Wait until the RX ring has descriptors (True) or the timeout passes (False).
        poll(2) also kicks the kernel when the fill ring has NEED_WAKEUP set."""
        if self.rx.available():
            return True
        if self.fill.needs_wakeup():
            self._poll.poll(0)
        try:
            self._poll.poll(timeout_ms)
        except InterruptedError:
            pass
        return self.rx.available() > 0

    def rx_batch(self, max_n: int = 64) -> Tuple[int, int]:
        """(count, first): up to max_n received descriptors, indices first..first+count-1
        (slot = index & rx_mask). Nothing is consumed until rx_release(count)."""
        return self.rx.peek(max_n)

    def desc(self, index: int) -> Tuple[int, int]:
        """(addr, len) of the RX descriptor at ring index `index`."""
        s = index & self.rx_mask
        return self.rx_addrs[2 * s], self.rx_words[4 * s + 2]

    def frame(self, addr: int, length: int) -> memoryview:
        """The packet bytes (a view into the UMEM; release it before close())."""
        return self.umem[addr:addr + length]

    def rx_release(self, n: int) -> None:
        """Consume n descriptors from the RX ring and hand their frames back to the
        kernel through the fill ring (bulk memoryview copies, no per-packet objects)."""
        if not n:
            return
        if n > self.rx.available():
            raise ValueError(f"releasing {n} descriptors, only {self.rx.available()} received")
        first = self.rx.cached_cons
        self.fill.push_addrs(self.rx_addrs, first, n, self.rx_mask, 2)
        self.rx.release(n)

    def rx_detach(self, first: int, n: int) -> None:
        """Consume the n descriptors from `first` (what rx_batch gave) at once, so the
        kernel can fill their RX ring slots again while the caller still works on the
        frames; the frames stay the caller's until return_frames(first, n). Without
        this a batch being processed holds its ring slots: a full-ring batch leaves
        the kernel no room at all until it is done."""
        if n > self.rx.available():
            raise ValueError(f"detaching {n} descriptors, only {self.rx.available()} received")
        held, ents, mask = self._held, self.rx_addrs, self.rx_mask
        s = first & mask
        k = min(n, mask + 1 - s)
        held[s:s + k] = ents[2 * s:2 * (s + k):2]
        if k < n:
            held[0:n - k] = ents[0:2 * (n - k):2]
        self.rx.release(n)

    def return_frames(self, first: int, n: int) -> None:
        """Hand the frames of rx_detach(first, n) back to the kernel (fill ring)."""
        if n:
            self.fill.push_addrs(self._held, first, n, self.rx_mask, 1)

    def refill(self) -> int:
        """Kick the kernel if the fill ring asks for a wakeup. Frames are returned by
        rx_release() already (the fill ring holds all frames), so nothing is pending;
        returns the number of free fill slots."""
        if self.fill.needs_wakeup():
            self._poll.poll(0)
        return self.fill.free()

    def statistics(self) -> Dict[str, int]:
        """XDP_STATISTICS: rx_dropped, rx_invalid_descs, tx_invalid_descs, rx_ring_full,
        rx_fill_ring_empty_descs, tx_ring_empty_descs."""
        try:
            return _sys.statistics(self._sock)
        except OSError as e:
            raise KernelError("reading AF_XDP statistics", e.errno or errno.EIO) from None

    # --- teardown -----------------------------------------------------------------------------
    def close(self) -> None:
        """Unmap rings (they pin the socket), close the socket, unmap the UMEM."""
        self.rx_addrs = self.rx_words = self.umem = self._held = None  # type: ignore[assignment]
        for ring in self._rings.values():
            ring.close()
        self._rings.clear()
        if self._poll is not None and self._sock is not None:
            try:
                self._poll.unregister(self._sock.fileno())
            except (KeyError, ValueError):
                pass
        self._poll = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.umem_area is not None:
            self.umem_area.close()
            self.umem_area = None

    def __enter__(self) -> "XskSocket":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else f"fd={self._sock.fileno()}"
        return f"XskSocket(ifindex={self.ifindex}, queue={self.queue}, {state})"
