"""The wire side of netlink/events.py: rtnetlink link messages, ethtool FEATURES
messages and their bitsets, parsed with struct alone (no pyroute2 on the receive path,
as linkwatch.py). Every walk is bounded by the message it is in: a short or
malformed attribute ends it, what came before is kept, nothing loops or raises on
corrupt input.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterator, List, Optional, Tuple

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
IFLA_MTU = 4
NLA_F_NESTED, NLA_TYPE_MASK = 0x8000, 0x3FFF
IFLA_IFNAME, IFLA_EXT_MASK, IFLA_XDP, IFLA_NEW_NETNSID = 3, 29, 43, 45
IFLA_XDP_ATTACHED, IFLA_XDP_PROG_ID = 2, 4
_XDP_MODE_IDS = ((5, "drv"), (6, "skb"), (7, "hw"))      # IFLA_XDP_{DRV,SKB,HW}_PROG_ID
_XDP_ATTACHED = {1: "drv", 2: "skb", 3: "hw"}

ETHTOOL_MSG_FEATURES_GET, ETHTOOL_MSG_FEATURES_NTF = 11, 13     # NTF: a reply id
ETHTOOL_A_FEATURES_HEADER, ETHTOOL_A_FEATURES_ACTIVE = 1, 4
ETHTOOL_A_HEADER_DEV_INDEX, ETHTOOL_A_HEADER_FLAGS = 1, 3
ETHTOOL_FLAG_COMPACT_BITSETS = 1
BITSET_NOMASK, BITSET_SIZE, BITSET_BITS, BITSET_VALUE = 1, 2, 3, 4
BIT_INDEX, BIT_NAME, BIT_VALUE = 1, 2, 3

NLMSG = struct.Struct("=IHHII")
IFINFO = struct.Struct("=BxHiII")
RTA = struct.Struct("=HH")


def is_up(flags: int) -> bool:
    """Administratively up and with carrier: packets can arrive."""
    return flags & (IFF_UP | IFF_LOWER_UP) == IFF_UP | IFF_LOWER_UP


@dataclass(frozen=True)
class LinkState:
    ifindex: int
    ifname: str
    flags: int
    xdp: Tuple[Tuple[str, int], ...] = ()      # (mode, program id)

    @property
    def up(self) -> bool:
        return is_up(self.flags)


def attrs(data: bytes, start: int, end: int) -> Dict[int, Tuple[int, int]]:
    """type -> (payload offset, payload length) of the attributes in [start, end);
    a malformed length ends the walk (what came before is kept)."""
    out: Dict[int, Tuple[int, int]] = {}
    a = start
    while a + RTA.size <= end:
        alen, atype = RTA.unpack_from(data, a)
        if alen < RTA.size or a + alen > end:
            break
        out[atype & NLA_TYPE_MASK] = (a + RTA.size, alen - RTA.size)
        a += (alen + 3) & ~3
    return out


def u32(data: bytes, at: Optional[Tuple[int, int]]) -> Optional[int]:
    """The u32 attribute at (offset, length) as attrs() gives it; None if absent or short."""
    if at is None or at[1] < 4:
        return None
    return struct.unpack_from("=I", data, at[0])[0]


def _xdp_programs(data: bytes, at: Optional[Tuple[int, int]]) -> Tuple[Tuple[str, int], ...]:
    if at is None:
        return ()
    nest = attrs(data, at[0], at[0] + at[1])
    progs = []
    for aid, mode in _XDP_MODE_IDS:
        prog_id = u32(data, nest.get(aid))
        if prog_id:
            progs.append((mode, prog_id))
    attached = nest.get(IFLA_XDP_ATTACHED)
    mode = _XDP_ATTACHED.get(data[attached[0]]) if attached and attached[1] >= 1 else None
    single = u32(data, nest.get(IFLA_XDP_PROG_ID))
    if not progs and single and mode:
        progs.append((mode, single))
    return tuple(progs)


def link_messages(data: bytes) -> Iterator[Tuple[str, int, int, Dict[int, Tuple[int, int]]]]:
    """("new" or "del", ifindex, flags, attrs) per RTM_NEWLINK/RTM_DELLINK in a datagram."""
    off = 0
    while off + NLMSG.size <= len(data):
        length, mtype = NLMSG.unpack_from(data, off)[:2]
        if length < NLMSG.size or off + length > len(data):
            break
        body = off + NLMSG.size
        if mtype in (RTM_NEWLINK, RTM_DELLINK) and length >= NLMSG.size + IFINFO.size:
            _family, _type, index, flags, _change = IFINFO.unpack_from(data, body)
            yield ("del" if mtype == RTM_DELLINK else "new", index, flags,
                   attrs(data, body + IFINFO.size, off + length))
        off += (length + 3) & ~3


def parse_links(data: bytes) -> List[Tuple[str, LinkState, dict]]:
    """(("new" or "del"), LinkState, extra) per RTM_NEWLINK/RTM_DELLINK in a datagram;
    extra has "moved" when a deletion is a move to another namespace."""
    out = []
    for kind, index, flags, at in link_messages(data):
        name = ""
        if IFLA_IFNAME in at:
            p, n = at[IFLA_IFNAME]
            name = os.fsdecode(data[p:p + n].split(b"\0", 1)[0])
        extra = {"moved": True} if kind == "del" and IFLA_NEW_NETNSID in at else {}
        out.append((kind, LinkState(index, name, flags, _xdp_programs(data, at.get(IFLA_XDP))), extra))
    return out


def decode_bitset(data: bytes, start: int, end: int, names: Tuple[str, ...]) -> FrozenSet[str]:
    """The set bits of an ethtool bitset nest, by the kernel's names (compact form as
    notifications send it, or the verbose form)."""
    at = attrs(data, start, end)
    out = set()
    if BITSET_VALUE in at:
        size = u32(data, at.get(BITSET_SIZE)) or 0
        p, n = at[BITSET_VALUE]
        words = struct.unpack_from(f"={n // 4}I", data, p)
        for i in range(min(size, 32 * len(words))):
            if words[i // 32] >> (i % 32) & 1:
                out.add(names[i] if i < len(names) else str(i))
    elif BITSET_BITS in at:
        nomask = BITSET_NOMASK in at
        p, n = at[BITSET_BITS]
        a = p
        while a + RTA.size <= p + n:
            alen, _ = RTA.unpack_from(data, a)
            if alen < RTA.size:
                break
            bit = attrs(data, a + RTA.size, a + alen)
            if nomask or BIT_VALUE in bit:
                if BIT_NAME in bit:
                    q, m = bit[BIT_NAME]
                    out.add(data[q:q + m].split(b"\0", 1)[0].decode(errors="replace"))
                else:
                    i = u32(data, bit.get(BIT_INDEX)) or 0
                    out.add(names[i] if i < len(names) else str(i))
            a += (alen + 3) & ~3
    return frozenset(out)


def parse_features(data: bytes, family_id: int, names: Tuple[str, ...]) -> List[Tuple[int, FrozenSet[str]]]:
    """(ifindex, active feature names) per FEATURES_NTF or FEATURES_GET reply of
    family `family_id` in a datagram."""
    out = []
    off = 0
    while off + NLMSG.size + 4 <= len(data):
        length, mtype = NLMSG.unpack_from(data, off)[:2]
        if length < NLMSG.size or off + length > len(data):
            break
        cmd = data[off + NLMSG.size]
        if mtype == family_id and cmd in (ETHTOOL_MSG_FEATURES_NTF, ETHTOOL_MSG_FEATURES_GET):
            at = attrs(data, off + NLMSG.size + 4, off + length)
            hdr = at.get(ETHTOOL_A_FEATURES_HEADER)
            ifindex = u32(data, attrs(data, hdr[0], hdr[0] + hdr[1]).get(ETHTOOL_A_HEADER_DEV_INDEX)) if hdr else None
            active = at.get(ETHTOOL_A_FEATURES_ACTIVE)
            if ifindex and active:
                out.append((ifindex, decode_bitset(data, active[0], active[0] + active[1], names)))
        off += (length + 3) & ~3
    return out


def nla(atype: int, payload: bytes) -> bytes:
    raw = RTA.pack(RTA.size + len(payload), atype) + payload
    return raw + b"\0" * (-len(raw) % 4)


# --- start-up: the ethtool family, its monitor group, the kernel's names ---------------

GENL_ID_CTRL, CTRL_CMD_GETFAMILY = 0x10, 3
CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_ATTR_MCAST_GROUPS = 1, 2, 7
CTRL_ATTR_MCAST_GRP_NAME, CTRL_ATTR_MCAST_GRP_ID = 1, 2
ETHTOOL_MSG_STRSET_GET = 1
ETHTOOL_A_STRSET_HEADER, ETHTOOL_A_STRSET_STRINGSETS = 1, 2
ETHTOOL_A_STRINGSETS_STRINGSET = 1
ETHTOOL_A_STRINGSET_ID, ETHTOOL_A_STRINGSET_STRINGS = 1, 3
ETHTOOL_A_STRINGS_STRING = 1
ETHTOOL_A_STRING_INDEX, ETHTOOL_A_STRING_VALUE = 1, 2
# enum ethtool_stringset, as ethtool_msgs.py has them (which would import pyroute2)
ETH_SS_FEATURES, ETH_SS_TS_TX_TYPES, ETH_SS_TS_RX_FILTERS = 4, 13, 14


def each_attr(data: bytes, start: int, end: int):
    """(type, payload offset, payload length) of every attribute in [start, end), in
    order, repeated types included (attrs() keeps the last of each)."""
    a = start
    while a + RTA.size <= end:
        alen, atype = RTA.unpack_from(data, a)
        if alen < RTA.size or a + alen > end:
            return
        yield atype & NLA_TYPE_MASK, a + RTA.size, alen - RTA.size
        a += (alen + 3) & ~3


def _string(data: bytes, off: int, n: int) -> str:
    return data[off:off + n].split(b"\0", 1)[0].decode(errors="replace")


def genl_payload(cmd: int, attributes: bytes) -> bytes:
    return struct.pack("=BBH", cmd, 1, 0) + attributes


def getfamily_payload(name: str) -> bytes:
    return genl_payload(CTRL_CMD_GETFAMILY, nla(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0"))


def parse_family(data: bytes) -> Optional[Tuple[int, Dict[str, int]]]:
    """(family id, {multicast group name: id}) of a CTRL_CMD_GETFAMILY reply."""
    off = 0
    while off + NLMSG.size + 4 <= len(data):
        length, mtype = NLMSG.unpack_from(data, off)[:2]
        if length < NLMSG.size or off + length > len(data):
            return None
        if mtype == GENL_ID_CTRL:
            at = attrs(data, off + NLMSG.size + 4, off + length)
            fid = at.get(CTRL_ATTR_FAMILY_ID)
            if fid is None or fid[1] < 2:
                return None
            groups: Dict[str, int] = {}
            grp = at.get(CTRL_ATTR_MCAST_GROUPS)
            if grp is not None:
                for _, p, n in each_attr(data, grp[0], grp[0] + grp[1]):
                    g = attrs(data, p, p + n)
                    if CTRL_ATTR_MCAST_GRP_NAME in g and CTRL_ATTR_MCAST_GRP_ID in g:
                        groups[_string(data, *g[CTRL_ATTR_MCAST_GRP_NAME])] = u32(data, g[CTRL_ATTR_MCAST_GRP_ID])
            return struct.unpack_from("=H", data, fid[0])[0], groups
        off += (length + 3) & ~3
    return None


def strset_payload(set_ids) -> bytes:
    """A STRSET_GET of global string sets (a header without a device)."""
    sets = b"".join(nla(ETHTOOL_A_STRINGSETS_STRINGSET | NLA_F_NESTED,
                        nla(ETHTOOL_A_STRINGSET_ID, struct.pack("=I", i))) for i in set_ids)
    return genl_payload(ETHTOOL_MSG_STRSET_GET, nla(ETHTOOL_A_STRSET_HEADER | NLA_F_NESTED, b"")
                        + nla(ETHTOOL_A_STRSET_STRINGSETS | NLA_F_NESTED, sets))


def parse_strsets(data: bytes, family_id: int) -> Dict[int, Tuple[str, ...]]:
    """{string set id: names by index} of a STRSET_GET reply; a missing index is its
    number, as ethtool.get_strings gives it."""
    out: Dict[int, Tuple[str, ...]] = {}
    off = 0
    while off + NLMSG.size + 4 <= len(data):
        length, mtype = NLMSG.unpack_from(data, off)[:2]
        if length < NLMSG.size or off + length > len(data):
            break
        if mtype == family_id:
            sets = attrs(data, off + NLMSG.size + 4, off + length).get(ETHTOOL_A_STRSET_STRINGSETS)
            for _, p, n in each_attr(data, sets[0], sets[0] + sets[1]) if sets else ():
                sset = attrs(data, p, p + n)
                set_id = u32(data, sset.get(ETHTOOL_A_STRINGSET_ID))
                strings = sset.get(ETHTOOL_A_STRINGSET_STRINGS)
                table: Dict[int, str] = {}
                for _, q, m in each_attr(data, strings[0], strings[0] + strings[1]) if strings else ():
                    s = attrs(data, q, q + m)
                    index = u32(data, s.get(ETHTOOL_A_STRING_INDEX))
                    if index is not None and index < 4096:      # a bound: names are tens, not millions
                        table[index] = _string(data, *s[ETHTOOL_A_STRING_VALUE]) if ETHTOOL_A_STRING_VALUE in s else ""
                if set_id is not None:
                    out[set_id] = tuple(table.get(i, str(i)) for i in range(max(table, default=-1) + 1))
        off += (length + 3) & ~3
    return out
