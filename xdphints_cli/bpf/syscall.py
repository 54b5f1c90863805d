"""Raw bpf(2): the syscall through ctypes, `union bpf_attr` packing, and constants.

Numbers were checked against the running 6.18 kernel's BTF (enums) and
include/uapi/linux/bpf.h (#defines). Nothing here knows about programs or maps as
objects; the owners in prog.py, maps.py, link.py and btf.py build on this.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct
from typing import List, Optional, Tuple, Union

from xdphints_cli.errors import KernelError, PermissionDeniedError

# --- syscall number -------------------------------------------------------------
_NR_BPF_BY_MACHINE = {
    "x86_64": 321, "amd64": 321,
    "aarch64": 280, "arm64": 280,
    "riscv64": 280, "loongarch64": 280,  # asm-generic numbering
}
NR_BPF = _NR_BPF_BY_MACHINE.get(platform.machine().lower())

# sizeof(union bpf_attr) on 6.18 is 168. The kernel accepts a larger or smaller size
# as long as the bytes it does not know are zero, so we always pass the whole thing.
ATTR_SIZE = 168

# --- enum bpf_cmd -----------------------------------------------------------------
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_PROG_LOAD = 5
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_TEST_RUN = 10
BPF_PROG_GET_NEXT_ID = 11
BPF_MAP_GET_NEXT_ID = 12
BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
BPF_BTF_LOAD = 18
BPF_BTF_GET_FD_BY_ID = 19
BPF_BTF_GET_NEXT_ID = 23
BPF_LINK_CREATE = 28
BPF_LINK_UPDATE = 29
BPF_LINK_GET_FD_BY_ID = 30
BPF_LINK_GET_NEXT_ID = 31
BPF_LINK_DETACH = 34

# --- enum bpf_prog_type (index = value; names as bpftool prints them) -------------
PROG_TYPE_NAMES = (
    "unspec", "socket_filter", "kprobe", "sched_cls", "sched_act", "tracepoint",
    "xdp", "perf_event", "cgroup_skb", "cgroup_sock", "lwt_in", "lwt_out",
    "lwt_xmit", "sock_ops", "sk_skb", "cgroup_device", "sk_msg", "raw_tracepoint",
    "cgroup_sock_addr", "lwt_seg6local", "lirc_mode2", "sk_reuseport",
    "flow_dissector", "cgroup_sysctl", "raw_tracepoint_writable", "cgroup_sockopt",
    "tracing", "struct_ops", "ext", "lsm", "sk_lookup", "syscall", "netfilter",
)
BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_SCHED_CLS = 3
BPF_PROG_TYPE_SCHED_ACT = 4
BPF_PROG_TYPE_XDP = 6

# --- enum bpf_map_type ------------------------------------------------------------
MAP_TYPE_NAMES = (
    "unspec", "hash", "array", "prog_array", "perf_event_array", "percpu_hash",
    "percpu_array", "stack_trace", "cgroup_array", "lru_hash", "lru_percpu_hash",
    "lpm_trie", "array_of_maps", "hash_of_maps", "devmap", "sockmap", "cpumap",
    "xskmap", "sockhash", "cgroup_storage", "reuseport_sockarray",
    "percpu_cgroup_storage", "queue", "stack", "sk_storage", "devmap_hash",
    "struct_ops", "ringbuf", "inode_storage", "task_storage", "bloom_filter",
    "user_ringbuf", "cgrp_storage", "arena",
)
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_DEVMAP = 14
BPF_MAP_TYPE_XSKMAP = 17
BPF_MAP_TYPE_RINGBUF = 27

# --- enum bpf_attach_type (the ones we use) -----------------------------------------
BPF_XDP = 37
BPF_TCX_INGRESS = 46
BPF_TCX_EGRESS = 47

# --- enum bpf_link_type -----------------------------------------------------------
LINK_TYPE_NAMES = (
    "unspec", "raw_tracepoint", "tracing", "cgroup", "iter", "netns", "xdp",
    "perf_event", "kprobe_multi", "struct_ops", "netfilter", "tcx",
    "uprobe_multi", "netkit", "sockmap",
)
BPF_LINK_TYPE_TRACING = 2  # also freplace (BPF_PROG_TYPE_EXT) links, as libxdp's dispatcher uses
BPF_LINK_TYPE_XDP = 6
BPF_LINK_TYPE_TCX = 11

# --- flags --------------------------------------------------------------------------
BPF_F_STRICT_ALIGNMENT = 1 << 0
BPF_F_XDP_HAS_FRAGS = 1 << 5
BPF_F_XDP_DEV_BOUND_ONLY = 1 << 6  # 6.3+: required by the RX metadata kfuncs
BPF_F_RDONLY = 1 << 3
BPF_F_WRONLY = 1 << 4
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
BPF_OBJ_NAME_LEN = 16

# XDP link flags (XDP_FLAGS_* from if_link.h)
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3


def type_name(table: tuple, value: int) -> str:
    """'xdp' for prog type 6; 'type 99' for a value newer than our table."""
    return table[value] if 0 <= value < len(table) else f"type {value}"


def type_value(table: tuple, name: str) -> int:
    """Inverse of type_name: 6 for 'xdp' (case-insensitive, BPF_PROG_TYPE_ prefix ok)."""
    key = name.lower()
    for prefix in ("bpf_prog_type_", "bpf_map_type_", "bpf_link_type_"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    try:
        return table.index(key)
    except ValueError:
        raise ValueError(f"unknown type name {name!r}") from None


# --- the syscall ------------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong)


def error(what: str, err: int, extack: Optional[str] = None, needs: str = "CAP_BPF"):
    """The exception for a failed bpf(2) call (returned, for the caller to raise)."""
    if err == errno.EPERM:
        exc = PermissionDeniedError(f"{what}: needs {needs} (run as root)")
        exc.errno = err  # type: ignore[attr-defined]
        return exc
    return KernelError(what, err, extack)


def bpf_raw(cmd: int, attr: Union[bytearray, "Attr"]) -> int:
    """bpf(cmd, attr) -> result, or -errno. Never raises for a kernel error."""
    if NR_BPF is None:
        raise OSError(errno.ENOSYS, f"bpf(2) syscall number unknown for {platform.machine()}")
    buf = attr.buf if isinstance(attr, Attr) else attr
    cbuf = (ctypes.c_char * len(buf)).from_buffer(buf)
    try:
        ret = _syscall(NR_BPF, cmd, ctypes.addressof(cbuf), len(buf))
        return ret if ret >= 0 else -ctypes.get_errno()
    finally:
        del cbuf  # release the buffer export so the bytearray stays resizable


def bpf(cmd: int, attr: Union[bytearray, "Attr"], what: str = "", needs: str = "CAP_BPF") -> int:
    """bpf(cmd, attr): the result (often a new fd), or KernelError/PermissionDeniedError."""
    while True:
        ret = bpf_raw(cmd, attr)
        if ret >= 0:
            return ret
        if -ret == errno.EINTR:
            continue
        raise error(what or f"bpf command {cmd}", -ret, needs=needs)


def address_of(buf: bytearray) -> Tuple[int, object]:
    """(address, keepalive) of a bytearray's storage. Keep `keepalive` referenced
    while the kernel may use the address; drop it to make the bytearray resizable."""
    cbuf = (ctypes.c_char * len(buf)).from_buffer(buf)
    return ctypes.addressof(cbuf), cbuf


class Attr:
    """A zeroed `union bpf_attr` with typed setters. Pointer fields keep their
    buffers alive for as long as the Attr lives."""

    def __init__(self, size: int = ATTR_SIZE):
        self.buf = bytearray(size)
        self._keep: List[object] = []

    def u32(self, off: int, value: int) -> "Attr":
        struct.pack_into("=I", self.buf, off, value & 0xFFFFFFFF)
        return self

    def s32(self, off: int, value: int) -> "Attr":
        struct.pack_into("=i", self.buf, off, value)
        return self

    def u64(self, off: int, value: int) -> "Attr":
        struct.pack_into("=Q", self.buf, off, value & 0xFFFFFFFFFFFFFFFF)
        return self

    def raw(self, off: int, data: bytes) -> "Attr":
        self.buf[off:off + len(data)] = data
        return self

    def ptr(self, off: int, data: Union[bytes, bytearray, None]) -> "Attr":
        """Store a pointer to `data` at `off`. A bytearray is shared (the kernel's
        writes show up in it); bytes are copied into a private buffer. None = NULL."""
        if data is None:
            return self.u64(off, 0)
        if isinstance(data, bytearray):
            if not data:
                return self.u64(off, 0)
            cbuf = (ctypes.c_char * len(data)).from_buffer(data)
        else:
            cbuf = ctypes.create_string_buffer(bytes(data), len(data) + 1)
        self._keep.append(cbuf)
        return self.u64(off, ctypes.addressof(cbuf))

    def get_u32(self, off: int) -> int:
        return struct.unpack_from("=I", self.buf, off)[0]

    def release(self) -> None:
        """Drop buffer exports (lets shared bytearrays be resized again)."""
        self._keep.clear()
