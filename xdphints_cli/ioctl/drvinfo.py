"""ETHTOOL_GDRVINFO through SIOCETHTOOL: the driver name (netlink has no such request)."""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from typing import Optional

from xdphints_cli.ioctl import ifname as ifname_ioctl

SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO = 0x3
# struct ethtool_drvinfo: cmd, driver[32], version[32], fw_version[32], bus_info[32],
# erom_version[32], reserved2[12], then five u32 counters
_DRVINFO = struct.Struct("=I32s32s32s32s32s12s5I")


def driver_name(ifindex: int, ifname: str) -> Optional[str]:
    """The driver's name of device `ifindex` (called `ifname` when it was looked up),
    or None when the device has no ethtool driver info (lo, tun...)."""
    return ifname_ioctl.read(ifindex, ifname, _driver_name)


def _driver_name(ifname: str) -> Optional[str]:
    buf = ctypes.create_string_buffer(_DRVINFO.pack(ETHTOOL_GDRVINFO, *([b""] * 6), *([0] * 5)), _DRVINFO.size)
    req = bytearray(struct.pack("16sP", os.fsencode(ifname)[:15], ctypes.addressof(buf)).ljust(40, b"\0"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, req)
        except OSError:
            return None
    driver = _DRVINFO.unpack(buf.raw)[1].split(b"\0", 1)[0].decode(errors="replace")
    return driver or None
