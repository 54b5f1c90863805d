"""netdev generic netlink: XDP/XSK feature bits and RX queues (with AF_XDP pools)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from xdphints_cli.netlink.pyroute2_nla import genlmsg

from xdphints_cli.errors import KernelTooOldError
from xdphints_cli.netlink.session import Netlink

FAMILY = "netdev"
DEV_GET = 1
QUEUE_GET = 10

QUEUE_TYPE_RX = 0
QUEUE_TYPE_TX = 1

# Bit names as the kernel's netdev.yaml spells them (netdev_xdp_act, netdev_xdp_rx_metadata,
# netdev_xsk_flags). Bits not listed here are shown as numbers, never dropped.
XDP_FEATURES = {1: "basic", 2: "redirect", 4: "ndo-xmit", 8: "xsk-zerocopy", 16: "hw-offload",
                32: "rx-sg", 64: "ndo-xmit-sg"}
XDP_RX_METADATA = {1: "timestamp", 2: "hash", 4: "vlan-tag"}
XSK_FEATURES = {1: "tx-timestamp", 2: "tx-checksum", 4: "tx-launch-time-fifo"}


class dev_msg(genlmsg):
    nla_map = (
        (1, "NETDEV_A_DEV_IFINDEX", "uint32"),
        (2, "NETDEV_A_DEV_PAD", "none"),
        (3, "NETDEV_A_DEV_XDP_FEATURES", "uint64"),
        (4, "NETDEV_A_DEV_XDP_ZC_MAX_SEGS", "uint32"),
        (5, "NETDEV_A_DEV_XDP_RX_METADATA_FEATURES", "uint64"),
        (6, "NETDEV_A_DEV_XSK_FEATURES", "uint64"),
    )


class queue_msg(genlmsg):
    nla_map = (
        (1, "NETDEV_A_QUEUE_ID", "uint32"),
        (2, "NETDEV_A_QUEUE_IFINDEX", "uint32"),
        (3, "NETDEV_A_QUEUE_TYPE", "uint32"),
        (4, "NETDEV_A_QUEUE_NAPI_ID", "uint32"),
        (5, "NETDEV_A_QUEUE_DMABUF", "uint32"),
        (6, "NETDEV_A_QUEUE_IO_URING", "cdata"),
        (7, "NETDEV_A_QUEUE_XSK", "cdata"),
    )


def flag_names(value: int, names: Dict[int, str]) -> Tuple[str, ...]:
    """Names of the set bits, lowest first; a bit without a name becomes its hex value."""
    out = []
    bit = 1
    while bit <= value:
        if value & bit:
            out.append(names.get(bit, hex(bit)))
        bit <<= 1
    return tuple(out)


@dataclass(frozen=True)
class NetdevInfo:
    xdp_features: int
    xdp_rx_metadata: int
    xsk_features: int
    xdp_zc_max_segs: Optional[int] = None

    @classmethod
    def from_reply(cls, reply) -> "NetdevInfo":
        return cls(reply.get_attr("NETDEV_A_DEV_XDP_FEATURES") or 0,
                   reply.get_attr("NETDEV_A_DEV_XDP_RX_METADATA_FEATURES") or 0,
                   reply.get_attr("NETDEV_A_DEV_XSK_FEATURES") or 0,
                   reply.get_attr("NETDEV_A_DEV_XDP_ZC_MAX_SEGS"))

    def to_json(self) -> dict:
        out = {"xdp-features": list(flag_names(self.xdp_features, XDP_FEATURES))}
        if self.xdp_zc_max_segs is not None:
            out["xdp-zc-max-segs"] = self.xdp_zc_max_segs
        out["xdp-rx-metadata-features"] = list(flag_names(self.xdp_rx_metadata, XDP_RX_METADATA))
        out["xsk-features"] = list(flag_names(self.xsk_features, XSK_FEATURES))
        return out


def _request(nl: Netlink, cmd: int, msg_class, attrs, what: str, dump: bool = False):
    family = nl.family(FAMILY)
    if not family.has_op(cmd):
        raise KernelTooOldError(f"{what}: this kernel's netdev family lacks command {cmd}")
    msg = msg_class()
    msg["cmd"] = cmd
    msg["version"] = 1
    msg["attrs"] = attrs
    return nl.genl.request(family.id, msg, msg_class, what, dump=dump)


def get_dev(nl: Netlink, ifindex: int, ifname: str) -> NetdevInfo:
    (reply,) = _request(nl, DEV_GET, dev_msg, [("NETDEV_A_DEV_IFINDEX", ifindex)],
                        f"reading XDP features of {ifname}")
    return NetdevInfo.from_reply(reply)


@dataclass(frozen=True)
class Queue:
    id: int
    type: int
    napi_id: Optional[int]
    xsk: bool


def get_queues(nl: Netlink, ifindex: int, ifname: str) -> List[Queue]:
    """All RX and TX queues of a device; `xsk` is set while an AF_XDP pool is bound (~6.15)."""
    replies = _request(nl, QUEUE_GET, queue_msg, [("NETDEV_A_QUEUE_IFINDEX", ifindex)],
                       f"reading queues of {ifname}", dump=True)
    return [Queue(r.get_attr("NETDEV_A_QUEUE_ID"), r.get_attr("NETDEV_A_QUEUE_TYPE"),
                  r.get_attr("NETDEV_A_QUEUE_NAPI_ID"), r.get_attr("NETDEV_A_QUEUE_XSK") is not None)
            for r in replies if r.get_attr("NETDEV_A_QUEUE_IFINDEX") == ifindex]
