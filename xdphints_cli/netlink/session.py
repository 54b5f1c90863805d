"""Per-command netlink state: sockets and generic netlink families, made on first use.

Sockets belong to the network namespace they were created in, so a session is
opened after `--netns` has been entered and lives as long as one command.
"""

from __future__ import annotations

from typing import Dict, Optional

from xdphints_cli.netlink.socket import NETLINK_GENERIC, NETLINK_ROUTE, GenlFamily, NetlinkSocket

# the kernel release that brought each family, for "kernel too old" messages
_FAMILY_SINCE = {"ethtool": "5.6", "netdev": "6.3"}


class Netlink:
    def __init__(self) -> None:
        self._genl: Optional[NetlinkSocket] = None
        self._rtnl: Optional[NetlinkSocket] = None
        self._families: Dict[str, GenlFamily] = {}

    @property
    def genl(self) -> NetlinkSocket:
        if self._genl is None:
            self._genl = NetlinkSocket(NETLINK_GENERIC)
        return self._genl

    @property
    def rtnl(self) -> NetlinkSocket:
        if self._rtnl is None:
            self._rtnl = NetlinkSocket(NETLINK_ROUTE)
        return self._rtnl

    def family(self, name: str) -> GenlFamily:
        if name not in self._families:
            self._families[name] = GenlFamily.resolve(self.genl, name, _FAMILY_SINCE.get(name, "?"))
        return self._families[name]

    def close(self) -> None:
        for sock in (self._genl, self._rtnl):
            if sock is not None:
                sock.close()
        self._genl = self._rtnl = None

    def __enter__(self) -> "Netlink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
