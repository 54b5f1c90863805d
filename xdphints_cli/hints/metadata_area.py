"""Does this kernel let XDP programs reserve the metadata area, and so which transport
does `auto` start with? Kept apart from transport.py (the program generator's side)
because `show` and `check` ask it too and must stay light: one BPF_PROG_LOAD of four
prebuilt instructions, no assembler.
"""

from __future__ import annotations

import errno
from functools import lru_cache
from typing import Tuple

# r2 = 0; call bpf_xdp_adjust_meta (54), r1 being ctx; r0 = XDP_PASS; exit
# (a test checks these bytes against the assembler's)
PROBE_INSNS = bytes.fromhex("b702000000000000" "8500000036000000" "b700000002000000"
                            "9500000000000000")
PROBE_LOG_SIZE = 4096
# the transport auto takes where the kernel refuses the area: dump's, --pass's
INSTEAD = ("headroom", "fingerprint")


class MetadataArea:
    """status: "accepted", "refused" or "unknown" (the probe could not run); reason:
    the verifier's line, or why the probe could not run."""

    __slots__ = ("status", "reason")

    def __init__(self, status: str, reason: str = ""):
        self.status, self.reason = status, reason

    def __eq__(self, other) -> bool:
        return (isinstance(other, MetadataArea)
                and (self.status, self.reason) == (other.status, other.reason))

    def __repr__(self) -> str:
        return f"MetadataArea({self.status!r}, {self.reason!r})"


@lru_cache(maxsize=1)
def kernel_metadata_area() -> MetadataArea:
    """Load an XDP program that calls bpf_xdp_adjust_meta: whether the verifier takes
    it is a property of the kernel (some builds refuse the helper in every XDP
    program), not of a driver. Needs CAP_BPF, else "unknown"."""
    import os

    from xdphints_cli.bpf import syscall as sc
    from xdphints_cli.bpf.verifier_log import log_text, reason_line

    log = bytearray(PROBE_LOG_SIZE)
    a = sc.Attr().u32(0, sc.BPF_PROG_TYPE_XDP).u32(4, len(PROBE_INSNS) // 8)
    a.ptr(8, PROBE_INSNS).ptr(16, b"GPL").u32(24, 1).u32(28, len(log)).ptr(32, log)
    try:
        ret = sc.bpf_raw(sc.BPF_PROG_LOAD, a)
    except OSError as e:
        return MetadataArea("unknown", f"probe load failed: {e.strerror or e}")
    finally:
        a.release()
    if ret >= 0:
        os.close(ret)
        return MetadataArea("accepted")
    reason = reason_line(log_text(bytes(log)))
    if -ret in (errno.EINVAL, errno.EACCES) and "adjust_meta" in reason:
        return MetadataArea("refused", reason)
    if -ret == errno.EPERM:
        return MetadataArea("unknown", "probing needs CAP_BPF")
    return MetadataArea("unknown", f"probe load failed: {reason or os.strerror(-ret)}")


def auto_choice(passing: bool = False) -> Tuple[str, str]:
    """(transport name, why) auto starts with: the metadata area unless this kernel
    refuses it. `passing`: for dump --pass and verify."""
    area = kernel_metadata_area()
    if area.status == "refused":
        return INSTEAD[passing], f"auto: metadata area refused by this kernel: {area.reason}"
    if area.status == "unknown":
        return "metadata", f"auto: the metadata area ({area.reason})"
    return "metadata", "auto: this kernel accepts the XDP metadata area"
