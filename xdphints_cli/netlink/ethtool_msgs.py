"""ethtool generic netlink messages, declared on pyroute2's nla framework.

Attribute ids are explicit and names are the kernel's (ethtool_netlink_generated.h),
so a reader can check each row against the UAPI header.
"""

from __future__ import annotations

from xdphints_cli.netlink.pyroute2_nla import NLA_F_NESTED, genlmsg, nla

# request ids (ETHTOOL_MSG_*), from user space
STRSET_GET = 1
FEATURES_GET = 11
FEATURES_SET = 12
CHANNELS_GET = 17
TSINFO_GET = 25
TSCONFIG_GET = 46
TSCONFIG_SET = 47

# reply ids, from the kernel (a separate enum)
STRSET_GET_REPLY = 1
FEATURES_GET_REPLY = 11
FEATURES_SET_REPLY = 12
CHANNELS_GET_REPLY = 18
TSINFO_GET_REPLY = 26
TSCONFIG_GET_REPLY = 47
TSCONFIG_SET_REPLY = 48

FLAG_COMPACT_BITSETS = 1
FLAG_OMIT_REPLY = 2

# string sets (enum ethtool_stringset)
ETH_SS_FEATURES = 4
ETH_SS_SOF_TIMESTAMPING = 12
ETH_SS_TS_TX_TYPES = 13
ETH_SS_TS_RX_FILTERS = 14
ETH_SS_TS_FLAGS = 22


class ethtool_header(nla):
    nla_flags = NLA_F_NESTED
    nla_map = (
        (1, "ETHTOOL_A_HEADER_DEV_INDEX", "uint32"),
        (2, "ETHTOOL_A_HEADER_DEV_NAME", "asciiz"),
        (3, "ETHTOOL_A_HEADER_FLAGS", "uint32"),
        (4, "ETHTOOL_A_HEADER_PHY_INDEX", "uint32"),
    )


class bitset(nla):
    nla_flags = NLA_F_NESTED
    nla_map = (
        (1, "ETHTOOL_A_BITSET_NOMASK", "flag"),
        (2, "ETHTOOL_A_BITSET_SIZE", "uint32"),
        (3, "ETHTOOL_A_BITSET_BITS", "bits"),
        (4, "ETHTOOL_A_BITSET_VALUE", "cdata"),
        (5, "ETHTOOL_A_BITSET_MASK", "cdata"),
    )

    class bits(nla):
        nla_flags = NLA_F_NESTED
        nla_map = ((1, "ETHTOOL_A_BITSET_BITS_BIT", "bit"),)

        class bit(nla):
            nla_flags = NLA_F_NESTED
            nla_map = (
                (1, "ETHTOOL_A_BITSET_BIT_INDEX", "uint32"),
                (2, "ETHTOOL_A_BITSET_BIT_NAME", "asciiz"),
                (3, "ETHTOOL_A_BITSET_BIT_VALUE", "flag"),
            )


class strset_msg(genlmsg):
    nla_map = (
        (1, "ETHTOOL_A_STRSET_HEADER", "ethtool_header"),
        (2, "ETHTOOL_A_STRSET_STRINGSETS", "stringsets"),
        (3, "ETHTOOL_A_STRSET_COUNTS_ONLY", "flag"),
    )
    ethtool_header = ethtool_header

    class stringsets(nla):
        nla_flags = NLA_F_NESTED
        nla_map = ((1, "ETHTOOL_A_STRINGSETS_STRINGSET", "stringset"),)

        class stringset(nla):
            nla_flags = NLA_F_NESTED
            nla_map = (
                (1, "ETHTOOL_A_STRINGSET_ID", "uint32"),
                (2, "ETHTOOL_A_STRINGSET_COUNT", "uint32"),
                (3, "ETHTOOL_A_STRINGSET_STRINGS", "strings"),
            )

            class strings(nla):
                nla_flags = NLA_F_NESTED
                nla_map = ((1, "ETHTOOL_A_STRINGS_STRING", "string"),)

                class string(nla):
                    nla_flags = NLA_F_NESTED
                    nla_map = (
                        (1, "ETHTOOL_A_STRING_INDEX", "uint32"),
                        (2, "ETHTOOL_A_STRING_VALUE", "asciiz"),
                    )


class features_msg(genlmsg):
    nla_map = (
        (1, "ETHTOOL_A_FEATURES_HEADER", "ethtool_header"),
        (2, "ETHTOOL_A_FEATURES_HW", "bitset"),
        (3, "ETHTOOL_A_FEATURES_WANTED", "bitset"),
        (4, "ETHTOOL_A_FEATURES_ACTIVE", "bitset"),
        (5, "ETHTOOL_A_FEATURES_NOCHANGE", "bitset"),
    )
    ethtool_header = ethtool_header
    bitset = bitset


class channels_msg(genlmsg):
    nla_map = (
        (1, "ETHTOOL_A_CHANNELS_HEADER", "ethtool_header"),
        (2, "ETHTOOL_A_CHANNELS_RX_MAX", "uint32"),
        (3, "ETHTOOL_A_CHANNELS_TX_MAX", "uint32"),
        (4, "ETHTOOL_A_CHANNELS_OTHER_MAX", "uint32"),
        (5, "ETHTOOL_A_CHANNELS_COMBINED_MAX", "uint32"),
        (6, "ETHTOOL_A_CHANNELS_RX_COUNT", "uint32"),
        (7, "ETHTOOL_A_CHANNELS_TX_COUNT", "uint32"),
        (8, "ETHTOOL_A_CHANNELS_OTHER_COUNT", "uint32"),
        (9, "ETHTOOL_A_CHANNELS_COMBINED_COUNT", "uint32"),
    )
    ethtool_header = ethtool_header


class provider(nla):
    nla_flags = NLA_F_NESTED
    nla_map = (
        (1, "ETHTOOL_A_TS_HWTSTAMP_PROVIDER_INDEX", "uint32"),
        (2, "ETHTOOL_A_TS_HWTSTAMP_PROVIDER_QUALIFIER", "uint32"),
    )


class tsinfo_msg(genlmsg):
    nla_map = (
        (1, "ETHTOOL_A_TSINFO_HEADER", "ethtool_header"),
        (2, "ETHTOOL_A_TSINFO_TIMESTAMPING", "bitset"),
        (3, "ETHTOOL_A_TSINFO_TX_TYPES", "bitset"),
        (4, "ETHTOOL_A_TSINFO_RX_FILTERS", "bitset"),
        (5, "ETHTOOL_A_TSINFO_PHC_INDEX", "uint32"),
        (6, "ETHTOOL_A_TSINFO_STATS", "cdata"),
        (7, "ETHTOOL_A_TSINFO_HWTSTAMP_PROVIDER", "provider"),
        (8, "ETHTOOL_A_TSINFO_HWTSTAMP_SOURCE", "uint32"),
        (9, "ETHTOOL_A_TSINFO_HWTSTAMP_PHYINDEX", "uint32"),
    )
    ethtool_header = ethtool_header
    bitset = bitset
    provider = provider


class tsconfig_msg(genlmsg):
    nla_map = (
        (1, "ETHTOOL_A_TSCONFIG_HEADER", "ethtool_header"),
        (2, "ETHTOOL_A_TSCONFIG_HWTSTAMP_PROVIDER", "provider"),
        (3, "ETHTOOL_A_TSCONFIG_TX_TYPES", "bitset"),
        (4, "ETHTOOL_A_TSCONFIG_RX_FILTERS", "bitset"),
        (5, "ETHTOOL_A_TSCONFIG_HWTSTAMP_FLAGS", "bitset"),
    )
    ethtool_header = ethtool_header
    bitset = bitset
    provider = provider
