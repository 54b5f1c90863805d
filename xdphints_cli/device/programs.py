"""The XDP programs attached to a device, described through bpf(2) prog info."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Optional, Tuple

from xdphints_cli.errors import PermissionDeniedError, XdpHintsError
from xdphints_cli.netlink.rtnl import XdpAttachment

if TYPE_CHECKING:
    from xdphints_cli.bpf.program_btf import HintsStruct


@dataclass(frozen=True)
class Program:
    id: int
    mode: str
    name: Optional[str] = None
    tag: Optional[str] = None
    btf_id: Optional[int] = None
    map_ids: Tuple[int, ...] = ()
    hints_structs: Optional[Tuple["HintsStruct", ...]] = None  # None: no BTF, or not read

    def to_json(self) -> dict:
        out: dict = {"id": self.id, "mode": self.mode}
        if self.name is not None:
            out.update({"name": self.name, "tag": self.tag})
            if self.btf_id:
                out["btf-obj-id"] = self.btf_id   # the BTF object's id; "btf-id" is a type id everywhere
            out["map-ids"] = list(self.map_ids)
            if self.hints_structs is not None:
                out["hints-structs"] = [h.to_json() for h in self.hints_structs]
        return out


def describe(prog_id: int, mode: str) -> Program:
    from xdphints_cli.bpf import info

    with info.prog_fd_by_id(prog_id) as fd:
        pi = info.prog_info(fd.fd)
    structs = None
    if pi.btf_id:
        from xdphints_cli.bpf.program_btf import hints_of_btf

        try:
            structs = hints_of_btf(pi.btf_id)
        except XdpHintsError:
            structs = None  # BTF unreadable or malformed: the rest still shows
    return Program(prog_id, mode, pi.name, pi.tag, pi.btf_id or None, tuple(pi.map_ids), structs)


def describe_programs(xdp: XdpAttachment, unavailable: Dict[str, str]) -> Tuple[Program, ...]:
    """Every attached program; with only ids where bpf(2) says no (opening a program by
    id needs CAP_SYS_ADMIN: BPF_PROG_GET_FD_BY_ID)."""
    out = []
    for mode, prog_id in xdp.programs:
        try:
            out.append(describe(prog_id, mode))
        except PermissionDeniedError:
            unavailable["xdp"] = "program details need CAP_SYS_ADMIN (run as root)"
            out.append(Program(prog_id, mode))
        except XdpHintsError as e:
            unavailable["xdp"] = f"program {prog_id}: {e}"
            out.append(Program(prog_id, mode))
    return tuple(out)
