"""`Map`: create a BPF map (BPF_MAP_CREATE) and own its fd; element operations."""

from __future__ import annotations

import errno
import struct
from typing import Iterator, Optional, Union

from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.fd import Fd, FdOwner


class Map(FdOwner):
    """An owned BPF map fd with element access. Keys and values are raw bytes of
    exactly key_size / value_size (the *_u32 helpers pack native u32s)."""

    def __init__(self, fd: Union[Fd, int], map_type: int, key_size: int, value_size: int,
                 max_entries: int, name: str = ""):
        super().__init__(fd)
        self.map_type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.name = name

    @classmethod
    def create(cls, map_type: int, key_size: int, value_size: int, max_entries: int,
               name: str = "", flags: int = 0, btf_fd: int = 0, btf_key_type_id: int = 0,
               btf_value_type_id: int = 0, ifindex: int = 0, inner_map_fd: int = 0) -> "Map":
        a = sc.Attr()
        a.u32(0, map_type).u32(4, key_size).u32(8, value_size).u32(12, max_entries)
        a.u32(16, flags).u32(20, inner_map_fd)
        a.raw(28, name.encode()[:sc.BPF_OBJ_NAME_LEN - 1])
        a.u32(44, ifindex).u32(48, btf_fd).u32(52, btf_key_type_id).u32(56, btf_value_type_id)
        kind = sc.type_name(sc.MAP_TYPE_NAMES, map_type)
        fd = sc.bpf(sc.BPF_MAP_CREATE, a, f"creating {kind} map" + (f" {name!r}" if name else ""))
        return cls(Fd(fd), map_type, key_size, value_size, max_entries, name)

    @classmethod
    def from_fd(cls, fd: Union[Fd, int]) -> "Map":
        """Adopt an fd (e.g. from map_fd_by_id) and learn its shape from the kernel."""
        from xdphints_cli.bpf.info import map_info
        owner = fd if isinstance(fd, Fd) else Fd(fd)
        mi = map_info(owner.fd)
        return cls(owner, mi.type, mi.key_size, mi.value_size, mi.max_entries, mi.name)

    def __repr__(self) -> str:
        return (f"Map({self.name!r}, type={sc.type_name(sc.MAP_TYPE_NAMES, self.map_type)}, "
                f"fd={self._fd!r})")

    def info(self):
        from xdphints_cli.bpf.info import map_info
        return map_info(self.fd)

    def _check(self, what: str, data: bytes, size: int) -> bytes:
        if len(data) != size:
            raise ValueError(f"{what} must be {size} bytes, got {len(data)}")
        return bytes(data)

    def update(self, key: bytes, value: bytes, flags: int = sc.BPF_ANY) -> None:
        a = sc.Attr()
        a.u32(0, self.fd).ptr(8, self._check("key", key, self.key_size))
        a.ptr(16, self._check("value", value, self.value_size)).u64(24, flags)
        sc.bpf(sc.BPF_MAP_UPDATE_ELEM, a, f"updating map {self.name!r}")

    def lookup(self, key: bytes, flags: int = 0) -> Optional[bytes]:
        """The value, or None when the key is absent."""
        out = bytearray(self.value_size)
        a = sc.Attr()
        a.u32(0, self.fd).ptr(8, self._check("key", key, self.key_size)).ptr(16, out)
        a.u64(24, flags)
        ret = sc.bpf_raw(sc.BPF_MAP_LOOKUP_ELEM, a)
        a.release()
        if ret == -errno.ENOENT:
            return None
        if ret < 0:
            raise sc.error(f"looking up map {self.name!r}", -ret)
        return bytes(out)

    def delete(self, key: bytes) -> bool:
        """Delete a key; False when it was absent."""
        a = sc.Attr()
        a.u32(0, self.fd).ptr(8, self._check("key", key, self.key_size))
        ret = sc.bpf_raw(sc.BPF_MAP_DELETE_ELEM, a)
        if ret == -errno.ENOENT:
            return False
        if ret < 0:
            raise sc.error(f"deleting from map {self.name!r}", -ret)
        return True

    def keys(self) -> Iterator[bytes]:
        """Iterate keys with BPF_MAP_GET_NEXT_KEY (starting from a NULL key)."""
        key: Optional[bytes] = None
        while True:
            nxt = bytearray(self.key_size)
            a = sc.Attr()
            a.u32(0, self.fd).ptr(8, key).ptr(16, nxt)
            ret = sc.bpf_raw(sc.BPF_MAP_GET_NEXT_KEY, a)
            a.release()
            if ret == -errno.ENOENT:
                return
            if ret < 0:
                raise sc.error(f"iterating map {self.name!r}", -ret)
            key = bytes(nxt)
            yield key

    # native u32 conveniences (XSKMAP, ARRAY of u32, ...)
    def update_u32(self, key: int, value: int, flags: int = sc.BPF_ANY) -> None:
        self.update(struct.pack("=I", key), struct.pack("=I", value), flags)

    def lookup_u32(self, key: int) -> Optional[int]:
        v = self.lookup(struct.pack("=I", key))
        return None if v is None else struct.unpack("=I", v)[0]

    def delete_u32(self, key: int) -> bool:
        return self.delete(struct.pack("=I", key))
