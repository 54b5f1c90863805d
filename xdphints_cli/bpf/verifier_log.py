"""The verifier's reason for rejecting a program, out of its log (light: no assembler)."""

from __future__ import annotations

import re

# lines of a verifier log that trace or sum up, not say why: "12: (85) call ...",
# "; source line", "R1=ctx() R10=fp0", "processed 2 insns ...", "verification time ..."
_TRACE = re.compile(r"^(\d+: |; |R\d+(_[a-z]+)?=|processed \d+ insns|verification time|stack depth|"
                    r"from \d+ to \d+|mark_precise|last_idx|regs=|parent didn't|func#\d)")


def reason_line(log: str) -> str:
    """The verifier's reason for a rejection: the last line of its log that is not
    instruction trace or statistics ("program of this type cannot use helper
    bpf_xdp_adjust_meta#54", "R2 !read_ok"); the last line when every line is."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if not _TRACE.match(ln):
            return ln
    return lines[-1] if lines else ""


def log_text(log: bytes) -> str:
    """A log buffer the kernel filled, as text."""
    return log.split(b"\0", 1)[0].decode("utf-8", "replace")
