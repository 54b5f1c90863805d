"""The kernel's news about what decides XDP hints, as one non-blocking source of events.

Sources, and why each is needed:
- rtnetlink RTNLGRP_LINK: a link added, deleted (or moved to another namespace),
  renamed, up or down, and an XDP program attached, detached or replaced through
  netlink (`ip link set DEV xdp ...`, libxdp, xdp-loader).
- the ethtool generic netlink group "monitor": FEATURES_NTF when an offload changes
  (`ethtool -K`, or the driver itself).
- polling, every `poll_interval` seconds, of what sends no notification:
  * the hwtstamp config: SIOCSHWTSTAMP sends none, and neither does ethtool
    TSCONFIG_SET (net/ethtool/tsconfig.c: "tsconfig has no notification"), so a
    change by ptp4l, tcpdump, hwstamp_ctl or `ethtool --set-hwtimestamp-cfg` is seen
    by reading the config (SIOCGHWTSTAMP) of the watched devices;
  * the IFLA_XDP attachment: an XDP bpf_link (BPF_LINK_CREATE, as `xdphints dump`
    and libbpf's bpf_xdp_attach with links attach) changes it without any
    RTM_NEWLINK, so links are dumped again at each poll.
  A notification that was lost (the socket overflowed: ENOBUFS) makes the source
  read everything again at once and report kind "overflow".

API:

    from xdphints_cli.netlink.events import EventSource

    with EventSource(ifname=None, poll_interval=1.0) as src:   # in the current netns
        while True:
            for ev in src.wait():          # or: select([src], [], [], src.timeout()); src.read()
                print(ev.kind, ev.ifname, ev.detail)

- `EventSource(ifname=None, poll_interval=1.0, ifindex=None)`: opens the sockets in
  the network namespace the calling thread is in and reads the current state as the
  baseline (no events for it). `ifname` keeps only the events of the device with
  that name: a device renamed away shows its "rename" and then nothing, a device
  that is created, moved in or renamed to the name shows (a watch by name, as a
  config file names devices). `ifindex` keeps those of one device whatever its name
  (as dump follows its device). Polling reads the hwtstamp config of the watched
  devices only, and with a filter asks for the watched link alone (RTM_GETLINK by
  name or index) instead of dumping all of them.
- `fileno()`: readable when notifications are waiting (for select/poll/epoll).
- `timeout()`: seconds until the next poll is due; select no longer than that.
- `read(poll=True) -> list[Event]`: never blocks; drains the sockets and runs a poll
  that is due (not with poll=False). Events come in the order the kernel reported
  them; poll results follow.
- `wait(timeout=None) -> list[Event]`: blocks until there are events or `timeout`
  passed (then []).
- `links() -> dict[ifindex, LinkState]`: the devices as last seen (name, up, XDP).
- `close()`, or use it as a context manager.

`Event` fields: `kind`, `ifindex`, `ifname` (the name now; the last known one for
"link-del"), `detail` (a dict, by kind, below), `time` (time.time() when it was read)
and `via` ("rtnetlink", "ethtool", "poll"). Kinds and their detail:

| kind | detail |
|---|---|
| link-new | up (bool), xdp (list of {mode, id}): created, moved in, or first seen |
| link-del | moved (bool, when the kernel says: moved to another namespace) |
| rename | old-name |
| up, down | admin-up, carrier (bools): up means admin up with carrier |
| xdp | action (attach, detach, replace), programs and previous (lists of {mode, id}) |
| features | changed ({kernel feature name: now on}) |
| hwtstamp | old, new ({tx-type, rx-filter} or null when unreadable) |
| overflow | (none): notifications were lost; the state was read again |

Everything is parsed with struct alone (event_wire.py), also at start: the ethtool
family, its monitor group and the kernel's names of features and hwtstamp values
(pyroute2's decoding of those took ~20 ms of every dump's start).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Tuple

from xdphints_cli.errors import XdpHintsError
from xdphints_cli.netlink.event_wire import (ETHTOOL_A_FEATURES_HEADER, ETHTOOL_A_HEADER_DEV_INDEX,
                                            ETHTOOL_A_HEADER_FLAGS, ETHTOOL_FLAG_COMPACT_BITSETS,
                                            ETHTOOL_MSG_FEATURES_GET, IFINFO, IFLA_EXT_MASK, IFLA_IFNAME,
                                            NLA_F_NESTED, NLMSG, RTM_GETLINK, LinkState, nla, parse_features,
                                            parse_links)

NETLINK_ROUTE, NETLINK_GENERIC = 0, 16
SOL_NETLINK, NETLINK_ADD_MEMBERSHIP = 270, 1
RTMGRP_LINK = 1
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
RTEXT_FILTER_SKIP_STATS = 1 << 3
_RCVBUF = 1 << 20


@dataclass(frozen=True)
class Event:
    kind: str
    ifindex: int
    ifname: str
    detail: dict = field(default_factory=dict)
    time: float = 0.0
    via: str = "rtnetlink"


# --- the source ---------------------------------------------------------------

class _Requests:
    """Blocking request/response on one netlink socket, replies as raw datagrams."""

    def __init__(self, protocol: int):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
        self.sock.bind((0, 0))
        self.seq = 0

    def transact(self, mtype: int, flags: int, payload: bytes) -> List[bytes]:
        """The datagrams answering one request; [] on a kernel error (the device went
        away, the driver has no such operation: the caller reads that as unknown)."""
        self.seq += 1
        self.sock.send(NLMSG.pack(NLMSG.size + len(payload), mtype, NLM_F_REQUEST | flags, self.seq, 0) + payload)
        out = []
        while True:
            data = self.sock.recv(1 << 18)
            off, done, keep = 0, False, False
            while off + NLMSG.size <= len(data):
                length, t, _f, seq = NLMSG.unpack_from(data, off)[:4]
                if length < NLMSG.size:
                    return []
                if seq == self.seq:
                    if t in (NLMSG_DONE, NLMSG_ERROR):
                        if t == NLMSG_ERROR and struct.unpack_from("=i", data, off + 16)[0]:
                            return []
                        done = True
                    else:
                        keep = True
                off += (length + 3) & ~3
            if keep:
                out.append(data)
            if done:
                return out


class EventSource:
    def __init__(self, ifname: Optional[str] = None, poll_interval: float = 1.0,
                 ifindex: Optional[int] = None):
        self.ifname = ifname
        self.ifindex = ifindex
        self.poll_interval = poll_interval
        self._links: Dict[int, LinkState] = {}
        self._features: Dict[int, FrozenSet[str]] = {}
        self._hwtstamp: Dict[int, Optional[Dict[str, str]]] = {}
        self._socks: List[socket.socket] = []
        self._epoll: Optional[select.epoll] = None
        self._rtnl_req: Optional[_Requests] = None
        self._genl_req: Optional[_Requests] = None
        self._genl: Optional[socket.socket] = None
        self._ethtool_id: Optional[int] = None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # setup ------------------------------------------------------------------
    def _open(self) -> None:
        flags = socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        self._rtnl = socket.socket(socket.AF_NETLINK, flags, NETLINK_ROUTE)
        self._socks.append(self._rtnl)
        self._rtnl.bind((0, RTMGRP_LINK))
        self._names()
        if self._ethtool_id is not None and self._monitor_group is not None:
            self._genl = socket.socket(socket.AF_NETLINK, flags, NETLINK_GENERIC)
            self._socks.append(self._genl)
            self._genl.bind((0, 0))
            self._genl.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, self._monitor_group)
        for s in self._socks:
            try:   # room for a burst (a driver reset renotifies every feature)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            except OSError:
                pass
        self._rtnl_req = _Requests(NETLINK_ROUTE)
        self._epoll = select.epoll()
        for s in self._socks:
            self._epoll.register(s.fileno(), select.EPOLLIN)
        # subscribed before the baseline is read: a change in between is an event
        self._sync(emit=False)
        self._next_poll = time.monotonic() + self.poll_interval

    def _names(self) -> None:
        """The ethtool family, its monitor group and the kernel's names of features and
        hwtstamp values, read once (a kernel without ethtool netlink gives no offload
        events but everything else)."""
        from xdphints_cli.netlink import event_wire as w
        from xdphints_cli.netlink.event_wire import ETH_SS_FEATURES, ETH_SS_TS_RX_FILTERS, ETH_SS_TS_TX_TYPES

        self._feature_names: Tuple[str, ...] = ()
        self._tx_names: Tuple[str, ...] = ()
        self._rx_names: Tuple[str, ...] = ()
        self._monitor_group: Optional[int] = None
        req = _Requests(NETLINK_GENERIC)
        try:
            family = None
            for data in req.transact(w.GENL_ID_CTRL, NLM_F_ACK, w.getfamily_payload("ethtool")):
                family = family or w.parse_family(data)
            if family is None:
                req.sock.close()
                return
            sets: Dict[int, Tuple[str, ...]] = {}
            ids = (ETH_SS_FEATURES, ETH_SS_TS_TX_TYPES, ETH_SS_TS_RX_FILTERS)
            for data in req.transact(family[0], NLM_F_ACK, w.strset_payload(ids)):
                sets.update(w.parse_strsets(data, family[0]))
        except BaseException:
            req.sock.close()
            raise
        self._genl_req = req            # kept for FEATURES_GET
        self._ethtool_id, self._monitor_group = family[0], family[1].get("monitor")
        self._feature_names = sets.get(ETH_SS_FEATURES, ())
        self._tx_names = sets.get(ETH_SS_TS_TX_TYPES, ())
        self._rx_names = sets.get(ETH_SS_TS_RX_FILTERS, ())

    # public -----------------------------------------------------------------
    def fileno(self) -> int:
        assert self._epoll is not None, "closed"
        return self._epoll.fileno()

    def timeout(self) -> float:
        return max(0.0, self._next_poll - time.monotonic())

    def links(self) -> Dict[int, LinkState]:
        return dict(self._links)

    def read(self, poll: bool = True) -> List[Event]:
        events: List[Event] = []
        lost = False
        for sock in self._socks:
            while True:
                try:
                    data = sock.recv(1 << 18)
                except BlockingIOError:
                    break
                except OSError as e:
                    if e.errno == errno.ENOBUFS:
                        lost = True
                        continue
                    raise
                if sock is self._rtnl:
                    for kind, state, extra in parse_links(data):
                        events.extend(self._link(kind, state, extra, "rtnetlink"))
                else:
                    for ifindex, active in parse_features(data, self._ethtool_id, self._feature_names):
                        events.extend(self._feature_change(ifindex, active, "ethtool"))
        if lost:
            events.append(Event("overflow", 0, "", {}, time.time(), "rtnetlink"))
            events.extend(self._sync(emit=True, features=True))
        if poll and time.monotonic() >= self._next_poll:
            events.extend(self._sync(emit=True))
            self._next_poll = time.monotonic() + self.poll_interval
        return [ev for ev in events if self._wanted(ev)]

    def wait(self, timeout: Optional[float] = None) -> List[Event]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = self.timeout()
            if deadline is not None:
                left = min(left, max(0.0, deadline - time.monotonic()))
            select.select([self], [], [], left)
            events = self.read()
            if events or (deadline is not None and time.monotonic() >= deadline):
                return events

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        for s in self._socks:
            s.close()
        self._socks = []
        for r in (self._rtnl_req, self._genl_req):
            if r is not None:
                r.sock.close()
        self._rtnl_req = self._genl_req = None

    def __enter__(self) -> "EventSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # state ------------------------------------------------------------------
    def _watched(self, state: LinkState) -> bool:
        if self.ifindex is not None:
            return state.ifindex == self.ifindex
        return self.ifname is None or state.ifname == self.ifname

    def _wanted(self, ev: Event) -> bool:
        if ev.kind == "overflow":
            return True
        if self.ifindex is not None:
            return ev.ifindex == self.ifindex
        return self.ifname is None or ev.ifname == self.ifname or ev.detail.get("old-name") == self.ifname

    def _link(self, kind: str, state: LinkState, extra: dict, via: str) -> List[Event]:
        now = time.time()
        old = self._links.get(state.ifindex)
        if kind == "del":
            if old is None:
                return []
            del self._links[state.ifindex]
            self._features.pop(state.ifindex, None)
            self._hwtstamp.pop(state.ifindex, None)
            return [Event("link-del", state.ifindex, state.ifname or old.ifname, extra, now, via)]
        self._links[state.ifindex] = state
        if (old is None or not self._watched(old)) and self._watched(state):
            self._baseline(state)     # newly watched: what later changes are measured against
        elif old is not None and self._watched(old) and not self._watched(state):
            self._features.pop(state.ifindex, None)
            self._hwtstamp.pop(state.ifindex, None)
        if old is None:
            return [Event("link-new", state.ifindex, state.ifname,
                          {"up": state.up, "xdp": _progs_json(state.xdp)}, now, via)]
        out = []
        if old.ifname != state.ifname:
            out.append(Event("rename", state.ifindex, state.ifname, {"old-name": old.ifname}, now, via))
        if old.up != state.up:
            out.append(Event("up" if state.up else "down", state.ifindex, state.ifname,
                             {"admin-up": bool(state.flags & IFF_UP), "carrier": bool(state.flags & IFF_LOWER_UP)},
                             now, via))
        if old.xdp != state.xdp:
            action = "attach" if not old.xdp else "detach" if not state.xdp else "replace"
            out.append(Event("xdp", state.ifindex, state.ifname,
                             {"action": action, "programs": _progs_json(state.xdp),
                              "previous": _progs_json(old.xdp)}, now, via))
        return out

    def _feature_change(self, ifindex: int, active: FrozenSet[str], via: str) -> List[Event]:
        state = self._links.get(ifindex)
        old = self._features.get(ifindex)
        self._features[ifindex] = active
        if state is None or old is None or old == active:
            return []
        changed = {name: name in active for name in sorted(old ^ active)}
        return [Event("features", ifindex, state.ifname, {"changed": changed}, time.time(), via)]

    def _baseline(self, state: LinkState) -> None:
        active = self._query_features(state.ifindex)
        if active is not None:
            self._features[state.ifindex] = active
        self._hwtstamp[state.ifindex] = self._read_hwtstamp(state)

    def _query_features(self, ifindex: int) -> Optional[FrozenSet[str]]:
        """The active offloads of a device (FEATURES_GET, compact); None if unknown."""
        if self._genl_req is None or self._ethtool_id is None:
            return None
        hdr = nla(ETHTOOL_A_HEADER_DEV_INDEX, struct.pack("=I", ifindex)) + \
            nla(ETHTOOL_A_HEADER_FLAGS, struct.pack("=I", ETHTOOL_FLAG_COMPACT_BITSETS))
        payload = struct.pack("=BBH", ETHTOOL_MSG_FEATURES_GET, 1, 0) + \
            nla(ETHTOOL_A_FEATURES_HEADER | NLA_F_NESTED, hdr)
        for data in self._genl_req.transact(self._ethtool_id, NLM_F_ACK, payload):
            for idx, active in parse_features(data, self._ethtool_id, self._feature_names):
                if idx == ifindex:
                    return active
        return None

    def _read_hwtstamp(self, state: LinkState) -> Optional[Dict[str, str]]:
        from xdphints_cli.ioctl import hwtstamp

        try:
            cfg = hwtstamp.get_config(state.ifname, ifindex=state.ifindex)
        except (XdpHintsError, OSError):    # EOPNOTSUPP (no hardware timestamping), gone
            return None

        def name(names: Tuple[str, ...], v: int) -> str:
            return names[v] if 0 <= v < len(names) else str(v)
        return {"tx-type": name(self._tx_names, cfg.tx_type), "rx-filter": name(self._rx_names, cfg.rx_filter)}

    def _get_links(self, everything: bool) -> Optional[List[LinkState]]:
        """All links (a dump), or with a filter and not `everything` the watched one
        alone ([] when there is none); None when the request failed."""
        assert self._rtnl_req is not None
        ext = nla(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS))
        if everything or (self.ifname is None and self.ifindex is None):
            payload, flags = IFINFO.pack(0, 0, 0, 0, 0) + ext, NLM_F_DUMP
        elif self.ifindex is not None:
            payload, flags = IFINFO.pack(0, 0, self.ifindex, 0, 0) + ext, NLM_F_ACK
        else:
            payload = IFINFO.pack(0, 0, 0, 0, 0) + ext + nla(IFLA_IFNAME, os.fsencode(self.ifname) + b"\0")
            flags = NLM_F_ACK
        try:
            datagrams = self._rtnl_req.transact(RTM_GETLINK, flags, payload)
        except OSError:
            return None
        return [state for data in datagrams for kind, state, _ in parse_links(data) if kind == "new"]

    def _sync(self, emit: bool, features: bool = False) -> List[Event]:
        """Read links, the hwtstamp configs (and with `features` the offloads) again and
        report what differs from what was known; emit False: only set the baseline.
        A filtered source reads the watched link alone, except after an overflow
        (`features`): a deletion that alone cannot see comes as a notification."""
        everything = features
        states = self._get_links(everything)
        if states is None:
            return []
        known = set(self._hwtstamp)      # watched before this read (others get a baseline now)
        events: List[Event] = []
        seen = set()
        for state in states:
            seen.add(state.ifindex)
            events.extend(self._link("new", state, {}, "poll"))
        if everything:
            for ifindex in [i for i in self._links if i not in seen]:
                events.extend(self._link("del", self._links[ifindex], {}, "poll"))
        now = time.time()
        for state in list(self._links.values()):
            if state.ifindex not in known or not self._watched(state):
                continue
            if features:
                active = self._query_features(state.ifindex)
                if active is not None:
                    events.extend(self._feature_change(state.ifindex, active, "poll"))
            cfg = self._read_hwtstamp(state)
            if cfg != self._hwtstamp.get(state.ifindex):
                events.append(Event("hwtstamp", state.ifindex, state.ifname,
                                    {"old": self._hwtstamp.get(state.ifindex), "new": cfg}, now, "poll"))
            self._hwtstamp[state.ifindex] = cfg
        return events if emit else []


def _progs_json(progs: Tuple[Tuple[str, int], ...]) -> List[dict]:
    return [{"mode": mode, "id": prog_id} for mode, prog_id in progs]
