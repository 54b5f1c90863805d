"""Watch one device through rtnetlink link notifications (RTMGRP_LINK): whether it
went away (deleted, or moved to another namespace), went down, or changed its MTU.

An AF_XDP socket is not woken when its device goes: poll(2) just never returns data
again. A capture asks `changes()` when it is idle; the socket is non-blocking and
parsed with struct alone (no pyroute2 on the receive path).
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import List, Optional, Tuple

from xdphints_cli.process import netns

RTMGRP_LINK = 1
RTM_NEWLINK, RTM_DELLINK = 16, 17
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
IFLA_MTU = 4
_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_RTA = struct.Struct("=HH")


def is_up(flags: int) -> bool:
    """Administratively up and with carrier: packets can arrive."""
    return flags & (IFF_UP | IFF_LOWER_UP) == IFF_UP | IFF_LOWER_UP


def parse_link_messages(data: bytes, ifindex: int) -> List[Tuple[str, int, Optional[int]]]:
    """(kind, flags, mtu) of each RTM_NEWLINK/RTM_DELLINK about `ifindex` in one
    datagram; kind "new" or "del"."""
    out = []
    off = 0
    while off + _NLMSG.size <= len(data):
        length, mtype = _NLMSG.unpack_from(data, off)[:2]
        if length < _NLMSG.size or off + length > len(data):
            break
        body = off + _NLMSG.size
        if mtype in (RTM_NEWLINK, RTM_DELLINK) and length >= _NLMSG.size + _IFINFO.size:
            _family, _type, index, flags, _change = _IFINFO.unpack_from(data, body)
            if index == ifindex:
                mtu = None
                a = body + _IFINFO.size
                while a + _RTA.size <= off + length:
                    alen, atype = _RTA.unpack_from(data, a)
                    if alen < _RTA.size:
                        break
                    if atype == IFLA_MTU and alen >= 8:
                        mtu = struct.unpack_from("=I", data, a + 4)[0]
                    a += (alen + 3) & ~3
                out.append(("del" if mtype == RTM_DELLINK else "new", flags, mtu))
        off += (length + 3) & ~3
    return out


class LinkWatch:
    """Use as a context manager. `changes()` returns what happened since the last call:
    "gone", "down", "up" and ("mtu", old, new) events, each once per change."""

    def __init__(self, ifindex: int, up: bool, mtu: Optional[int]):
        self.ifindex = ifindex
        self.up, self.mtu = up, mtu
        self.gone = False
        self._sock: Optional[socket.socket] = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
            socket.NETLINK_ROUTE)
        try:
            self._sock.bind((0, RTMGRP_LINK))
        except OSError:
            self.close()
            raise

    def changes(self) -> List[tuple]:
        events: List[tuple] = []
        while self._sock is not None and not self.gone:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:     # notifications were lost: ask directly
                    if not netns.ifindex_exists(self.ifindex):
                        self.gone = True
                        events.append(("gone",))
                    continue
                break
            for kind, flags, mtu in parse_link_messages(data, self.ifindex):
                if kind == "del":
                    self.gone = True
                    events.append(("gone",))
                    break
                up = is_up(flags)
                if up != self.up:
                    self.up = up
                    events.append(("up",) if up else ("down",))
                if mtu is not None and self.mtu is not None and mtu != self.mtu:
                    events.append(("mtu", self.mtu, mtu))
                if mtu is not None:
                    self.mtu = mtu
        return events

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "LinkWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

