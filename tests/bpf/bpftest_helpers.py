"""Helpers for tests/bpf: a hand-built minimal BTF blob, bpftool JSON, capability-free
subprocesses."""

from __future__ import annotations

import json
import struct
import subprocess
from typing import Dict, Iterable, List, Sequence, Tuple

BTF_MAGIC = 0xEB9F
KIND_INT, KIND_PTR, KIND_STRUCT, KIND_FWD, KIND_FUNC, KIND_FUNC_PROTO = 1, 2, 4, 7, 12, 13


def _info(kind: int, vlen: int = 0, kflag: int = 0) -> int:
    return (kflag << 31) | (kind << 24) | vlen


def minimal_btf(func_name: str = "xdp_pass") -> Tuple[bytes, int]:
    """int + struct xdp_md (fwd) + ptr + FUNC_PROTO int(struct xdp_md *ctx) + FUNC.
    Returns (blob, type id of the FUNC)."""
    strings = b"\0int\0xdp_md\0ctx\0" + func_name.encode() + b"\0"
    s_int, s_xdp_md, s_ctx, s_func = 1, 5, 12, 16
    types: List[bytes] = [
        struct.pack("<IIII", s_int, _info(KIND_INT), 4, (1 << 24) | 32),       # [1] int
        struct.pack("<III", s_xdp_md, _info(KIND_FWD), 0),                     # [2] struct xdp_md
        struct.pack("<III", 0, _info(KIND_PTR), 2),                            # [3] ptr
        struct.pack("<IIIII", 0, _info(KIND_FUNC_PROTO, 1), 1, s_ctx, 3),      # [4] proto
        struct.pack("<III", s_func, _info(KIND_FUNC, 1), 4),                   # [5] global func
    ]
    return btf_blob(types, strings), 5


def btf_blob(types: Sequence[bytes], strings: bytes) -> bytes:
    tsec = b"".join(types)
    hdr = struct.pack("<HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(tsec), len(tsec), len(strings))
    return hdr + tsec + strings


def bpftool_json(*args: str, ns: str = "") -> object:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["bpftool", "-j", *args]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def open_fds() -> List[str]:
    import os
    return sorted(os.listdir("/proc/self/fd"))


KFUNCS = ("bpf_xdp_metadata_rx_timestamp", "bpf_xdp_metadata_rx_hash",
          "bpf_xdp_metadata_rx_vlan_tag")


def vmlinux_func_ids(names: Iterable[str] = KFUNCS, path: str = "/sys/kernel/btf/vmlinux") -> Dict[str, int]:
    """A targeted scan: names in the string section, then FUNCs with those offsets."""
    data = open(path, "rb").read()
    magic, _v, _f, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        "<HBBIIIII", data, 0)
    assert magic == 0xEB9F
    types = data[hdr_len + type_off:hdr_len + type_off + type_len]
    strs = data[hdr_len + str_off:hdr_len + str_off + str_len]
    wanted = {}
    for n in names:
        i = strs.find(b"\0" + n.encode() + b"\0")
        if i >= 0:
            wanted[i + 1] = n
    out: Dict[str, int] = {}
    off, tid = 0, 1
    while off < len(types) and len(out) < len(wanted):
        name_off, info, _ = struct.unpack_from("<III", types, off)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        if kind == 12 and name_off in wanted:
            out[wanted[name_off]] = tid
        off += 12 + {1: 4, 3: 12, 4: 12 * vlen, 5: 12 * vlen, 6: 8 * vlen, 13: 8 * vlen,
                     14: 4, 15: 12 * vlen, 17: 4, 19: 12 * vlen}.get(kind, 0)
        tid += 1
    return out

