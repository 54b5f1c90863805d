"""A one-line summary of an Ethernet frame: MACs, VLAN tags in the frame, IPv4/IPv6
addresses, protocol and ports. Pure parsing of bytes; never raises on short or odd
frames (it says what it could read)."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import List, Optional, Tuple

ETH_P_IP, ETH_P_IPV6, ETH_P_ARP = 0x0800, 0x86DD, 0x0806
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
PROTO_NAMES = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP", 58: "ICMPv6",
               132: "SCTP"}
PORT_PROTOS = (6, 17, 132)
ETHERTYPE_NAMES = {ETH_P_IP: "IPv4", ETH_P_IPV6: "IPv6", ETH_P_ARP: "ARP", 0x88F7: "PTP",
                   0x88CC: "LLDP"}
IPV6_EXT_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options


def mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


@dataclass(frozen=True)
class VlanTag:
    proto: int
    tci: int

    @property
    def vid(self) -> int:
        return self.tci & 0xFFF

    @property
    def pcp(self) -> int:
        return self.tci >> 13

    @property
    def dei(self) -> int:
        return (self.tci >> 12) & 1

    def to_json(self) -> dict:
        return {"proto": f"0x{self.proto:04x}", "vid": self.vid, "pcp": self.pcp, "dei": self.dei}


@dataclass(frozen=True)
class PacketSummary:
    eth_src: Optional[str] = None
    eth_dst: Optional[str] = None
    vlans: Tuple[VlanTag, ...] = ()
    ethertype: Optional[int] = None
    ip_src: Optional[str] = None
    ip_dst: Optional[str] = None
    ip_proto: Optional[int] = None
    src_port: Optional[int] = None
    dst_port: Optional[int] = None
    truncated: bool = False

    @property
    def proto_name(self) -> Optional[str]:
        if self.ip_proto is None:
            return None
        return PROTO_NAMES.get(self.ip_proto, f"proto {self.ip_proto}")

    def to_json(self) -> dict:
        out: dict = {}
        if self.eth_src is not None:
            out.update({"eth-src": self.eth_src, "eth-dst": self.eth_dst})
        if self.vlans:
            out["vlan-in-frame"] = [v.to_json() for v in self.vlans]
        if self.ethertype is not None:
            out["ethertype"] = f"0x{self.ethertype:04x}"
        if self.ip_src is not None:
            out.update({"ip-src": self.ip_src, "ip-dst": self.ip_dst})
        if self.ip_proto is not None:
            out["ip-proto"] = self.proto_name
        if self.src_port is not None:
            out.update({"src-port": self.src_port, "dst-port": self.dst_port})
        if self.truncated:
            out["truncated"] = True
        return out

    def text(self) -> str:
        if self.eth_src is None:
            return "runt frame"
        parts = [f"{self.eth_src} > {self.eth_dst}"]
        for v in self.vlans:
            parts.append(f"vlan 0x{v.proto:04x} vid {v.vid} pcp {v.pcp}" + (" dei" if v.dei else ""))
        if self.ip_src is not None:
            v6 = self.ethertype == ETH_P_IPV6
            if self.src_port is not None:
                src, dst = ((f"[{self.ip_src}]:{self.src_port}", f"[{self.ip_dst}]:{self.dst_port}")
                            if v6 else (f"{self.ip_src}:{self.src_port}", f"{self.ip_dst}:{self.dst_port}"))
            else:
                src, dst = self.ip_src, self.ip_dst
            parts.append(f"{'IPv6' if v6 else 'IPv4'} {src} > {dst}")
            if self.ip_proto is not None:
                parts.append(self.proto_name or "")
        elif self.ethertype is not None:
            parts.append(ETHERTYPE_NAMES.get(self.ethertype, f"ethertype 0x{self.ethertype:04x}"))
        if self.truncated:
            parts.append("[truncated]")
        return ", ".join(parts)


def summarize(frame: bytes) -> PacketSummary:
    n = len(frame)
    if n < 14:
        return PacketSummary(truncated=n > 0)
    kw: dict = {"eth_dst": mac(frame[0:6]), "eth_src": mac(frame[6:12])}
    etype = struct.unpack_from("!H", frame, 12)[0]
    off = 14
    vlans: List[VlanTag] = []
    while etype in VLAN_TPIDS and len(vlans) < 4:
        if off + 4 > n:
            return PacketSummary(vlans=tuple(vlans), ethertype=etype, truncated=True, **kw)
        vlans.append(VlanTag(etype, struct.unpack_from("!H", frame, off)[0]))
        etype = struct.unpack_from("!H", frame, off + 2)[0]
        off += 4
    kw.update(vlans=tuple(vlans), ethertype=etype)
    l4: Optional[int] = None
    if etype == ETH_P_IP:
        if off + 20 > n:
            return PacketSummary(truncated=True, **kw)
        ihl = (frame[off] & 0xF) * 4
        frag = struct.unpack_from("!H", frame, off + 6)[0] & 0x1FFF
        kw.update(ip_src=str(ipaddress.IPv4Address(frame[off + 12:off + 16])),
                  ip_dst=str(ipaddress.IPv4Address(frame[off + 16:off + 20])),
                  ip_proto=frame[off + 9])
        if not frag and ihl >= 20:
            l4 = off + ihl
    elif etype == ETH_P_IPV6:
        if off + 40 > n:
            return PacketSummary(truncated=True, **kw)
        nxt = frame[off + 6]
        kw.update(ip_src=str(ipaddress.IPv6Address(frame[off + 8:off + 24])),
                  ip_dst=str(ipaddress.IPv6Address(frame[off + 24:off + 40])))
        l4 = off + 40
        for _ in range(8):
            if nxt not in IPV6_EXT_HEADERS:
                break
            if l4 + 2 > n:
                return PacketSummary(ip_proto=nxt, truncated=True, **kw)
            nxt, l4 = frame[l4], l4 + (frame[l4 + 1] + 1) * 8
        kw["ip_proto"] = nxt
    if l4 is not None and kw.get("ip_proto") in PORT_PROTOS:
        if l4 + 4 > n:
            return PacketSummary(truncated=True, **kw)
        kw["src_port"], kw["dst_port"] = struct.unpack_from("!HH", frame, l4)
    return PacketSummary(**kw)
