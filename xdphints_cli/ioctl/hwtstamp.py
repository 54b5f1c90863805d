"""SIOCGHWTSTAMP / SIOCSHWTSTAMP: the hardware timestamping config through the old ioctls.

Used where ethtool TSCONFIG is missing (kernels before 6.14) or the driver lacks
ndo_hwtstamp_get/set. Values are the raw HWTSTAMP_TX_* / HWTSTAMP_FILTER_* numbers;
callers name them through the kernel's ethtool string sets.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
from dataclasses import dataclass

from xdphints_cli.errors import KernelError
from xdphints_cli.ioctl import ifname as ifname_ioctl

SIOCSHWTSTAMP = 0x89B0
SIOCGHWTSTAMP = 0x89B1
_CONFIG = struct.Struct("=iii")  # struct hwtstamp_config {flags, tx_type, rx_filter}
_IFREQ_SIZE = 40


@dataclass(frozen=True)
class HwtstampConfig:
    flags: int
    tx_type: int
    rx_filter: int

    def pack(self) -> bytes:
        return _CONFIG.pack(self.flags, self.tx_type, self.rx_filter)

    @classmethod
    def unpack(cls, data: bytes) -> "HwtstampConfig":
        return cls(*_CONFIG.unpack_from(data))


def ifreq(ifname: str, data_addr: int) -> bytes:
    """struct ifreq: the name, then ifr_data (a pointer) at offset 16."""
    name = os.fsencode(ifname)  # interface names are bytes; argv and rtnl give them as os.fsdecode does
    if len(name) >= 16:
        raise KernelError(f"hwtstamp ioctl on {ifname}", errno.ENODEV)
    return struct.pack("16sP", name, data_addr).ljust(_IFREQ_SIZE, b"\0")


def _ioctl(ifname: str, request: int, config: HwtstampConfig, what: str) -> HwtstampConfig:
    buf = ctypes.create_string_buffer(config.pack(), _CONFIG.size)
    req = bytearray(ifreq(ifname, ctypes.addressof(buf)))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            fcntl.ioctl(sock.fileno(), request, req)
        except OSError as e:
            raise KernelError(f"{what} of {ifname}", e.errno or errno.EIO) from None
    return HwtstampConfig.unpack(buf.raw)


def get_config(ifname: str, *, ifindex: int) -> HwtstampConfig:
    """The config of device `ifindex` (called `ifname` when it was looked up)."""
    return ifname_ioctl.read(ifindex, ifname,
                             lambda name: _ioctl(name, SIOCGHWTSTAMP, HwtstampConfig(0, 0, 0), "SIOCGHWTSTAMP"))


def set_config(ifname: str, config: HwtstampConfig, *, ifindex: int) -> HwtstampConfig:
    """Apply a config; returns what the driver applied (it may widen the rx-filter)."""
    return ifname_ioctl.change(ifindex, ifname, lambda name: _ioctl(name, SIOCSHWTSTAMP, config, "SIOCSHWTSTAMP"),
                               "SIOCSHWTSTAMP")
