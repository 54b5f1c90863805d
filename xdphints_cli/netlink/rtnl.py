"""rtnetlink links: names, state, queue counts and the IFLA_XDP attachment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

from xdphints_cli.netlink.pyroute2_nla import nla, nlmsg

from xdphints_cli.errors import KernelError, NotFoundError, UsageError
from xdphints_cli.netlink.session import Netlink

RTM_GETLINK = 18
RTM_NEWLINK = 16
IFLA_EXT_MASK_SKIP_STATS = 1 << 3  # RTEXT_FILTER_SKIP_STATS: no counters in the reply
IFF_UP = 0x1
IFF_LOOPBACK = 0x8

OPERSTATES = {0: "unknown", 1: "notpresent", 2: "down", 3: "lowerlayerdown", 4: "testing",
              5: "dormant", 6: "up"}
XDP_ATTACHED = {0: "none", 1: "drv", 2: "skb", 3: "hw", 4: "multi"}


class link_msg(nlmsg):
    fields = (("family", "B"), ("__pad", "B"), ("ifi_type", "H"), ("index", "i"),
              ("flags", "I"), ("change", "I"))
    nla_map = (
        (1, "IFLA_ADDRESS", "hex"),
        (3, "IFLA_IFNAME", "asciiz"),
        (4, "IFLA_MTU", "uint32"),
        (5, "IFLA_LINK", "uint32"),
        (16, "IFLA_OPERSTATE", "uint8"),
        (18, "IFLA_LINKINFO", "linkinfo"),
        (29, "IFLA_EXT_MASK", "uint32"),
        (31, "IFLA_NUM_TX_QUEUES", "uint32"),
        (32, "IFLA_NUM_RX_QUEUES", "uint32"),
        (37, "IFLA_LINK_NETNSID", "int32"),
        (43, "IFLA_XDP", "xdp"),
    )

    class linkinfo(nla):
        nla_map = ((1, "IFLA_INFO_KIND", "asciiz"),)

    class xdp(nla):
        # dumps send this nest without NLA_F_NESTED; pyroute2 decodes by type, not flag
        nla_map = (
            (1, "IFLA_XDP_FD", "int32"),
            (2, "IFLA_XDP_ATTACHED", "uint8"),
            (3, "IFLA_XDP_FLAGS", "uint32"),
            (4, "IFLA_XDP_PROG_ID", "uint32"),
            (5, "IFLA_XDP_DRV_PROG_ID", "uint32"),
            (6, "IFLA_XDP_SKB_PROG_ID", "uint32"),
            (7, "IFLA_XDP_HW_PROG_ID", "uint32"),
            (8, "IFLA_XDP_EXPECTED_FD", "int32"),
        )


@dataclass(frozen=True)
class XdpAttachment:
    """What IFLA_XDP says: the mode and the program id per mode."""

    mode: str
    programs: Tuple[Tuple[str, int], ...] = ()  # (mode, prog id)

    @classmethod
    def from_nla(cls, attr) -> "XdpAttachment":
        if attr is None:
            return cls("none")
        mode = XDP_ATTACHED.get(attr.get_attr("IFLA_XDP_ATTACHED") or 0, "unknown")
        progs = []
        for m, name in (("drv", "IFLA_XDP_DRV_PROG_ID"), ("skb", "IFLA_XDP_SKB_PROG_ID"),
                        ("hw", "IFLA_XDP_HW_PROG_ID")):
            prog_id = attr.get_attr(name)
            if prog_id:
                progs.append((m, prog_id))
        single = attr.get_attr("IFLA_XDP_PROG_ID")
        if not progs and single and mode in ("drv", "skb", "hw"):
            progs.append((mode, single))
        return cls(mode, tuple(progs))


@dataclass(frozen=True)
class Link:
    ifindex: int
    ifname: str
    flags: int
    operstate: str
    mtu: Optional[int]
    kind: Optional[str]
    num_rx_queues: Optional[int]
    num_tx_queues: Optional[int]
    xdp: XdpAttachment
    address: Optional[str] = None
    # the link this one is tied to (a veth's peer), when it is in the same namespace
    peer_ifindex: Optional[int] = None

    @classmethod
    def from_msg(cls, msg) -> "Link":
        info = msg.get_attr("IFLA_LINKINFO")
        name = msg.get_attr("IFLA_IFNAME") or ""
        if isinstance(name, bytes):  # not UTF-8: keep the bytes, as argv and os.listdir do
            name = os.fsdecode(name)
        return cls(msg["index"], name, msg["flags"],
                   OPERSTATES.get(msg.get_attr("IFLA_OPERSTATE") or 0, "unknown"),
                   msg.get_attr("IFLA_MTU"), info.get_attr("IFLA_INFO_KIND") if info else None,
                   msg.get_attr("IFLA_NUM_RX_QUEUES"), msg.get_attr("IFLA_NUM_TX_QUEUES"),
                   XdpAttachment.from_nla(msg.get_attr("IFLA_XDP")), msg.get_attr("IFLA_ADDRESS"),
                   None if msg.get_attr("IFLA_LINK_NETNSID") is not None else msg.get_attr("IFLA_LINK") or None)

    @property
    def is_up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def is_loopback(self) -> bool:
        return bool(self.flags & IFF_LOOPBACK)


def _getlink(nl: Netlink, index: int = 0, name: Optional[str] = None, dump: bool = False) -> List[Link]:
    msg = link_msg()
    msg["family"] = 0
    msg["index"] = index
    attrs = [("IFLA_EXT_MASK", IFLA_EXT_MASK_SKIP_STATS)]
    if name:
        attrs.append(("IFLA_IFNAME", os.fsencode(name)))  # any bytes but NUL and '/' make a name
    msg["attrs"] = attrs
    what = "listing interfaces" if dump else f"reading interface {name or index}"
    return [Link.from_msg(r) for r in nl.rtnl.request(RTM_GETLINK, msg, link_msg, what, dump=dump)
            if r["header"]["type"] == RTM_NEWLINK]


def list_links(nl: Netlink) -> List[Link]:
    return sorted(_getlink(nl, dump=True), key=lambda link: link.ifindex)


IFNAMSIZ = 16  # include/uapi/linux/if.h: names are at most 15 bytes


def get_link(nl: Netlink, dev: str) -> Link:
    """A link by its name. Always a name, as for ip and ethtool: "2" is the interface
    called 2, never the one whose ifindex is 2. NotFoundError when there is none."""
    if not dev:
        raise UsageError("an interface name cannot be empty")
    if len(os.fsencode(dev)) >= IFNAMSIZ:
        raise NotFoundError(f"no such device: {dev} (interface names are at most {IFNAMSIZ - 1} bytes)")
    try:
        links = _getlink(nl, name=dev)
    except KernelError as e:
        if e.exit_code == NotFoundError.exit_code:
            raise NotFoundError(f"no such device: {dev}") from None
        raise
    if not links:
        raise NotFoundError(f"no such device: {dev}")
    return links[0]


def get_link_by_index(nl: Netlink, ifindex: int) -> Optional[Link]:
    """A link by ifindex, for links the kernel names by index (a veth's peer); None if gone.
    Never for user input: a device the user names is a name (get_link)."""
    try:
        links = _getlink(nl, index=ifindex)
    except KernelError as e:
        if e.exit_code == NotFoundError.exit_code:
            return None
        raise
    return links[0] if links else None
