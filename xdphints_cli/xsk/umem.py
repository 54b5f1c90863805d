"""`Umem`: the packet buffer area shared with the kernel (an anonymous mmap)."""

from __future__ import annotations

import ctypes
import mmap
import socket
import struct

from xdphints_cli.xsk import _sys


class Umem:
    """`frames` chunks of `frame_size` bytes in one anonymous shared mapping.

    Frame i starts at UMEM offset i * frame_size. In copy mode the kernel writes a
    packet at chunk + XDP_PACKET_HEADROOM (256) + `headroom`, and the RX metadata the
    XDP program reserved sits right before that address.
    """

    def __init__(self, frames: int = 4096, frame_size: int = 4096, headroom: int = 0,
                 flags: int = 0, tx_metadata_len: int = 0):
        page = mmap.PAGESIZE
        if frame_size < 2048 or frame_size > page or frame_size & (frame_size - 1):
            raise ValueError(f"frame size must be a power of two in [2048, {page}]")
        if frames <= 0:
            raise ValueError("need at least one frame")
        self.frames = frames
        self.frame_size = frame_size
        self.headroom = headroom
        self.flags = flags
        self.tx_metadata_len = tx_metadata_len
        self.size = frames * frame_size
        self._mm = mmap.mmap(-1, self.size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS,
                             prot=mmap.PROT_READ | mmap.PROT_WRITE)
        anchor = ctypes.c_char.from_buffer(self._mm)
        self.address = ctypes.addressof(anchor)
        del anchor  # drop the export so the mapping can be closed later
        self.view = memoryview(self._mm)

    @property
    def mapping(self) -> mmap.mmap:
        """The mapping itself: its slices are bytes, made about a third faster than a
        memoryview's slice (a new view object) is, which counts at a million a second."""
        return self._mm

    def register(self, sock: socket.socket) -> None:
        """setsockopt(XDP_UMEM_REG) with the whole 32-byte struct xdp_umem_reg."""
        reg = struct.pack(_sys.UMEM_REG_FMT, self.address, self.size, self.frame_size,
                          self.headroom, self.flags, self.tx_metadata_len)
        sock.setsockopt(_sys.SOL_XDP, _sys.XDP_UMEM_REG, reg)

    def frame_addr(self, i: int) -> int:
        return i * self.frame_size

    @property
    def closed(self) -> bool:
        return self._mm.closed

    def close(self) -> None:
        """Unmap. Views handed out (frame()/metadata() slices) must be released first;
        if one is still alive the mapping is left to the garbage collector."""
        if self.view is not None:
            self.view.release()
            self.view = None  # type: ignore[assignment]
        if not self._mm.closed:
            try:
                self._mm.close()
            except BufferError:
                pass

    def __enter__(self) -> "Umem":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


MIN_FRAMES = 64


def memlock_frames(wanted: int, frame_size: int, sockets: int = 1) -> int:
    """How many frames each of `sockets` UMEMs may have. The kernel counts a UMEM's
    pages against RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK (ENOBUFS past
    it); the soft limit is first raised to the hard one. Half of it is used, as
    the same user may hold locked memory elsewhere. A power of two, at most `wanted`;
    PermissionDeniedError when not even MIN_FRAMES fit."""
    import resource

    from xdphints_cli.process import caps
    from xdphints_cli.errors import PermissionDeniedError

    if caps.has("CAP_IPC_LOCK"):
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft != hard and _raise_memlock(hard):
        soft = hard
    if soft == resource.RLIM_INFINITY:
        return wanted
    frames = 1
    while frames * 2 <= min(wanted, soft // 2 // frame_size // max(sockets, 1)):
        frames *= 2
    if frames < MIN_FRAMES:
        need = MIN_FRAMES * frame_size * max(sockets, 1) * 2 // 1024
        raise PermissionDeniedError(
            f"the AF_XDP packet buffer (UMEM) is locked memory: needs CAP_IPC_LOCK, or "
            f"RLIMIT_MEMLOCK (ulimit -l) of at least {need} KiB; it is {soft // 1024} KiB")
    return frames


def _raise_memlock(hard: int) -> bool:
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))
        return True
    except (OSError, ValueError):
        return False
