"""Which capabilities this process holds, and one message naming all that a command
lacks (the kernel only ever answers EPERM for the first check that fails)."""

from __future__ import annotations

from typing import Iterable, List, Optional

from xdphints_cli.errors import PermissionDeniedError

# linux/capability.h
CAP_BITS = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_SYS_ADMIN": 21,
            "CAP_BPF": 39}


def effective() -> int:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return 0


def has(name: str, eff: Optional[int] = None) -> bool:
    eff = effective() if eff is None else eff
    if eff >> CAP_BITS[name] & 1:
        return True
    # bpf_capable(): CAP_SYS_ADMIN stands in for CAP_BPF
    return name == "CAP_BPF" and bool(eff >> CAP_BITS["CAP_SYS_ADMIN"] & 1)


def missing(names: Iterable[str], eff: Optional[int] = None) -> List[str]:
    eff = effective() if eff is None else eff
    return [n for n in names if not has(n, eff)]


def require(what: str, names: List[str], why: str = "") -> None:
    """PermissionDeniedError naming every capability of `names` this process lacks."""
    lacking = missing(names)
    if lacking:
        because = f" ({why})" if why else ""
        raise PermissionDeniedError(f"{what} needs {', '.join(names)}{because}; missing: "
                                    f"{', '.join(lacking)} (run as root)")
