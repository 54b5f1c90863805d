"""netlink/events.py: the parsers on crafted and corrupt messages, and the EventSource
against the real kernel in a throwaway namespace."""

from __future__ import annotations

import struct

import pytest

from conftest import unique_name
from event_helpers import build_hints_pass, collect
from xdphints_cli.netlink import event_wire as wire
from xdphints_cli.netlink import events as ev


def nla(atype: int, payload: bytes) -> bytes:
    return wire.nla(atype, payload)


def link_msg(mtype: int, ifindex: int, flags: int, *attrs: bytes) -> bytes:
    body = wire.IFINFO.pack(0, 1, ifindex, flags, 0) + b"".join(attrs)
    return wire.NLMSG.pack(16 + len(body), mtype, 0, 0, 0) + body


def test_parse_links_new_rename_xdp_and_move():
    xdp = nla(wire.IFLA_XDP | wire.NLA_F_NESTED, nla(2, b"\x01") + nla(4, struct.pack("=I", 42))
              + nla(5, struct.pack("=I", 42)))
    data = (link_msg(wire.RTM_NEWLINK, 7, 0x1 | 0x10000, nla(wire.IFLA_IFNAME, b"eth\"\\0\0"), xdp)
            + link_msg(wire.RTM_DELLINK, 8, 0, nla(wire.IFLA_IFNAME, b"gone\0"),
                       nla(wire.IFLA_NEW_NETNSID, struct.pack("=i", 3))))
    (k1, s1, x1), (k2, s2, x2) = wire.parse_links(data)
    assert (k1, s1.ifindex, s1.ifname, s1.up, s1.xdp, x1) == ("new", 7, 'eth"\\0', True, (("drv", 42),), {})
    assert (k2, s2.ifindex, s2.ifname, s2.up, s2.xdp, x2) == ("del", 8, "gone", False, (), {"moved": True})


def test_parse_links_not_utf8_name_kept_as_bytes():
    (_, state, _), = wire.parse_links(link_msg(wire.RTM_NEWLINK, 3, 0, nla(wire.IFLA_IFNAME, b"x\xff\0")))
    assert state.ifname.encode("utf-8", "surrogateescape") == b"x\xff"


@pytest.mark.parametrize("cut", range(1, 60, 3))
def test_parse_links_truncated_never_raises(cut):
    data = link_msg(wire.RTM_NEWLINK, 7, 0, nla(wire.IFLA_IFNAME, b"eth0\0"),
                    nla(wire.IFLA_XDP, nla(2, b"\x01") + nla(4, struct.pack("=I", 9))))
    out = wire.parse_links(data[:len(data) - cut])
    assert all(state.ifindex == 7 for _, state, _ in out)


def test_attrs_zero_length_stops():
    data = struct.pack("=HH", 0, 1) + b"\0" * 16
    assert wire.attrs(data, 0, len(data)) == {}


def test_decode_bitset_compact_and_verbose():
    names = ("a", "b", "c") + tuple(f"f{i}" for i in range(3, 40))
    compact = (nla(wire.BITSET_NOMASK, b"") + nla(wire.BITSET_SIZE, struct.pack("=I", 40))
               + nla(wire.BITSET_VALUE, struct.pack("=II", 0b101, 1 << 3)))
    assert wire.decode_bitset(compact, 0, len(compact), names) == {"a", "c", "f35"}
    bit = lambda name, on: nla(1 | wire.NLA_F_NESTED, nla(wire.BIT_NAME, name + b"\0")  # noqa: E731
                                  + (nla(wire.BIT_VALUE, b"") if on else b""))
    verbose = nla(wire.BITSET_BITS | wire.NLA_F_NESTED, bit(b"rx-hashing", True) + bit(b"rx-gro", False))
    assert wire.decode_bitset(verbose, 0, len(verbose), names) == {"rx-hashing"}


def test_decode_bitset_size_beyond_value_is_bounded():
    data = nla(wire.BITSET_SIZE, struct.pack("=I", 4096)) + nla(wire.BITSET_VALUE, struct.pack("=I", 1))
    assert wire.decode_bitset(data, 0, len(data), ("x",)) == {"x"}


def test_parse_features_notification():
    hdr = nla(wire.ETHTOOL_A_FEATURES_HEADER | wire.NLA_F_NESTED, nla(wire.ETHTOOL_A_HEADER_DEV_INDEX, struct.pack("=I", 5)))
    active = nla(wire.ETHTOOL_A_FEATURES_ACTIVE | wire.NLA_F_NESTED,
                 nla(wire.BITSET_NOMASK, b"") + nla(wire.BITSET_SIZE, struct.pack("=I", 2))
                 + nla(wire.BITSET_VALUE, struct.pack("=I", 2)))
    body = struct.pack("=BBH", wire.ETHTOOL_MSG_FEATURES_NTF, 1, 0) + hdr + active
    data = wire.NLMSG.pack(16 + len(body), 30, 0, 0, 0) + body
    assert wire.parse_features(data, 30, ("rx-gro", "rx-vlan-hw-parse")) == [(5, frozenset({"rx-vlan-hw-parse"}))]
    assert wire.parse_features(data, 31, ("rx-gro", "rx-vlan-hw-parse")) == []     # another family


# --- the real kernel ----------------------------------------------------------

@pytest.fixture
def source(veth):
    from xdphints_cli.process import netns

    with netns.inside(veth.ns):
        src = ev.EventSource(poll_interval=0.5)
    try:
        yield src
    finally:
        src.close()


def kinds(events, ifname=None):
    return [(e.kind, e.ifname) for e in events if ifname is None or e.ifname == ifname]


@pytest.mark.privileged
def test_baseline_has_no_events_and_knows_the_links(veth, source):
    assert veth.dev in {s.ifname for s in source.links().values()}
    assert source.wait(1.2) == []       # at least two polls of an unchanged namespace


@pytest.mark.privileged
def test_offload_change_by_ethtool(veth, source):
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    got = collect(source, lambda es: any(e.kind == "features" for e in es))
    (feat,) = [e for e in got if e.kind == "features"]
    assert feat.ifname == veth.dev and feat.via == "ethtool"
    assert feat.detail["changed"] == {"rx-vlan-hw-parse": False}


@pytest.mark.privileged
def test_link_add_rename_down_up_delete(veth, source):
    a, b = unique_name("ea")[:15], unique_name("eb")[:15]
    veth.run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    renamed = unique_name("er")[:15]
    veth.run("ip", "link", "set", a, "name", renamed)
    veth.run("ip", "link", "set", renamed, "up")
    veth.run("ip", "link", "set", b, "up")
    veth.run("ip", "link", "set", b, "down")
    veth.run("ip", "link", "del", renamed)
    got = collect(source, lambda es: ("link-del", renamed) in kinds(es))
    seq = kinds(got)
    for want in (("link-new", a), ("rename", renamed), ("up", renamed), ("down", renamed), ("link-del", renamed)):
        assert want in seq, (want, seq)
    assert seq.index(("link-new", a)) < seq.index(("rename", renamed)) < seq.index(("link-del", renamed))
    rename = next(e for e in got if e.kind == "rename")
    assert rename.detail == {"old-name": a}


@pytest.mark.privileged
def test_move_out_of_the_namespace(veth, source):
    a, b = unique_name("ma")[:15], unique_name("mb")[:15]
    veth.run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    veth.run("ip", "link", "set", b, "netns", veth.peer_ns)
    got = collect(source, lambda es: ("link-del", b) in kinds(es))
    (gone,) = [e for e in got if e.kind == "link-del"]
    assert gone.ifname == b and gone.detail == {"moved": True}


@pytest.mark.privileged
def test_xdp_attach_and_detach_via_netlink(veth, source, tmp_path):
    obj = build_hints_pass(tmp_path)
    veth.run("ip", "link", "set", "dev", veth.dev, "xdpdrv", "obj", obj, "sec", "xdp")
    got = collect(source, lambda es: ("xdp", veth.dev) in kinds(es))
    (att,) = [e for e in got if e.kind == "xdp"]
    assert att.detail["action"] == "attach" and att.detail["previous"] == []
    (prog,) = att.detail["programs"]
    import json
    shown = json.loads(veth.run("ip", "-j", "link", "show", veth.dev).stdout)[0]["xdp"]["prog"]["id"]
    assert prog == {"mode": "drv", "id": shown}
    veth.run("ip", "link", "set", "dev", veth.dev, "xdpdrv", "off")
    got = collect(source, lambda es: ("xdp", veth.dev) in kinds(es))
    (det,) = [e for e in got if e.kind == "xdp"]
    assert det.detail["action"] == "detach" and det.detail["previous"] == [prog]


@pytest.mark.privileged
def test_xdp_bpf_link_attach_is_polled(veth, source):
    """A bpf_link attachment sends no RTM_NEWLINK: the poll finds it."""
    from xdphints_cli.bpf.insn import R0, exit_, mov64_imm
    from xdphints_cli.bpf.link import XdpLink
    from xdphints_cli.bpf.prog import Program
    from xdphints_cli.process import netns

    with netns.inside(veth.ns):
        prog = Program.load([mov64_imm(R0, 2), exit_()], name="xdph_pass")
        link = XdpLink.attach(prog.fd, veth.ifindex())
    with prog:
        with link:
            got = collect(source, lambda es: ("xdp", veth.dev) in kinds(es))
            (att,) = [e for e in got if e.kind == "xdp"]
            assert (att.via, att.detail["action"], att.detail["programs"]) == (
                "poll", "attach", [{"mode": "drv", "id": prog.id}])
        got = collect(source, lambda es: ("xdp", veth.dev) in kinds(es))
        assert [e.detail["action"] for e in got if e.kind == "xdp"] == ["detach"]


@pytest.mark.privileged
def test_hwtstamp_change_is_polled(veth, source, monkeypatch):
    """veth has no hwtstamp config, so the ioctl read is stood in for; what is
    tested is that the poll reports a changed config once."""
    configs = iter([{"tx-type": "off", "rx-filter": "all"}] + [{"tx-type": "off", "rx-filter": "none"}] * 100)
    real = source._read_hwtstamp
    monkeypatch.setattr(source, "_read_hwtstamp",
                        lambda state: next(configs) if state.ifname == veth.dev else real(state))
    got = collect(source, lambda es: sum(e.kind == "hwtstamp" for e in es) >= 2, limit=3)
    hw = [e for e in got if e.kind == "hwtstamp"]
    assert [e.via for e in hw] == ["poll", "poll"]
    assert hw[0].detail == {"old": None, "new": {"tx-type": "off", "rx-filter": "all"}}
    assert hw[1].detail == {"old": {"tx-type": "off", "rx-filter": "all"},
                            "new": {"tx-type": "off", "rx-filter": "none"}}


@pytest.mark.privileged
def test_watch_by_name_follows_the_name(veth):
    """By name: the device's rename away shows, then nothing of it; another device
    renamed to the name shows from then on."""
    from xdphints_cli.process import netns

    with netns.inside(veth.ns):
        src = ev.EventSource(ifname=veth.dev, poll_interval=0.5)
    with src:
        other, away, peer = unique_name("wo")[:15], unique_name("wa")[:15], unique_name("wp")[:15]
        veth.run("ip", "link", "add", other, "type", "veth", "peer", "name", peer)
        veth.run("ip", "link", "set", peer, "up")      # carrier for `other` once it is up
        veth.run("ip", "link", "set", veth.dev, "name", away)
        veth.run("ip", "link", "set", away, "down")
        veth.run("ip", "link", "set", other, "name", veth.dev)
        veth.run("ip", "link", "set", veth.dev, "up")
        got = collect(src, lambda es: ("up", veth.dev) in kinds(es))
        assert kinds(got) == [("rename", away), ("rename", veth.dev), ("up", veth.dev)]
        assert [e.detail["old-name"] for e in got[:2]] == [veth.dev, other]


@pytest.mark.privileged
def test_watch_by_ifindex_follows_renames_and_polls_the_one_link(veth):
    """By ifindex (as dump watches its device): a renamed device is still followed,
    other devices never show, and its bpf_link attachment is found by the poll of
    that one link."""
    from xdphints_cli.bpf.insn import R0, exit_, mov64_imm
    from xdphints_cli.bpf.link import XdpLink
    from xdphints_cli.bpf.prog import Program
    from xdphints_cli.process import netns

    ifindex = veth.ifindex()
    with netns.inside(veth.ns):
        src = ev.EventSource(ifindex=ifindex, poll_interval=0.5)
    with src:
        new = unique_name("wi")[:15]
        veth.run("ip", "link", "add", unique_name("wq")[:15], "type", "veth", "peer", "name", unique_name("wr")[:15])
        veth.run("ip", "link", "set", veth.dev, "name", new)
        with netns.inside(veth.ns):
            prog = Program.load([mov64_imm(R0, 2), exit_()], name="xdph_pass")
            link = XdpLink.attach(prog.fd, ifindex)
        with prog, link:
            got = collect(src, lambda es: any(e.kind == "xdp" for e in es))
        assert [(e.kind, e.ifindex, e.ifname) for e in got] == [("rename", ifindex, new), ("xdp", ifindex, new)]
        assert got[1].via == "poll"


def test_start_up_names_equal_the_pyroute2_readers():
    """The family, its monitor group and the string sets as events.py reads them with
    struct are what the pyroute2-based session reads."""
    from xdphints_cli.netlink import ethtool
    from xdphints_cli.netlink.ethtool_msgs import ETH_SS_FEATURES, ETH_SS_TS_RX_FILTERS, ETH_SS_TS_TX_TYPES
    from xdphints_cli.netlink.session import Netlink

    with ev.EventSource(ifname="lo", poll_interval=60) as src, Netlink() as nl:
        family = nl.family("ethtool")
        assert (src._ethtool_id, src._monitor_group) == (family.id, family.groups["monitor"])
        assert src._feature_names == ethtool.get_strings(nl, ETH_SS_FEATURES)
        assert src._tx_names == ethtool.get_strings(nl, ETH_SS_TS_TX_TYPES)
        assert src._rx_names == ethtool.get_strings(nl, ETH_SS_TS_RX_FILTERS)
        assert "rx-vlan-hw-parse" in src._feature_names and src._rx_names[:2] == ("none", "all")
    assert (wire.ETH_SS_FEATURES, wire.ETH_SS_TS_TX_TYPES, wire.ETH_SS_TS_RX_FILTERS) == (
        ETH_SS_FEATURES, ETH_SS_TS_TX_TYPES, ETH_SS_TS_RX_FILTERS)


def _cut(data: bytes, n: int) -> bytes:
    """The first message of `data`, cut to n bytes with its header saying so: the walks
    inside it meet the cut, not the header check."""
    n = max(wire.NLMSG.size, min(n, len(data)))
    return struct.pack("=I", n) + data[4:n]


@pytest.mark.parametrize("keep", range(16, 1200, 9))
def test_strset_and_family_parsers_survive_truncation(keep):
    """Real replies cut anywhere: no exception, no loop, and a cut reply never yields
    more names than the whole one."""
    from xdphints_cli.netlink.events import NETLINK_GENERIC, NLM_F_ACK, _Requests

    req = _Requests(NETLINK_GENERIC)
    try:
        fam = req.transact(wire.GENL_ID_CTRL, NLM_F_ACK, wire.getfamily_payload("ethtool"))[0]
        fid = wire.parse_family(fam)[0]
        sets = req.transact(fid, NLM_F_ACK, wire.strset_payload((13, 14)))[0]
    finally:
        req.sock.close()
    whole = wire.parse_strsets(sets, fid)
    wire.parse_family(_cut(fam, keep))
    part = wire.parse_strsets(_cut(sets, keep), fid)
    assert all(len(part[k]) <= len(whole[k]) for k in part)
