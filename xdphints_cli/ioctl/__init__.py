"""The ioctls netlink does not cover: SIOC[GS]HWTSTAMP and ETHTOOL_GDRVINFO."""
