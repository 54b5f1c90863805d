"""Per-CPU array maps of u64 counters: create one, read each counter summed over CPUs.

A lookup in a per-CPU map returns one value per possible CPU, each rounded up to 8
bytes (kernel/bpf/syscall.c bpf_map_copy_value); the possible CPUs are listed in
/sys/devices/system/cpu/possible ("0-3", "0,2-5").
"""

from __future__ import annotations

import errno
import struct
from functools import lru_cache
from typing import List

from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.maps import Map


@lru_cache(maxsize=1)
def possible_cpus() -> int:
    with open("/sys/devices/system/cpu/possible") as f:
        return parse_cpu_list(f.read())


def parse_cpu_list(text: str) -> int:
    """How many CPUs a kernel CPU list names, counted up to the highest (as libbpf does)."""
    highest = -1
    for part in text.strip().split(","):
        if part:
            highest = max(highest, int(part.split("-")[-1]))
    return highest + 1


def counters(n: int, name: str) -> Map:
    """A BPF_MAP_TYPE_PERCPU_ARRAY of `n` u64 counters, all 0."""
    return Map.create(sc.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, n, name=name)


def read_per_cpu(m: Map) -> List[List[int]]:
    """Every counter of a per-CPU u64 array as its value on each possible CPU."""
    ncpu = possible_cpus()
    out = []
    for key in range(m.max_entries):
        buf = bytearray(8 * ncpu)
        a = sc.Attr().u32(0, m.fd).ptr(8, struct.pack("=I", key)).ptr(16, buf)
        ret = sc.bpf_raw(sc.BPF_MAP_LOOKUP_ELEM, a)
        a.release()
        if ret < 0 and -ret != errno.ENOENT:
            raise sc.error(f"reading counters {m.name!r}", -ret)
        out.append(list(struct.unpack(f"={ncpu}Q", buf)) if ret >= 0 else [0] * ncpu)
    return out


def read_sums(m: Map) -> List[int]:
    """Every counter of a per-CPU u64 array, summed over the possible CPUs."""
    return [sum(v) for v in read_per_cpu(m)]
