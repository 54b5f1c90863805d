"""A small synchronous netlink client on top of pyroute2's message classes.

pyroute2 supplies the attribute encoding and decoding (its `nla` framework); the
socket I/O is ours: a plain request/response loop, extended ACKs switched on so
the kernel's own error text reaches the user, and no event loop or threads
(pyroute2 0.9 runs its sockets on asyncio, which costs start-up time).
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Dict, List, Optional, Type

from xdphints_cli.netlink.pyroute2_nla import ctrlmsg, nlmsg_base

from xdphints_cli.errors import KernelError, KernelTooOldError, PermissionDeniedError

NETLINK_ROUTE = 0
NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSGERR_ATTR_MSG = 1

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3

_HDR = struct.Struct("=IHHII")
_RECV_SIZE = 1 << 18


def _extack(data: bytes, off: int, end: int, flags: int) -> Optional[str]:
    """The NLMSGERR_ATTR_MSG text of an error message, if the kernel sent one."""
    if not flags & NLM_F_ACK_TLVS:
        return None
    # error code (4) + the original header (16) + its payload unless capped
    pos = off + 16 + 4
    orig_len = _HDR.unpack_from(data, pos)[0] if pos + 16 <= end else 16
    pos += 16 if flags & NLM_F_CAPPED else orig_len
    while pos + 4 <= end:
        nla_len, nla_type = struct.unpack_from("=HH", data, pos)
        if nla_len < 4:
            break
        if nla_type & 0x3FFF == NLMSGERR_ATTR_MSG:
            return data[pos + 4:pos + nla_len].split(b"\0", 1)[0].decode(errors="replace")
        pos += (nla_len + 3) & ~3
    return None


class NetlinkSocket:
    """One netlink socket, bound in the network namespace it was created in."""

    def __init__(self, protocol: int):
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
        try:
            self._sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            self._sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        except OSError:  # kernels before 4.12: errors come without text
            pass
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "NetlinkSocket":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, msg_type: int, msg: nlmsg_base, reply_class: Type[nlmsg_base],
                what: str, dump: bool = False) -> List[nlmsg_base]:
        """Send `msg` and collect the decoded replies; a kernel error raises KernelError.

        `what` names the operation for the error message ("reading features of eth0").
        """
        self._seq += 1
        seq = self._seq
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
        msg["header"]["sequence_number"] = seq
        msg["header"]["pid"] = 0
        msg.encode()
        self._sock.send(msg.data)
        replies: List[nlmsg_base] = []
        while True:
            data = self._sock.recv(_RECV_SIZE)
            off = 0
            while off + _HDR.size <= len(data):
                length, mtype, mflags, mseq, _ = _HDR.unpack_from(data, off)
                if length < _HDR.size:
                    raise KernelError(what, errno.EPROTO, "malformed netlink reply")
                end = off + length
                if mseq != seq:  # a stale reply from an earlier, abandoned request
                    off = (end + 3) & ~3
                    continue
                if mtype in (NLMSG_ERROR, NLMSG_DONE):
                    code = struct.unpack_from("=i", data, off + 16)[0] if length >= 20 else 0
                    if code == -errno.EPERM:
                        raise PermissionDeniedError(f"{what}: operation not permitted (EPERM): "
                                                    "needs CAP_NET_ADMIN (run as root)")
                    if code:
                        raise KernelError(what, code, _extack(data, off, end, mflags))
                    return replies
                reply = reply_class(data[off:end])
                reply.decode()
                replies.append(reply)
                off = (end + 3) & ~3


class _CtrlMsg(ctrlmsg):
    pass


class GenlFamily:
    """A generic netlink family resolved by name: its id and the commands it knows."""

    def __init__(self, name: str, family_id: int, version: int, ops: Dict[int, int],
                 groups: Optional[Dict[str, int]] = None):
        self.name = name
        self.id = family_id
        self.version = version
        self.ops = ops  # command id -> flags
        self.groups = groups or {}  # multicast group name -> id (ethtool: "monitor")

    def has_op(self, cmd: int) -> bool:
        return cmd in self.ops

    @classmethod
    def resolve(cls, sock: NetlinkSocket, name: str, since: str) -> "GenlFamily":
        msg = _CtrlMsg()
        msg["cmd"] = CTRL_CMD_GETFAMILY
        msg["version"] = 1
        msg["attrs"] = [("CTRL_ATTR_FAMILY_NAME", name)]
        try:
            (reply,) = sock.request(GENL_ID_CTRL, msg, _CtrlMsg, f"resolving the {name} netlink family")
        except KernelError as e:
            if e.errno == errno.ENOENT:
                raise KernelTooOldError(
                    f"this kernel has no {name!r} generic netlink family (needs Linux {since} or newer)"
                ) from None
            raise
        ops = {}
        for op in reply.get_attr("CTRL_ATTR_OPS") or []:
            ops[op.get_attr("CTRL_ATTR_OP_ID")] = op.get_attr("CTRL_ATTR_OP_FLAGS") or 0
        groups = {}
        for grp in reply.get_attr("CTRL_ATTR_MCAST_GROUPS") or []:
            if grp.get_attr("CTRL_ATTR_MCAST_GRP_NAME") is not None:
                groups[grp.get_attr("CTRL_ATTR_MCAST_GRP_NAME")] = grp.get_attr("CTRL_ATTR_MCAST_GRP_ID")
        return cls(name, reply.get_attr("CTRL_ATTR_FAMILY_ID"), reply.get_attr("CTRL_ATTR_VERSION") or 1, ops,
                   groups)
