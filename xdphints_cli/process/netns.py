"""Entering a named network namespace (`ip netns` style) for `-n/--netns`."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
from typing import Iterator

from xdphints_cli.errors import KernelError, NotFoundError, PermissionDeniedError, UsageError, errno_name

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        if err == errno.EPERM:
            raise PermissionDeniedError(f"cannot enter network namespace {what}: needs CAP_SYS_ADMIN (run as root)")
        raise KernelError(f"setns {what}", err)


def _open_named(name: str) -> int:
    if not name:
        raise UsageError("a network namespace name cannot be empty")
    if "/" in name or name in (".", ".."):
        raise NotFoundError(f"network namespace '{name}' not found")
    try:
        return os.open(os.path.join(NETNS_RUN_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    except PermissionError:
        raise PermissionDeniedError(f"cannot open network namespace '{name}': permission denied") from None
    except OSError as e:  # ENOENT, ENAMETOOLONG (a name over NAME_MAX cannot exist)
        raise NotFoundError(f"network namespace '{name}' not found ({errno_name(e.errno)}; "
                            "see 'ip netns list')") from None


def enter(name: str) -> None:
    """Move the calling thread into the named namespace for good (the CLI's -n)."""
    fd = _open_named(name)
    try:
        _setns(fd, f"'{name}'")
    finally:
        os.close(fd)


@contextlib.contextmanager
def inside(name: str) -> Iterator[None]:
    """Run a block inside the named namespace and come back afterwards."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        enter(name)
        try:
            yield
        finally:
            _setns(home, "(original)")
    finally:
        os.close(home)


def ifindex_exists(ifindex: int) -> bool:
    """Whether this namespace has a device `ifindex` (SIOCGIFNAME)."""
    try:
        socket.if_indextoname(ifindex)
        return True
    except OSError:
        return False
