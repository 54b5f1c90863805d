"""Object introspection: BPF_OBJ_GET_INFO_BY_FD, *_GET_NEXT_ID, *_GET_FD_BY_ID, OBJ_GET.

Decoded objects are frozen dataclasses; fds handed out are owned `Fd`s.
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, Optional, Tuple

from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.fd import Fd
from xdphints_cli.errors import NotFoundError

PROG_INFO_SIZE = 232
MAP_INFO_SIZE = 104
LINK_INFO_SIZE = 64
BTF_INFO_SIZE = 32


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def obj_info(fd: int, size: int, what: str, fill: Optional[sc.Attr] = None,
             info: Optional[bytearray] = None) -> bytearray:
    """BPF_OBJ_GET_INFO_BY_FD into a zeroed (or given) buffer of `size` bytes."""
    buf = info if info is not None else bytearray(size)
    a = sc.Attr().u32(0, fd).u32(4, len(buf)).ptr(8, buf)
    try:
        sc.bpf(sc.BPF_OBJ_GET_INFO_BY_FD, a, what)
    finally:
        a.release()
    return buf


def _kebab(d: Dict[str, object]) -> Dict[str, object]:
    return {k.replace("_", "-"): v for k, v in d.items()}


@dataclass(frozen=True)
class ProgInfo:
    type: int
    id: int
    tag: str
    name: str
    btf_id: int
    map_ids: Tuple[int, ...]
    ifindex: int              # 0 for dev-bound (not offloaded) programs
    load_time: int            # ns since boot (CLOCK_BOOTTIME)
    created_by_uid: int
    xlated_prog_len: int
    jited_prog_len: int
    gpl_compatible: bool
    netns_dev: int = 0
    netns_ino: int = 0
    verified_insns: int = 0
    run_time_ns: int = 0
    run_cnt: int = 0
    attach_btf_obj_id: int = 0
    attach_btf_id: int = 0

    @property
    def type_name(self) -> str:
        return sc.type_name(sc.PROG_TYPE_NAMES, self.type)

    @classmethod
    def from_bytes(cls, b: bytes, map_ids: Tuple[int, ...] = ()) -> "ProgInfo":
        u32 = lambda o: struct.unpack_from("=I", b, o)[0]  # noqa: E731
        u64 = lambda o: struct.unpack_from("=Q", b, o)[0]  # noqa: E731
        return cls(type=u32(0), id=u32(4), tag=bytes(b[8:16]).hex(), name=_cstr(bytes(b[64:80])),
                   btf_id=u32(128), map_ids=map_ids, ifindex=u32(80), load_time=u64(40),
                   created_by_uid=u32(48), xlated_prog_len=u32(20), jited_prog_len=u32(16),
                   gpl_compatible=bool(u32(84) & 1), netns_dev=u64(88), netns_ino=u64(96),
                   verified_insns=u32(216), run_time_ns=u64(192), run_cnt=u64(200),
                   attach_btf_obj_id=u32(220), attach_btf_id=u32(224))

    def to_json(self) -> Dict[str, object]:
        d = asdict(self)
        d["type"] = self.type_name
        d["map_ids"] = list(self.map_ids)
        return _kebab(d)


@dataclass(frozen=True)
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    ifindex: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int

    @property
    def type_name(self) -> str:
        return sc.type_name(sc.MAP_TYPE_NAMES, self.type)

    @classmethod
    def from_bytes(cls, b: bytes) -> "MapInfo":
        v = struct.unpack_from("=6I", b, 0)
        return cls(type=v[0], id=v[1], key_size=v[2], value_size=v[3], max_entries=v[4],
                   map_flags=v[5], name=_cstr(bytes(b[24:40])),
                   ifindex=struct.unpack_from("=I", b, 40)[0],
                   btf_id=struct.unpack_from("=I", b, 64)[0],
                   btf_key_type_id=struct.unpack_from("=I", b, 68)[0],
                   btf_value_type_id=struct.unpack_from("=I", b, 72)[0])

    def to_json(self) -> Dict[str, object]:
        d = asdict(self)
        d["type"] = self.type_name
        return _kebab(d)


@dataclass(frozen=True)
class LinkInfo:
    type: int
    id: int
    prog_id: int
    ifindex: Optional[int] = None      # XDP and TCX links
    attach_type: Optional[int] = None  # TCX and tracing links
    target_obj_id: Optional[int] = None  # tracing links: the program an freplace link extends
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def type_name(self) -> str:
        return sc.type_name(sc.LINK_TYPE_NAMES, self.type)

    @classmethod
    def from_bytes(cls, b: bytes) -> "LinkInfo":
        ltype, lid, pid = struct.unpack_from("=III", b, 0)
        ifindex = attach = target = None
        if ltype == sc.BPF_LINK_TYPE_XDP:
            ifindex = struct.unpack_from("=I", b, 16)[0]
        elif ltype == sc.BPF_LINK_TYPE_TCX:
            ifindex, attach = struct.unpack_from("=II", b, 16)
        elif ltype == sc.BPF_LINK_TYPE_TRACING:
            # bpf_link_info.tracing: attach_type, target_obj_id (prog id for freplace)
            attach, target = struct.unpack_from("=II", b, 16)
        return cls(ltype, lid, pid, ifindex, attach, target, bytes(b))

    def to_json(self) -> Dict[str, object]:
        d: Dict[str, object] = {"type": self.type_name, "id": self.id, "prog-id": self.prog_id}
        if self.ifindex is not None:
            d["ifindex"] = self.ifindex
        if self.attach_type is not None:
            d["attach-type"] = self.attach_type
        if self.target_obj_id is not None:
            d["target-obj-id"] = self.target_obj_id
        return d


@dataclass(frozen=True)
class BtfInfo:
    id: int
    name: str
    btf_size: int
    kernel_btf: bool

    @classmethod
    def from_bytes(cls, b: bytes, name: str) -> "BtfInfo":
        size, bid = struct.unpack_from("=II", b, 8)
        return cls(bid, name, size, bool(struct.unpack_from("=I", b, 28)[0]))


def prog_info(fd: int) -> ProgInfo:
    """Program info; map ids need a second call sized by nr_map_ids."""
    b = obj_info(fd, PROG_INFO_SIZE, "reading program info")
    n = struct.unpack_from("=I", b, 52)[0]
    ids: Tuple[int, ...] = ()
    if n:
        idbuf = bytearray(4 * n)
        req = bytearray(PROG_INFO_SIZE)
        addr, keep = sc.address_of(idbuf)
        struct.pack_into("=IQ", req, 52, n, addr)
        b = obj_info(fd, PROG_INFO_SIZE, "reading program map ids", info=req)
        del keep
        got = min(n, struct.unpack_from("=I", b, 52)[0])
        ids = struct.unpack_from(f"={got}I", idbuf, 0)
    return ProgInfo.from_bytes(bytes(b), ids)


def map_info(fd: int) -> MapInfo:
    return MapInfo.from_bytes(bytes(obj_info(fd, MAP_INFO_SIZE, "reading map info")))


def link_info(fd: int) -> LinkInfo:
    return LinkInfo.from_bytes(bytes(obj_info(fd, LINK_INFO_SIZE, "reading link info")))


def btf_info(fd: int) -> BtfInfo:
    name = bytearray(64)
    req = bytearray(BTF_INFO_SIZE)
    addr, keep = sc.address_of(name)
    struct.pack_into("=QI", req, 16, addr, len(name))
    b = obj_info(fd, BTF_INFO_SIZE, "reading BTF info", info=req)
    del keep
    return BtfInfo.from_bytes(bytes(b), _cstr(bytes(name)))


# --- ids and fds ----------------------------------------------------------------------
_NEXT_ID_CMD = {"prog": sc.BPF_PROG_GET_NEXT_ID, "map": sc.BPF_MAP_GET_NEXT_ID,
                "link": sc.BPF_LINK_GET_NEXT_ID, "btf": sc.BPF_BTF_GET_NEXT_ID}
_FD_BY_ID_CMD = {"prog": sc.BPF_PROG_GET_FD_BY_ID, "map": sc.BPF_MAP_GET_FD_BY_ID,
                 "link": sc.BPF_LINK_GET_FD_BY_ID, "btf": sc.BPF_BTF_GET_FD_BY_ID}
_KIND_NAME = {"prog": "program", "map": "map", "link": "link", "btf": "BTF object"}


def next_ids(kind: str) -> Iterator[int]:
    """All ids of one kind ('prog', 'map', 'link', 'btf'), ascending."""
    cmd = _NEXT_ID_CMD[kind]
    cur = 0
    while True:
        a = sc.Attr().u32(0, cur)
        ret = sc.bpf_raw(cmd, a)
        if ret == -errno.ENOENT:
            return
        if ret < 0:
            raise sc.error(f"listing {_KIND_NAME[kind]} ids", -ret, needs="CAP_SYS_ADMIN")
        cur = a.get_u32(4)
        yield cur


def fd_by_id(kind: str, obj_id: int, open_flags: int = 0) -> Fd:
    a = sc.Attr().u32(0, obj_id).u32(8, open_flags)
    ret = sc.bpf_raw(_FD_BY_ID_CMD[kind], a)
    if ret == -errno.ENOENT:
        raise NotFoundError(f"{_KIND_NAME[kind]} with id {obj_id} not found")
    if ret < 0:
        raise sc.error(f"opening {_KIND_NAME[kind]} id {obj_id}", -ret, needs="CAP_SYS_ADMIN")
    return Fd(ret)


def prog_fd_by_id(prog_id: int) -> Fd:
    return fd_by_id("prog", prog_id)


def map_fd_by_id(map_id: int, open_flags: int = 0) -> Fd:
    return fd_by_id("map", map_id, open_flags)


def link_fd_by_id(link_id: int) -> Fd:
    return fd_by_id("link", link_id)


def btf_fd_by_id(btf_id: int) -> Fd:
    return fd_by_id("btf", btf_id)


def obj_get(path: str, file_flags: int = 0) -> Fd:
    """Open a pinned object (bpffs path)."""
    a = sc.Attr().ptr(0, os.fsencode(path) + b"\0").u32(12, file_flags)
    ret = sc.bpf_raw(sc.BPF_OBJ_GET, a)
    if ret == -errno.ENOENT:
        raise NotFoundError(f"no pinned BPF object at {path}")
    if ret in (-errno.EACCES, -errno.EPERM) and not _is_bpffs_file(path):
        # the kernel says EACCES for anything that is not an object on a bpffs (a
        # directory, the bpffs root, a regular file elsewhere): not a permission matter
        raise NotFoundError(f"{path} is not a pinned BPF object")
    if ret < 0:
        raise sc.error(f"opening pinned object {path}", -ret)
    return Fd(ret)


BPF_FS_MAGIC = 0xCAFE4A11


def _is_bpffs_file(path: str) -> bool:
    """Whether `path` is a non-directory on a bpf filesystem (statfs f_type)."""
    import ctypes
    import stat

    try:
        if stat.S_ISDIR(os.stat(path).st_mode):
            return False
    except OSError:
        return False
    buf = ctypes.create_string_buffer(256)       # struct statfs; f_type comes first
    if sc._libc.statfs(os.fsencode(path), buf) != 0:
        return True                               # cannot tell: keep the kernel's answer
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF == BPF_FS_MAGIC


def obj_pin(fd: int, path: str) -> None:
    a = sc.Attr().ptr(0, os.fsencode(path) + b"\0").u32(8, fd)
    sc.bpf(sc.BPF_OBJ_PIN, a, f"pinning object at {path}")
