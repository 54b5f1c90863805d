"""Per-packet metadata -> hint values, through BTF only.

The last 4 bytes before the packet are the metadata's `btf_id`; that type is looked
up in the program's BTF (it must be a hints struct), a decoder is compiled once per
type id, and members are read by name. No offsets are hard-coded here.
"""

from __future__ import annotations

import errno
import struct
from collections import Counter
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from xdphints_cli.errors import errno_name

_U32 = struct.Struct("<I")
ENODATA, EOPNOTSUPP = errno.ENODATA, errno.EOPNOTSUPP

# hint -> (return-code member, value members); a hint whose members are missing
# from the struct is reported as "absent"
HINT_MEMBERS = {
    "rx-timestamp": ("rx_timestamp_ret", ("rx_timestamp",)),
    "rx-hash": ("rx_hash_ret", ("rx_hash", "rx_hash_type")),
    "rx-vlan": ("rx_vlan_ret", ("rx_vlan_proto", "rx_vlan_tci")),
}
HINTS = tuple(HINT_MEMBERS)


@dataclass(frozen=True)
class HintValue:
    """One hint of one packet. status: "ok" (value valid), "none" (ENODATA, or a
    zero timestamp), "unsupported" (EOPNOTSUPP: driver or program lacks the kfunc),
    "error" (another errno), "absent" (the metadata has no such member)."""

    status: str
    ret: Optional[int] = None
    values: Tuple[Tuple[str, int], ...] = ()

    @property
    def errno_name(self) -> Optional[str]:
        return errno_name(-self.ret) if self.ret is not None and self.ret < 0 else None

    def get(self, key: str) -> Optional[int]:
        for k, v in self.values:
            if k == key:
                return v
        return None

    @property
    def counter_key(self) -> str:
        """What the summary counts: "ok", "none", an errno name, or "absent"."""
        if self.status in ("ok", "absent"):
            return self.status
        return self.errno_name or "none"


ABSENT = HintValue("absent")


def hint_values(meta: Dict[str, Any]) -> Dict[str, HintValue]:
    """{hint: HintValue} from a decoded hints struct (member name -> value)."""
    out: Dict[str, HintValue] = {}
    for hint, (ret_member, members) in HINT_MEMBERS.items():
        if ret_member not in meta or any(m not in meta for m in members):
            out[hint] = ABSENT
            continue
        ret = int(meta[ret_member])
        values = tuple((m, int(meta[m])) for m in members)
        if hint == "rx-vlan":  # the kfunc writes vlan_proto big-endian (__be16)
            proto = values[0][1]
            values = (("rx_vlan_proto", ((proto & 0xFF) << 8) | (proto >> 8)),) + values[1:]
        if ret == 0:
            status = "none" if hint == "rx-timestamp" and values[0][1] == 0 else "ok"
        elif ret == -ENODATA:
            status = "none"
        elif ret == -EOPNOTSUPP:
            status = "unsupported"
        else:
            status = "error"
        out[hint] = HintValue(status, ret, values)
    return out


class MetadataDecoder:
    """Decodes the metadata in front of packets using `spec` (the program's BTF)."""

    def __init__(self, spec):
        self.spec = spec
        self._decoders: Dict[int, Optional[Tuple[int, Callable]]] = {}

    def _decoder_for(self, type_id: int) -> Optional[Tuple[int, Callable]]:
        if type_id in self._decoders:
            return self._decoders[type_id]
        from xdphints_cli.btf import hints
        from xdphints_cli.btf.decode import compile_decoder
        from xdphints_cli.errors import BTFError

        found = None
        try:
            if 0 < type_id < self.spec.n_types:
                t = self.spec[type_id]
                if hints.is_hints_struct(self.spec, t) and t.size >= 4:
                    found = (t.size, compile_decoder(self.spec, type_id))
        except BTFError:
            found = None
        self._decoders[type_id] = found
        return found

    def struct_name(self, type_id: int) -> str:
        return self.spec.name_of(type_id)

    def decode(self, buf, addr: int, room: int) -> Optional[Tuple[int, Dict[str, Any]]]:
        """(btf_id, members) of the metadata ending at `addr` in `buf`, or None when
        the trailing btf_id names no hints struct of this BTF. `room`: bytes available
        before `addr` (the frame's headroom)."""
        if room < 4:
            return None
        type_id = _U32.unpack_from(buf, addr - 4)[0]
        d = self._decoder_for(type_id)
        if d is None or d[0] > room:
            return None
        size, fn = d
        return type_id, fn(buf, addr - size)


class RowLayout:
    """The hints members of one hints struct as a single struct.Struct, for the bulk
    path: offsets, sizes and signedness all come from the BTF (padding bytes where the
    struct has members we do not read). `unpack_from(buf, addr - size)` gives a row:
    a tuple in `names` order, the same values `compile_decoder` would give."""

    def __init__(self, spec, type_id: int):
        from xdphints_cli.btf import types as T
        from xdphints_cli.errors import BTFError

        t = spec[type_id]
        wanted = {"btf_id"}
        for ret, members in HINT_MEMBERS.values():
            wanted.add(ret)
            wanted.update(members)
        fields = []
        for m in t.members:
            if m.name not in wanted or m.bitfield_size or m.bit_offset % 8:
                continue
            it = spec.resolve_type(m.type)
            if not isinstance(it, T.Int) or it.size not in _INT_FMT or it.bits != it.size * 8:
                continue
            fmt = _INT_FMT[it.size]
            fields.append((m.offset, it.size, fmt.lower() if it.is_signed else fmt, m.name))
        fields.sort()
        fmt, pos = spec.byteorder, 0
        for off, size, code, _name in fields:
            if off < pos:
                raise BTFError(f"{t.name}: overlapping members at byte {off}")
            fmt += ("x" * (off - pos)) + code
            pos = off + size
        if "btf_id" not in {f[3] for f in fields}:
            raise BTFError(f"{t.name}: no btf_id member")
        fmt += "x" * (t.size - pos)
        self.type_id = type_id
        self.size = t.size
        self.struct = struct.Struct(fmt)
        self.names: Tuple[str, ...] = tuple(f[3] for f in fields)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.btf_id = itemgetter(self.index["btf_id"])

    def meta(self, row: Sequence[int]) -> Dict[str, int]:
        """member name -> value, like MetadataDecoder.decode's dict (for hint_values)."""
        return dict(zip(self.names, row))

    def count(self, rows: List[Sequence[int]], counters: Dict[str, Counter]) -> None:
        """Add the outcome of every row (HintValue.counter_key) to counters[hint]
        without per-row Python code: a Counter per return-code member, built in C."""
        if not rows:
            return
        for hint, (ret_member, members) in HINT_MEMBERS.items():
            c = counters[hint]
            if ret_member not in self.index or any(m not in self.index for m in members):
                c["absent"] += len(rows)
                continue
            ri = self.index[ret_member]
            rets = Counter(map(itemgetter(ri), rows))
            zeros = 0
            if hint == "rx-timestamp" and rets.get(0):
                vi = self.index[members[0]]
                if len(rets) == 1:
                    zeros = list(map(itemgetter(vi), rows)).count(0)
                else:
                    zeros = sum(1 for r in rows if r[ri] == 0 and r[vi] == 0)
            for ret, n in rets.items():
                if ret == 0:
                    if n - zeros:
                        c["ok"] += n - zeros
                    if zeros:
                        c["none"] += zeros
                else:
                    c[_ret_key(ret)] += n


_INT_FMT = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _ret_key(ret: int) -> str:
    if ret < 0:
        return errno_name(-ret) or "none"
    return "none"


def rss_type_names(value: int, table: Dict[str, int]) -> Tuple[str, ...]:
    """Names of the set bits of an xdp_rss_hash_type value, from the kernel's enum
    (`XDP_RSS_L3_IPV4`, `XDP_RSS_L4`, `XDP_RSS_L4_UDP`...); 0 gives ()."""
    bits = {}
    for n, v in table.items():
        if v and v & (v - 1) == 0 and n.startswith("XDP_RSS_L"):
            bits.setdefault(v, n)
    out = [n for v, n in sorted(bits.items()) if value & v]
    rest = value & ~sum(v for v in bits if value & v)
    if rest:
        out.append(hex(rest))
    return tuple(out)
