"""A loaded program's BTF: program -> BTF object -> blob -> Spec.

The glue between xdphints_cli.bpf (which moves blobs) and xdphints_cli.btf (which
parses them); the btf package itself never imports bpf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from xdphints_cli.errors import BTFError, NotSupportedError, UsageError


@dataclass(frozen=True)
class HintsStruct:
    """A hints struct in a program's BTF, as `show` lists it."""

    name: str
    btf_id: int
    size: int

    def to_json(self) -> dict:
        return {"name": self.name, "btf-id": self.btf_id, "size": self.size}


def no_btf_error(prog_id: int, name: str = "") -> NotSupportedError:
    what = f"program id {prog_id}" + (f" ({name})" if name else "")
    return NotSupportedError(f"{what} was loaded without BTF: its loader must provide BTF "
                             "(btf_fd and func_info, e.g. libbpf with an object built by clang -g)")


def spec_of_btf(btf_id: int):
    """Parse the loaded BTF object `btf_id`. Standalone when it parses as such,
    else as split BTF over vmlinux (module BTF, or a program's split BTF)."""
    from xdphints_cli.bpf import btf_object as kbtf
    from xdphints_cli.bpf import info
    from xdphints_cli.btf import reader, sources

    with info.btf_fd_by_id(btf_id) as fd:
        bi = info.btf_info(fd.fd)
        blob = kbtf.btf_blob_from_fd(fd.fd)
    if bi.kernel_btf and bi.name == "vmlinux":
        return sources.kernel()
    if bi.kernel_btf:
        return reader.parse(blob, sources.kernel())
    try:
        return reader.parse(blob)
    except BTFError as standalone:
        try:
            return reader.parse(blob, sources.kernel())
        except BTFError:
            raise standalone from None


def prog_info(prog_id: int):
    from xdphints_cli.bpf import info

    with info.prog_fd_by_id(prog_id) as fd:
        return info.prog_info(fd.fd)


def pinned_prog_info(path: str):
    """Info of the program pinned at `path` (a bpffs path)."""
    from xdphints_cli.bpf import info

    with info.obj_get(path) as fd:
        try:
            with open(f"/proc/self/fdinfo/{fd.fd}") as f:
                is_prog = "prog_type:" in f.read()
        except OSError:
            is_prog = True  # cannot tell: let prog_info decide
        if not is_prog:
            raise UsageError(f"{path}: pinned object is not a program")
        return info.prog_info(fd.fd)


def prog_spec(pi):
    """The Spec of a program (from its ProgInfo); NotSupportedError without BTF."""
    if not pi.btf_id:
        raise no_btf_error(pi.id, pi.name)
    return spec_of_btf(pi.btf_id)


def hints_of_btf(btf_id: int) -> Tuple[HintsStruct, ...]:
    """Hints structs defined in the loaded BTF object `btf_id` (not in its base)."""
    from xdphints_cli.btf import hints

    spec = spec_of_btf(btf_id)
    return tuple(HintsStruct(t.name, t.id, t.size) for t in hints.hints_structs(spec))


__all__ = ["HintsStruct", "spec_of_btf", "prog_info", "pinned_prog_info", "prog_spec",
           "hints_of_btf", "no_btf_error"]
