"""Ioctls that name their device, made to reach the device a command resolved.

Everything else addresses a device by ifindex (netlink), which a rename cannot
change; SIOCETHTOOL and SIOC[GS]HWTSTAMP take a name, which the kernel looks up
when the ioctl runs. Between our lookup and that one the device may have been
renamed, its name even given to another device (two devices swapping names), and
the ioctl would answer, or change, for that other one. So the name is checked to
still be the device's (SIOCGIFINDEX) right after the call, and before it for a
change: a read that was answered by another device is made again under the
device's new name; a change that may have reached another device is an error
that says so. (A name that moved away and back within the ioctl itself cannot be
seen from here: the window is that one system call.)
"""

from __future__ import annotations

import errno
import socket
from typing import Callable, TypeVar

from xdphints_cli.errors import KernelError, NotFoundError

T = TypeVar("T")
TRIES = 5


def _is(name: str, ifindex: int) -> bool:
    try:
        return socket.if_nametoindex(name) == ifindex
    except OSError:
        return False


def _name_of(ifindex: int, was: str) -> str:
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        raise NotFoundError(f"no such device: {was} (it went away)") from None


def read(ifindex: int, ifname: str, call: Callable[[str], T]) -> T:
    """call(name) for a read, answered (or refused) by device `ifindex` whatever its
    name now is."""
    name = ifname
    for _ in range(TRIES):
        try:
            result = call(name)
        except KernelError:
            if _is(name, ifindex):
                raise
        else:
            if _is(name, ifindex):
                return result
        name = _name_of(ifindex, ifname)
    raise KernelError(f"{ifname}: renamed {TRIES} times while being read", errno.EAGAIN)


def change(ifindex: int, ifname: str, call: Callable[[str], T], what: str) -> T:
    """call(name) for a change of device `ifindex`, under the name it has right before;
    KernelError when the name was another device's right after, as the change (or its
    failure) may then be that device's."""
    name = ifname if _is(ifname, ifindex) else _name_of(ifindex, ifname)
    renamed = KernelError(f"{what} of {ifname}: the device was renamed while it was changed; the change "
                          f"may have reached the device that had the name {name} then", errno.EAGAIN)
    try:
        result = call(name)
    except KernelError:
        if _is(name, ifindex):
            raise
        raise renamed from None
    if not _is(name, ifindex):
        raise renamed
    return result
