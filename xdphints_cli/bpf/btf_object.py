"""Kernel side of BTF objects: load a blob (BPF_BTF_LOAD), fetch a loaded one's bytes.

Parsing and writing BTF lives in xdphints_cli.btf; this module only moves blobs.
"""

from __future__ import annotations

import errno
import struct

from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.fd import Fd
from xdphints_cli.bpf.info import BTF_INFO_SIZE, btf_fd_by_id, obj_info, prog_fd_by_id, prog_info
from xdphints_cli.bpf.verifier_log import log_text as _log_text, reason_line
from xdphints_cli.errors import KernelError, NotFoundError

BTF_LOG_SIZE = 1 << 16


def load_btf(blob: bytes, log_level: int = 1) -> Fd:
    """BPF_BTF_LOAD -> owned fd. On failure, the kernel's BTF log tail is in the error."""
    a = sc.Attr().ptr(0, bytes(blob)).u32(16, len(blob))
    ret = sc.bpf_raw(sc.BPF_BTF_LOAD, a)
    if ret >= 0:
        return Fd(ret)
    err = -ret
    if err == errno.EPERM or not log_level:
        raise sc.error("loading BTF", err)
    log = bytearray(BTF_LOG_SIZE)
    a.ptr(8, log).u32(20, len(log)).u32(24, log_level)
    ret = sc.bpf_raw(sc.BPF_BTF_LOAD, a)
    a.release()
    if ret >= 0:
        return Fd(ret)
    if -ret != errno.ENOSPC:
        err = -ret
    raise KernelError("loading BTF", err, reason_line(_log_text(bytes(log))) or None)


def btf_blob_from_fd(fd: int) -> bytes:
    """The raw BTF of an open BTF object: ask the size, then fetch."""
    first = obj_info(fd, BTF_INFO_SIZE, "reading BTF info")
    size = struct.unpack_from("=I", first, 8)[0]
    data = bytearray(size)
    req = bytearray(BTF_INFO_SIZE)
    addr, keep = sc.address_of(data)
    struct.pack_into("=QI", req, 0, addr, size)
    obj_info(fd, BTF_INFO_SIZE, "reading BTF data", info=req)
    del keep
    return bytes(data)


def btf_blob(btf_id: int) -> bytes:
    """The raw BTF of a loaded BTF object by id (1 is vmlinux)."""
    with btf_fd_by_id(btf_id) as fd:
        return btf_blob_from_fd(fd.fd)


def prog_btf_blob(prog_id: int) -> bytes:
    """The BTF a program was loaded with; NotFoundError if it has none."""
    with prog_fd_by_id(prog_id) as fd:
        btf_id = prog_info(fd.fd).btf_id
    if not btf_id:
        raise NotFoundError(f"program id {prog_id} was loaded without BTF")
    return btf_blob(btf_id)
