"""`xdphints dump --attached`: capture through the user's own hints-hook XDP program.

The program already on the device (or pinned at --pinned) redirects into an XSKMAP of
its own; dump binds an AF_XDP socket per queue, puts it in that map at the queue's
index and decodes the metadata through the program's BTF by the trailing btf_id
convention (the u32 just before the packet names the struct; the struct's size says
where it starts). Several structs per program work (demuxed by btf_id); a btf_id the
BTF does not know is shown as raw bytes with the id. On exit only our sockets leave
the map: the program is never detached or replaced.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from xdphints_cli.errors import NotFoundError, NotSupportedError, UsageError, XdpHintsError
from xdphints_cli.hints.capture import (XDP_PACKET_HEADROOM, Batch, Capture, Packet, Target,
                                        checked_target)
from xdphints_cli.hints.decoding import MetadataDecoder
from xdphints_cli.hints.packet import summarize

_U32 = struct.Struct("<I")
# The most metadata an XDP program can put in front of a packet: the kernel keeps its
# length in a u8 (skb_shared_info.meta_len) and wants a multiple of 4
# (xdp_metalen_invalid()). AF_XDP does not say how long a packet's metadata is, and
# writes nothing in front of a packet that has none: dump fills this area with a filler
# pattern before a frame is first given to the kernel and again before it goes back,
# so what the decoder reads there is this packet's. The filler is not zero: zero is
# what programs write most (a flag word, a timestamp that is not there), and the raw
# view can then show a packet's metadata from its real start.
META_MAX = 252
FILLER_WORD = b"\xa5\xa5\xa5\xa5"
_FILLER = FILLER_WORD * (META_MAX // 4)


@dataclass(frozen=True)
class NamedStruct:
    """--struct NAME: the layout every packet's metadata is decoded as."""
    spec: Any
    type_id: int
    name: str
    size: int
    where: str           # where the layout came from, for the start line


def named_struct(name: str, btf_file: Optional[str], prog_spec) -> NamedStruct:
    """Struct NAME from FILE (its BTF, else its DWARF), else the program's BTF, else
    vmlinux; NotFoundError naming the places looked in."""
    from xdphints_cli.btf import sources

    found, looked = None, []
    if btf_file:
        try:
            spec, tid, kind = sources.struct_in_file(btf_file, name)
            found = spec, tid, f"{btf_file} ({kind})"
        except NotFoundError:
            looked.append(btf_file)
    if found is None and prog_spec is not None:
        tid = sources.struct_id(prog_spec, name)
        if tid is None:
            looked.append("the program's BTF")
        else:
            found = prog_spec, tid, "the program's BTF"
    if found is None:
        spec = sources.kernel()
        tid = sources.struct_id(spec, name)
        if tid is None:
            raise NotFoundError(f"no struct {name} in {', '.join(looked + ['vmlinux BTF'])}")
        found = spec, tid, "vmlinux BTF"
    spec, tid, where = found
    size = spec[tid].size
    if not 0 < size <= META_MAX:
        raise UsageError(f"struct {name} ({where}) is {size} bytes: metadata in front of a "
                         f"packet is 1 to {META_MAX} bytes")
    return NamedStruct(spec, tid, name, size, where)


def _xskmaps(map_ids) -> List[int]:
    from xdphints_cli.bpf import info
    from xdphints_cli.bpf import syscall as sc

    found = []
    for mid in map_ids:
        try:
            with info.map_fd_by_id(mid) as fd:
                if info.map_info(fd.fd).type == sc.BPF_MAP_TYPE_XSKMAP:
                    found.append(mid)
        except XdpHintsError:
            continue
    return found


def extension_programs(target_prog_id: int, links) -> List[int]:
    """Ids of the programs whose freplace links extend `target_prog_id`: the component
    programs a libxdp dispatcher runs (`links` are bpf_link infos)."""
    from xdphints_cli.bpf import syscall as sc

    return sorted(link.prog_id for link in links
                  if link.type == sc.BPF_LINK_TYPE_TRACING and link.target_obj_id == target_prog_id)


def look_through_dispatcher(pi, links=None, xskmaps_of=None, info_of=None):
    """The program that owns the XSKMAP: `pi` itself, or for a libxdp dispatcher
    (which has no XSKMAP of its own) the one component program that has one.
    The last three arguments default to the kernel's answers (tests give their own)."""
    from xdphints_cli.bpf.program_btf import prog_info

    xskmaps_of = xskmaps_of or (lambda p: _xskmaps(p.map_ids))
    info_of = info_of or prog_info
    if xskmaps_of(pi) or not pi.name.startswith("xdp_dispatcher"):
        return pi
    if links is None:
        links = _all_links()
    owners = [c for c in map(info_of, extension_programs(pi.id, links)) if xskmaps_of(c)]
    if len(owners) > 1:
        raise NotSupportedError(
            f"the libxdp dispatcher (program id {pi.id}) runs {len(owners)} programs with an XSKMAP "
            f"(ids {', '.join(str(o.id) for o in owners)}): pin the one to use and give it with --pinned PATH")
    return owners[0] if owners else pi


def _all_links() -> list:
    from xdphints_cli.bpf import info

    out = []
    for link_id in info.next_ids("link"):
        try:
            with info.link_fd_by_id(link_id) as fd:
                out.append(info.link_info(fd.fd))
        except XdpHintsError:  # gone meanwhile, or not ours to see
            continue
    return out


def resolve(dev: Optional[str], queue, pinned: Optional[str],
            acting_on: Callable[[str, str], None] = lambda ifname, chosen_by: None
            ) -> Tuple[Target, Any, Optional[int]]:
    """(target, program info, pinned XSKMAP fd or None): the device, its queue(s), the
    program whose BTF decodes the metadata and the XSKMAP to put our sockets in."""
    from xdphints_cli.bpf import info
    from xdphints_cli.bpf.program_btf import prog_info
    from xdphints_cli.device.state import choose_link
    from xdphints_cli.netlink.session import Netlink

    with Netlink() as nl:
        link, chosen_by = choose_link(nl, dev)
        acting_on(link.ifname, chosen_by)
        target = checked_target(nl, link, queue)
    pinned_map = None
    pi = None
    if pinned:
        fd = info.obj_get(pinned)
        try:
            with open(f"/proc/self/fdinfo/{fd.fd}") as f:
                kind = f.read()
        except OSError:
            kind = ""
        if "prog_type:" in kind:
            pi = info.prog_info(fd.fd)
            fd.close()
        elif "map_type:" in kind:
            from xdphints_cli.bpf import syscall as sc

            if info.map_info(fd.fd).type != sc.BPF_MAP_TYPE_XSKMAP:
                fd.close()
                raise UsageError(f"--pinned {pinned}: the pinned map is not an XSKMAP")
            pinned_map = fd.take()
        else:
            fd.close()
            raise UsageError(f"--pinned {pinned}: not a pinned program or XSKMAP")
    if pi is None:
        if not link.xdp.programs:
            raise NotFoundError(f"{link.ifname} has no XDP program attached: --attached uses "
                                "the program already on the device (attach yours first, or "
                                "run dump without --attached to use the built-in one)")
        pi = look_through_dispatcher(prog_info(link.xdp.programs[0][1]))
    return target, pi, pinned_map


class AttachedCapture(Capture):
    """A Capture whose program is the user's: nothing is loaded or attached; our
    sockets go into the program's XSKMAP and come out of it on exit. Each frame's
    metadata area is filled before it goes back to the kernel (see META_MAX)."""

    bulk_rows = False

    def __init__(self, target: Target, queue, prog, pinned_map_fd: Optional[int] = None,
                 struct_name: Optional[str] = None, btf_file: Optional[str] = None, **kw):
        super().__init__(target, queue, **kw)
        self.prog = prog
        self.prog_id = prog.id
        self.btf_id = prog.btf_id
        self._pinned_map_fd = pinned_map_fd
        self._struct_args = (struct_name, btf_file)
        self.named: Optional[NamedStruct] = None
        self.stats.hints = {}
        self.metadata_counts: Counter = Counter()
        self.layout = None
        self.rss_table = {}
        self.map_id = 0
        self.has_hints_structs = False
        self.scrub = _scrub

    def _open(self) -> None:
        from xdphints_cli.bpf import info
        from xdphints_cli.bpf import syscall as sc
        from xdphints_cli.bpf.maps import Map
        from xdphints_cli.btf.hints import hints_structs
        from xdphints_cli.bpf.program_btf import no_btf_error, spec_of_btf

        t, st, pi = self.target, self._stack, self.prog
        what = f"XDP program id {pi.id}" + (f" ({pi.name})" if pi.name else "")
        struct_name, btf_file = self._struct_args
        if self._pinned_map_fd is not None:
            xmap = st.enter_context(Map.from_fd(self._pinned_map_fd))
            self._pinned_map_fd = None
        else:
            maps = _xskmaps(pi.map_ids)
            if not maps:
                raise NotSupportedError(f"{what} on {t.ifname} has no XSKMAP: --attached needs "
                                        "a program that redirects to AF_XDP sockets with "
                                        "bpf_redirect_map() into a BPF_MAP_TYPE_XSKMAP")
            if len(maps) > 1:
                raise NotSupportedError(f"{what} has {len(maps)} XSKMAPs (ids "
                                        f"{', '.join(map(str, maps))}): pin the one to use and "
                                        "give it with --pinned PATH")
            xmap = st.enter_context(Map.from_fd(info.map_fd_by_id(maps[0])))
        if not pi.btf_id and not struct_name:
            raise no_btf_error(pi.id, pi.name)
        map_info = xmap.info()
        self.map_id = map_info.id
        self.spec = spec_of_btf(pi.btf_id) if pi.btf_id else None
        if struct_name:
            from xdphints_cli.btf.decode import compile_decoder

            self.named = named_struct(struct_name, btf_file, self.spec)
            self._named_fn = compile_decoder(self.named.spec, self.named.type_id)
        else:
            self.decoder = MetadataDecoder(self.spec)
            self.has_hints_structs = bool(hints_structs(self.spec))
        n = map_info.max_entries
        for q in self.queues:
            if q >= n:
                raise NotSupportedError(f"the XSKMAP (id {self.map_id}) has {n} entries: no "
                                        f"slot for queue {q}")
        self._open_sockets()
        for x in self.sockets:         # before the sockets are in the map: no packet yet
            _prefill(x)
        for q, x in zip(self.queues, self.sockets):
            try:
                xmap.update_u32(q, x.fd, sc.BPF_NOEXIST)
            except XdpHintsError as e:
                if getattr(e, "errno", None) == 17:   # EEXIST
                    raise XdpHintsError(f"slot {q} of the XSKMAP (id {self.map_id}) already "
                                        "holds another AF_XDP socket: dump does not replace "
                                        "it") from None
                raise
            st.callback(_delete_quietly, xmap, q)
        import time

        self.stats.started = time.monotonic()

    def split(self, addrs: List[int], lengths: List[int], umem):
        """The user's program leaves the packet as it came: only the rows to find."""
        return addrs, lengths, self.rows(addrs, umem)

    def rows(self, addrs: List[int], umem=None) -> List[Optional[tuple]]:
        """Per packet the u32 just before it, as a 1-tuple; None when the whole
        metadata area is still the filler: the program wrote no metadata for it."""
        umem = self._umem if umem is None else umem
        unpack = _U32.unpack_from
        rows: List[Optional[tuple]] = []
        for a in addrs:
            if umem[a - META_MAX:a] == _FILLER:
                rows.append(None)
                self.stats.no_metadata += 1
            else:
                rows.append(unpack(umem, a - 4))
        # by trailing u32; named in metadata_summary, once
        self.metadata_counts.update(r[0] for r in rows if r is not None)
        return rows

    def metadata(self, umem, addr: int) -> Dict[str, Any]:
        """The JSON `metadata` object of one packet: the struct and its fields, or,
        when no known layout names it, the raw bytes of the area (see raw_area)."""
        named = self.named
        if named is not None:
            members = self._named_fn(umem, addr - named.size)
            return {"struct": named.name, "fields": {k: _plain(v) for k, v in members.items()}}
        got = self.decoder.decode(umem, addr, META_MAX)
        if got is None:
            return {"raw": raw_area(umem, addr)}
        tid, members = got
        return {"struct": self.decoder.struct_name(tid), "btf-id": tid,
                "fields": {k: _plain(v) for k, v in members.items()}}

    def decode(self, batch: Batch, snaplen: Optional[int] = None):
        umem = batch.umem if batch.umem is not None else self.xsk.umem
        for addr, length, row in zip(batch.addrs, batch.lengths, batch.rows):
            head = bytes(umem[addr:addr + min(length, max(snaplen or 0, 256))])
            meta = None if row is None else self.metadata(umem, addr)
            yield Packet(batch.time_ns, batch.queue, length, summarize(head), None, {},
                         head[:snaplen] if snaplen else head, meta)

    def metadata_summary(self) -> Dict[str, int]:
        """{struct name, or RAW_KEY for metadata no known layout describes: packets}."""
        out: Counter = Counter()
        for tid, n in self.metadata_counts.items():
            if self.named is not None:
                out[self.named.name] += n
            elif self.decoder._decoder_for(tid) is not None:
                out[self.decoder.struct_name(tid)] += n
            else:
                out[RAW_KEY] += n
        return dict(sorted(out.items()))


RAW_KEY = "unknown-layout"   # a summary key no C struct name can be


def raw_area(umem, addr: int) -> str:
    """The metadata area in front of the packet at `addr`, hex, from the first 4-byte
    word that is not dump's filler (metadata is a multiple of 4 bytes; see META_MAX)."""
    area = bytes(umem[addr - META_MAX:addr])
    start = 0
    while area.startswith(FILLER_WORD, start):
        start += 4
    return area[start:].hex()


def _scrub(umem, addrs: List[int]) -> None:
    """Fill the metadata area of frames about to go back to the kernel."""
    filler = _FILLER
    for a in addrs:
        umem[a - META_MAX:a] = filler


def _prefill(sock) -> None:
    """Fill the metadata area of every frame of a new socket's UMEM (copy mode puts
    each packet at XDP_PACKET_HEADROOM into its frame)."""
    umem, size = sock.umem, sock.umem_area.frame_size
    for base in range(0, len(umem), size):
        umem[base + XDP_PACKET_HEADROOM - META_MAX:base + XDP_PACKET_HEADROOM] = _FILLER


def _plain(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _delete_quietly(xmap, q: int) -> None:
    try:
        xmap.delete_u32(q)
    except XdpHintsError:
        pass
