"""Watch one device through rtnetlink link notifications (RTMGRP_LINK): whether it
went away (deleted, or moved to another namespace), went down, or changed its MTU.

An AF_XDP socket is not woken when its device goes: poll(2) just never returns data
again. A capture asks `changes()` when it is idle; the socket is non-blocking and
parsed with struct alone (no pyroute2 on the receive path).
"""

from __future__ import annotations

import errno
import socket
from typing import List, Optional, Tuple

from xdphints_cli.netlink.event_wire import IFLA_MTU, is_up, link_messages, u32
from xdphints_cli.process import netns

RTMGRP_LINK = 1


def parse_link_messages(data: bytes, ifindex: int) -> List[Tuple[str, int, Optional[int]]]:
    """(kind, flags, mtu) of each RTM_NEWLINK/RTM_DELLINK about `ifindex` in one
    datagram; kind "new" or "del"."""
    return [(kind, flags, u32(data, at.get(IFLA_MTU)))
            for kind, index, flags, at in link_messages(data) if index == ifindex]


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

