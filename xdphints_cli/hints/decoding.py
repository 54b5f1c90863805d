"""Per-packet metadata -> hint values, through BTF only.

The last 4 bytes before the packet are the metadata's `btf_id`; that type is looked
up in the program's BTF (it must be a hints struct), a decoder is compiled once per
type id, and members are read by name. No offsets are hard-coded here.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

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
