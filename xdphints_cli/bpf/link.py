"""BPF links (BPF_LINK_CREATE): XDP on a netdev, TCX ingress/egress.

A link detaches when its last fd closes, so a process that dies (even by kill -9)
takes its program off the interface; that is why links are preferred to netlink.
"""

from __future__ import annotations

import errno
from typing import Union

from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.fd import Fd, FdOwner
from xdphints_cli.errors import KernelError, NotFoundError
from xdphints_cli.process.netns import ifindex_exists


class DeviceBusyError(KernelError):
    """EBUSY from an XDP attach: the device already has an XDP program (through a
    link or netlink). The kernel gives no message; the CLI explains which program."""

    def __init__(self, what: str, ifindex: int):
        super().__init__(what, errno.EBUSY, "an XDP program is already attached to this device")
        self.ifindex = ifindex


XDP_EINVAL_HINT = ("rejected without a reason; common causes: a device-bound program "
                   "attached to another device or in generic (SKB) mode, or an MTU too "
                   "large for a program without frags support")


class Link(FdOwner):
    """An owned bpf_link fd. Closing it detaches the program (unless pinned)."""

    def __init__(self, fd: Union[Fd, int]):
        super().__init__(fd)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fd={self._fd!r})"

    def info(self):
        from xdphints_cli.bpf.info import link_info
        return link_info(self.fd)

    def update(self, new_prog_fd: int, old_prog_fd: int = 0) -> None:
        """Swap the program atomically (BPF_LINK_UPDATE)."""
        a = sc.Attr().u32(0, self.fd).u32(4, new_prog_fd)
        if old_prog_fd:
            a.u32(8, 4).u32(12, old_prog_fd)  # BPF_F_REPLACE
        sc.bpf(sc.BPF_LINK_UPDATE, a, "updating link", needs="CAP_BPF and CAP_NET_ADMIN")

    def detach(self) -> None:
        """Detach now (BPF_LINK_DETACH); the fd stays open, the link becomes defunct."""
        sc.bpf(sc.BPF_LINK_DETACH, sc.Attr().u32(0, self.fd), "detaching link",
               needs="CAP_BPF and CAP_NET_ADMIN")


def _create(prog_fd: int, ifindex: int, attach_type: int, flags: int, what: str) -> int:
    a = sc.Attr().u32(0, prog_fd).u32(4, ifindex).u32(8, attach_type).u32(12, flags)
    ret = sc.bpf_raw(sc.BPF_LINK_CREATE, a)
    if ret < 0:
        # XDP link creation says EINVAL (not ENODEV) for an unknown ifindex.
        if -ret in (errno.EINVAL, errno.ENODEV) and not ifindex_exists(ifindex):
            raise NotFoundError(f"{what}: no device with ifindex {ifindex} in this network namespace")
        raise sc.error(what, -ret, needs="CAP_BPF and CAP_NET_ADMIN")
    return ret


class XdpLink(Link):
    @classmethod
    def attach(cls, prog_fd: int, ifindex: int, flags: int = 0) -> "XdpLink":
        """Attach an XDP program to `ifindex` (native mode by default; flags may be
        XDP_FLAGS_SKB_MODE or XDP_FLAGS_DRV_MODE). DeviceBusyError if one is attached."""
        what = f"attaching XDP program to ifindex {ifindex}"
        try:
            return cls(Fd(_create(prog_fd, ifindex, sc.BPF_XDP, flags, what)))
        except KernelError as e:
            if e.errno == errno.EBUSY:
                raise DeviceBusyError(what, ifindex) from None
            if e.errno == errno.EINVAL and not e.extack:
                # BPF_LINK_CREATE carries no extack (netlink attach would say more)
                raise KernelError(what, e.errno, XDP_EINVAL_HINT) from None
            raise


class TcxLink(Link):
    @classmethod
    def attach(cls, prog_fd: int, ifindex: int, attach_type: int = sc.BPF_TCX_INGRESS,
               flags: int = 0) -> "TcxLink":
        """Attach a SCHED_CLS program with tcx (6.6+); attach_type BPF_TCX_INGRESS (46)
        or BPF_TCX_EGRESS (47). The program should be loaded with the same
        expected_attach_type."""
        if attach_type not in (sc.BPF_TCX_INGRESS, sc.BPF_TCX_EGRESS):
            raise ValueError("attach_type must be BPF_TCX_INGRESS or BPF_TCX_EGRESS")
        side = "ingress" if attach_type == sc.BPF_TCX_INGRESS else "egress"
        what = f"attaching tcx {side} program to ifindex {ifindex}"
        return cls(Fd(_create(prog_fd, ifindex, attach_type, flags, what)))
