"""A pcapng writer for captured XDP frames and their hints.

Format: draft-ietf-opsawg-pcapng. Always little-endian, one section, one
Interface Description Block per add_interface() (per device, or per device and
queue), nanosecond timestamps (if_tsresol 9).

The RX hash goes into epb_hash. The spec's algorithm octets are 0 2s complement,
1 XOR, 2 CRC32, 3 MD-5, 4 SHA-1, 5 Toeplitz; bpf_xdp_metadata_rx_hash() gives the
NIC's RSS hash, which is Toeplitz by default on every driver that implements the
kfunc, so HASH_TOEPLITZ is the default; a caller that knows the device's RSS hfunc
(ethtool -x) can pass HASH_XOR or HASH_CRC32. The 32-bit value is written in the
section's byte order (little-endian), as DPDK's pcapng writer does.

A capture writes a whole batch of packets at once: epb_options() and epb_frame()
give the bytes around each packet's data, which a bulk writer caches (the options
of a flow's hints do not change from packet to packet) and joins with the packet
bytes into one write_blocks() call. write_packet() is the one-packet form of the same.
"""

from __future__ import annotations

import errno
import os
import platform
import struct
from typing import BinaryIO, List, Optional, Tuple, Union

from xdphints_cli.errors import KernelError, NotFoundError, PermissionDeniedError

LINKTYPE_ETHERNET = 1

BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_HARDWARE = 2
SHB_OS = 3
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
EPB_FLAGS = 2
EPB_HASH = 3
EPB_QUEUE = 6

HASH_2COMP = 0
HASH_XOR = 1
HASH_CRC32 = 2
HASH_MD5 = 3
HASH_SHA1 = 4
HASH_TOEPLITZ = 5

TSRESOL_NS = 9

_SHB_BODY = struct.Struct("<IHHq")  # BOM, major, minor, section length
_IDB_BODY = struct.Struct("<HHI")  # linktype, reserved, snaplen
_EPB_HEAD = struct.Struct("<IIIIIII")  # type, length, if id, ts hi, ts lo, caplen, origlen
_U32 = struct.Struct("<I")
_OPT_HEAD = struct.Struct("<HH")
_OPT_U32 = struct.Struct("<HHI")
_OPT_HASH32 = struct.Struct("<HHBI3x")  # 1 + 4 value bytes, padded to 8
_END_OF_OPTS = _OPT_HEAD.pack(OPT_ENDOFOPT, 0)
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by length % 4
_MAX_U32 = 0xFFFFFFFF
_MAX_U64 = 0xFFFFFFFFFFFFFFFF


def _option(code: int, value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError(f"pcapng option {code} is {len(value)} bytes; at most 65535")
    return _OPT_HEAD.pack(code, len(value)) + value + _PAD[len(value) & 3]


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return _U32.pack(block_type) + _U32.pack(total) + body + _U32.pack(total)


def _options(opts: List[bytes]) -> bytes:
    # The end-of-options marker is only written when there are options before it.
    return b"".join(opts) + _END_OF_OPTS if opts else b""


def epb_options(hash: Optional[int] = None, queue: Optional[int] = None,
                comment: Optional[str] = None, hash_algorithm: int = HASH_TOEPLITZ) -> bytes:
    """The options of an Enhanced Packet Block (with the end-of-options marker when
    there are any): epb_hash, epb_queue, opt_comment. Bulk writers build these once
    per distinct value and reuse the bytes."""
    parts = []
    if hash is not None:
        if hash_algorithm in (HASH_TOEPLITZ, HASH_CRC32):
            parts.append(_OPT_HASH32.pack(EPB_HASH, 5, hash_algorithm, hash))
        else:
            # The other algorithms' sizes are not fixed by the spec: the value is
            # written as the smallest little-endian byte string that holds it.
            n = max(1, (hash.bit_length() + 7) // 8)
            parts.append(_option(EPB_HASH, bytes((hash_algorithm,)) + hash.to_bytes(n, "little")))
    if queue is not None:
        parts.append(_OPT_U32.pack(EPB_QUEUE, 4, queue))
    if comment:
        text = comment.encode()
        if len(text) > 0xFFFF:
            raise ValueError("pcapng comment longer than 65535 bytes")
        parts.append(_option(OPT_COMMENT, text))
    return _options(parts)


def epb_frame(if_id: int, ts_ns: int, caplen: int, orig_len: int, options: bytes = b"") -> Tuple[bytes, bytes]:
    """(head, tail): the bytes of an Enhanced Packet Block before and after its
    `caplen` packet bytes, so that head + data + tail is the whole block."""
    if not 0 <= ts_ns <= _MAX_U64:
        raise ValueError(f"timestamp {ts_ns} ns is outside 0..2^64-1")
    pad = _PAD[caplen & 3]
    total = 32 + caplen + len(pad) + len(options)
    return (_EPB_HEAD.pack(BT_EPB, total, if_id, ts_ns >> 32, ts_ns & _MAX_U32, caplen, orig_len),
            pad + options + _U32.pack(total))


def _os_error(what: str, e: OSError) -> Exception:
    err = e.errno or errno.EIO
    if err == errno.ENOENT:
        return NotFoundError(f"{what}: no such file or directory")
    if err in (errno.EACCES, errno.EPERM):
        return PermissionDeniedError(f"{what}: permission denied")
    return KernelError(what, err)


class PcapngWriter:
    """Writes one pcapng section to a path (owned, closed on exit) or a binary file (left open)."""

    def __init__(
        self,
        file_or_path: Union[str, "os.PathLike[str]", BinaryIO],
        *,
        application: str = "xdphints",
        buffer_size: int = 1 << 20,
    ):
        self._owned = isinstance(file_or_path, (str, bytes, os.PathLike))
        self.name = os.fspath(file_or_path) if self._owned else getattr(file_or_path, "name", "<stream>")
        self._snaplens: List[int] = []
        if self._owned:
            try:
                self._file: Optional[BinaryIO] = open(file_or_path, "wb", buffering=buffer_size)
            except OSError as e:
                raise _os_error(f"cannot create {self.name}", e) from None
        else:
            self._file = file_or_path  # type: ignore[assignment]
        opts = [_option(SHB_USERAPPL, application.encode())]
        uname = platform.uname()
        opts.append(_option(SHB_OS, f"{uname.system} {uname.release}".encode()))
        opts.append(_option(SHB_HARDWARE, uname.machine.encode()))
        # Section length -1: unknown, so readers never try to skip the section.
        self._write(_block(BT_SHB, _SHB_BODY.pack(BYTE_ORDER_MAGIC, 1, 0, -1) + _options(opts)))

    def _write(self, data: bytes) -> None:
        if self._file is None:
            raise ValueError(f"{self.name} is closed")
        try:
            self._file.write(data)
        except OSError as e:
            raise _os_error(f"write {self.name}", e) from None

    def add_interface(
        self,
        name: str,
        description: Optional[str] = None,
        *,
        linktype: int = LINKTYPE_ETHERNET,
        snaplen: int = 0,
    ) -> int:
        """Describe an interface (a device, or a device's queue); returns its id for write_packet.

        snaplen 0 means no limit; longer packets are cut to it.
        """
        opts = [_option(IF_NAME, name.encode("utf-8", "surrogateescape"))]   # its bytes, as tcpdump writes them
        if description:
            opts.append(_option(IF_DESCRIPTION, description.encode()))
        opts.append(_option(IF_TSRESOL, bytes((TSRESOL_NS,))))
        self._write(_block(BT_IDB, _IDB_BODY.pack(linktype, 0, snaplen) + _options(opts)))
        self._snaplens.append(snaplen)
        return len(self._snaplens) - 1

    def write_packet(
        self,
        if_id: int,
        ts_ns: int,
        data: bytes,
        orig_len: Optional[int] = None,
        hash: Optional[int] = None,
        queue: Optional[int] = None,
        comment: Optional[str] = None,
        hash_algorithm: int = HASH_TOEPLITZ,
    ) -> None:
        """One Enhanced Packet Block. ts_ns is ns since the epoch (UTC): the HW RX
        timestamp mapped to system time when there is one, else the receive time."""
        if not 0 <= if_id < len(self._snaplens):
            raise ValueError(f"unknown pcapng interface id {if_id}")
        snaplen = self._snaplens[if_id]
        caplen = len(data)
        if orig_len is None:
            orig_len = caplen
        elif orig_len < caplen or orig_len > _MAX_U32:
            raise ValueError(f"original length {orig_len} is below the captured {caplen} or too large")
        if snaplen and caplen > snaplen:
            data = data[:snaplen]
            caplen = snaplen
        head, tail = epb_frame(if_id, ts_ns, caplen, orig_len,
                               epb_options(hash, queue, comment, hash_algorithm))
        self._write(b"".join((head, data, tail)))

    def write_blocks(self, data) -> None:
        """Blocks built by the caller with epb_frame() (bulk writers: one write per batch)."""
        self._write(data)

    def flush(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as e:
                raise _os_error(f"write {self.name}", e) from None

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self.flush()
        finally:
            f, self._file = self._file, None
            if self._owned:
                try:
                    f.close()
                except OSError as e:
                    raise _os_error(f"close {self.name}", e) from None

    def __enter__(self) -> "PcapngWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = [
    "PcapngWriter",
    "epb_frame",
    "epb_options",
    "LINKTYPE_ETHERNET",
    "HASH_2COMP",
    "HASH_XOR",
    "HASH_CRC32",
    "HASH_MD5",
    "HASH_SHA1",
    "HASH_TOEPLITZ",
]
