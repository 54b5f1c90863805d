"""PTP hardware clocks (/dev/ptpN): read them and map their timestamps to system time.

HW RX timestamps are nanoseconds of the NIC's PHC. To show them as wall-clock time
we need the PHC - system offset, measured with PTP_SYS_OFFSET_EXTENDED: the kernel
reads [system, PHC, system] up to 25 times, and the narrowest window bounds the
error best. The arithmetic (`best_offset`, `ClockMap`) is kept apart from the ioctl
so it can be tested on synthetic samples without a PHC.

Layouts from include/uapi/linux/ptp_clock.h. The `clockid` word of
ptp_sys_offset_extended exists since 6.12 (it was rsv[0], which had to be 0 =
CLOCK_REALTIME); the kernel accepts CLOCK_REALTIME, CLOCK_MONOTONIC and
CLOCK_MONOTONIC_RAW (and the AUX clocks), not CLOCK_TAI: TAI is REALTIME plus the
adjtimex TAI offset.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
import time
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from xdphints_cli.errors import (
    KernelError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    XdpHintsError,
)

CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
CLOCK_MONOTONIC_RAW = 4
CLOCK_TAI = 11
SYS_OFFSET_CLOCKS = (CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW)

PTP_MAX_SAMPLES = 25
NSEC_PER_SEC = 1_000_000_000

_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction: int, kind: str, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | nr


# struct ptp_clock_time {__s64 sec; __u32 nsec; __u32 reserved;}
_CLOCK_TIME = struct.Struct("=qII")
# struct ptp_sys_offset_extended {u32 n_samples; clockid; u32 rsv[2]; ts[25][3]}
SYS_OFFSET_EXTENDED = struct.Struct("=IiII" + "qII" * (PTP_MAX_SAMPLES * 3))
# struct ptp_sys_offset {u32 n_samples; u32 rsv[3]; ts[2 * 25 + 1]}: sys, phc, sys, ...
SYS_OFFSET = struct.Struct("=IIII" + "qII" * (2 * PTP_MAX_SAMPLES + 1))

PTP_SYS_OFFSET = _ioc(_IOC_WRITE, "=", 5, SYS_OFFSET.size)
PTP_SYS_OFFSET_EXTENDED = _ioc(_IOC_READ | _IOC_WRITE, "=", 9, SYS_OFFSET_EXTENDED.size)

# The drift estimate is thrown away above this: a PHC stepped by ptp4l between two
# refreshes would otherwise read as an absurd frequency error.
DEFAULT_MAX_DRIFT_PPB = 1_000_000


@dataclass(frozen=True)
class OffsetSample:
    """One [system before, PHC, system after] reading, in ns."""

    before_ns: int
    phc_ns: int
    after_ns: int

    @property
    def width_ns(self) -> int:
        return self.after_ns - self.before_ns


@dataclass(frozen=True)
class Offset:
    """PHC minus system time (so system = PHC - offset_ns) at system time sys_ns.

    uncertainty_ns is the width of the window the PHC read fell in.
    """

    offset_ns: int
    uncertainty_ns: int
    sys_ns: int
    clockid: int = CLOCK_REALTIME

    def to_json(self) -> dict:
        return {
            "offset-ns": self.offset_ns,
            "uncertainty-ns": self.uncertainty_ns,
            "sys-ns": self.sys_ns,
            "clockid": self.clockid,
        }


def _div_round(num: int, den: int) -> int:
    """num / den (den > 0) rounded half away from zero, so a negated offset rounds symmetrically."""
    q = (2 * abs(num) + den) // (2 * den)
    return q if num >= 0 else -q


def _ns(sec: int, nsec: int) -> int:
    return sec * NSEC_PER_SEC + nsec


def best_offset(samples: Sequence[OffsetSample], clockid: int = CLOCK_REALTIME) -> Offset:
    """The offset over the narrowest window (the first one on ties).

    Samples whose window runs backwards (the system clock was stepped between the
    two reads) carry no information and are skipped.
    """
    usable = [s for s in samples if s.after_ns >= s.before_ns]
    if not usable:
        raise XdpHintsError("PHC offset: no usable sample (system clock stepped while sampling?)")
    best = min(usable, key=lambda s: s.width_ns)
    twice_mid = best.before_ns + best.after_ns
    return Offset(
        offset_ns=_div_round(2 * best.phc_ns - twice_mid, 2),
        uncertainty_ns=best.width_ns,
        sys_ns=_div_round(twice_mid, 2),
        clockid=clockid,
    )


def pack_sys_offset_extended(n_samples: int, clockid: int = CLOCK_REALTIME) -> bytearray:
    if not 1 <= n_samples <= PTP_MAX_SAMPLES:
        raise ValueError(f"n_samples must be 1..{PTP_MAX_SAMPLES}, not {n_samples}")
    buf = bytearray(SYS_OFFSET_EXTENDED.size)
    struct.pack_into("=Ii", buf, 0, n_samples, clockid)
    return buf


def unpack_sys_offset_extended(buf: bytes) -> Tuple[OffsetSample, ...]:
    fields = SYS_OFFSET_EXTENDED.unpack(bytes(buf))
    n = fields[0]
    if n > PTP_MAX_SAMPLES:
        raise XdpHintsError(f"PTP_SYS_OFFSET_EXTENDED: kernel returned {n} samples")
    ts = fields[4:]
    out = []
    for i in range(n):
        sec0, ns0, _, sec1, ns1, _, sec2, ns2, _ = ts[i * 9:(i + 1) * 9]
        out.append(OffsetSample(_ns(sec0, ns0), _ns(sec1, ns1), _ns(sec2, ns2)))
    return tuple(out)


def encode_samples(samples: Sequence[OffsetSample], clockid: int = CLOCK_REALTIME) -> bytes:
    """The struct as the kernel fills it; the inverse of unpack_sys_offset_extended."""
    if len(samples) > PTP_MAX_SAMPLES:
        raise ValueError(f"at most {PTP_MAX_SAMPLES} samples")
    ts = []
    for s in samples:
        for v in (s.before_ns, s.phc_ns, s.after_ns):
            sec, nsec = divmod(v, NSEC_PER_SEC)
            ts += [sec, nsec, 0]
    ts += [0] * (3 * 3 * (PTP_MAX_SAMPLES - len(samples)))
    return SYS_OFFSET_EXTENDED.pack(len(samples), clockid, 0, 0, *ts)


def _unpack_sys_offset(buf: bytes) -> Tuple[OffsetSample, ...]:
    fields = SYS_OFFSET.unpack(bytes(buf))
    n = min(fields[0], PTP_MAX_SAMPLES)
    flat = fields[4:]
    stamps = [_ns(flat[i * 3], flat[i * 3 + 1]) for i in range(2 * n + 1)]
    return tuple(OffsetSample(stamps[2 * i], stamps[2 * i + 1], stamps[2 * i + 2]) for i in range(n))


def fd_to_clockid(fd: int) -> int:
    """FD_TO_CLOCKID: a dynamic posix clock id is the inverted fd, tagged CLOCKFD (3)."""
    return ((~fd) << 3) | 3


class PhcClock:
    """An open /dev/ptpN; use as a context manager so the fd is closed."""

    def __init__(self, index: int, path: Optional[str] = None):
        self.index = index
        self.path = path or f"/dev/ptp{index}"
        self._fd: Optional[int] = None
        try:
            # Reading the clock and the offset ioctls need only read access.
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
                raise NotFoundError(f"no PTP hardware clock {self.path}") from None
            if e.errno in (errno.EACCES, errno.EPERM):
                raise PermissionDeniedError(f"cannot open PTP hardware clock {self.path}: permission denied") from None
            raise KernelError(f"open {self.path}", e.errno or errno.EIO) from None
        self.clockid = fd_to_clockid(self._fd)

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> "PhcClock":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()

    def gettime_ns(self) -> int:
        self.fileno()
        try:
            return time.clock_gettime_ns(self.clockid)
        except OSError as e:
            if e.errno == errno.EINVAL:
                raise NotSupportedError(f"{self.path} is not a PTP clock (clock_gettime: EINVAL)") from None
            raise KernelError(f"clock_gettime on {self.path}", e.errno or errno.EIO) from None

    def sys_offset(self, n_samples: int = PTP_MAX_SAMPLES, clockid: int = CLOCK_REALTIME) -> Tuple[OffsetSample, ...]:
        """Raw [before, PHC, after] samples against `clockid`.

        Falls back to the older PTP_SYS_OFFSET (REALTIME only, cruder windows) for
        drivers without gettimex64.
        """
        if clockid not in SYS_OFFSET_CLOCKS:
            raise NotSupportedError(
                f"PTP_SYS_OFFSET_EXTENDED does not take clock {clockid}; "
                "use CLOCK_REALTIME and add the TAI offset (tai_offset_s())"
            )
        buf = pack_sys_offset_extended(n_samples, clockid)
        try:
            fcntl.ioctl(self.fileno(), PTP_SYS_OFFSET_EXTENDED, buf)
        except OSError as e:
            err = e.errno or errno.EIO
            if err == errno.EOPNOTSUPP and clockid == CLOCK_REALTIME:
                return self._sys_offset_basic(n_samples)
            if err == errno.ENOTTY:
                raise NotSupportedError(f"{self.path}: not a PTP clock (PTP_SYS_OFFSET_EXTENDED: ENOTTY)") from None
            if err == errno.EOPNOTSUPP:
                raise NotSupportedError(f"{self.path}: driver cannot read the PHC against clock {clockid}") from None
            if err == errno.EINVAL and clockid != CLOCK_REALTIME:
                raise NotSupportedError(
                    f"{self.path}: PTP_SYS_OFFSET_EXTENDED rejected clock {clockid} (kernel before 6.12?)"
                ) from None
            raise KernelError(f"PTP_SYS_OFFSET_EXTENDED on {self.path}", err) from None
        return unpack_sys_offset_extended(buf)

    def _sys_offset_basic(self, n_samples: int) -> Tuple[OffsetSample, ...]:
        buf = bytearray(SYS_OFFSET.size)
        struct.pack_into("=I", buf, 0, n_samples)
        try:
            fcntl.ioctl(self.fileno(), PTP_SYS_OFFSET, buf)
        except OSError as e:
            err = e.errno or errno.EIO
            if err in (errno.EOPNOTSUPP, errno.ENOTTY):
                raise NotSupportedError(f"{self.path}: driver supports no PHC offset ioctl") from None
            raise KernelError(f"PTP_SYS_OFFSET on {self.path}", err) from None
        return _unpack_sys_offset(buf)

    def offset(self, n_samples: int = PTP_MAX_SAMPLES, clockid: int = CLOCK_REALTIME) -> Offset:
        return best_offset(self.sys_offset(n_samples, clockid), clockid)


# struct timex as glibc and the kernel lay it out on 64-bit Linux (208 bytes, tai at 160).
class Timex(ctypes.Structure):
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stable", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


_libc = None


def tai_offset_s() -> int:
    """TAI - UTC in seconds as the kernel knows it (0 until ptp4l/chrony/ntpd set it)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    tx = Timex()  # modes 0: read only, needs no privilege
    if _libc.adjtimex(ctypes.byref(tx)) < 0:
        raise KernelError("adjtimex", ctypes.get_errno() or errno.EIO)
    return tx.tai


def realtime_to_tai_ns(realtime_ns: int, tai_offset: Optional[int] = None) -> int:
    return realtime_ns + (tai_offset_s() if tai_offset is None else tai_offset) * NSEC_PER_SEC


def tai_to_realtime_ns(tai_ns: int, tai_offset: Optional[int] = None) -> int:
    return tai_ns - (tai_offset_s() if tai_offset is None else tai_offset) * NSEC_PER_SEC


class ClockMap:
    """PHC ns -> CLOCK_REALTIME (or TAI) ns from the latest measured offset.

    The caller calls refresh() now and then (say once a second). With two
    refreshes behind it the map also estimates the PHC's frequency error against
    the system clock and extrapolates the offset between refreshes.
    """

    def __init__(
        self,
        phc: Optional[PhcClock] = None,
        *,
        n_samples: int = PTP_MAX_SAMPLES,
        estimate_drift: bool = True,
        max_drift_ppb: int = DEFAULT_MAX_DRIFT_PPB,
    ):
        self.phc = phc
        self.n_samples = n_samples
        self.estimate_drift = estimate_drift
        self.max_drift_ppb = max_drift_ppb
        self.offset: Optional[Offset] = None
        self.tai_offset = 0
        # Drift as an exact ratio d_off / d_sys, to keep conversions in integers.
        self._d_off = 0
        self._d_sys = 1

    @property
    def drift_ppb(self) -> float:
        """How fast the PHC gains on the system clock, in ns per second."""
        return self._d_off * 1e9 / self._d_sys

    def refresh(self, samples: Optional[Sequence[OffsetSample]] = None, tai_offset: Optional[int] = None) -> Offset:
        """Take new samples (from the PHC unless given) and update the map."""
        if samples is None:
            if self.phc is None:
                raise ValueError("ClockMap without a PHC needs samples")
            samples = self.phc.sys_offset(self.n_samples, CLOCK_REALTIME)
        offset = best_offset(samples, CLOCK_REALTIME)
        self.update(offset, tai_offset_s() if tai_offset is None else tai_offset)
        return offset

    def update(self, offset: Offset, tai_offset: int = 0) -> None:
        prev = self.offset
        self.offset = offset
        self.tai_offset = tai_offset
        self._d_off, self._d_sys = 0, 1
        if not self.estimate_drift or prev is None:
            return
        d_sys = offset.sys_ns - prev.sys_ns
        d_off = offset.offset_ns - prev.offset_ns
        if d_sys > 0 and abs(d_off) * NSEC_PER_SEC <= self.max_drift_ppb * d_sys:
            self._d_off, self._d_sys = d_off, d_sys

    def to_realtime_ns(self, phc_ns: int) -> int:
        off = self.offset
        if off is None:
            raise ValueError("ClockMap.refresh() has not been called")
        sys_ns = phc_ns - off.offset_ns
        if self._d_off:
            # The offset keeps changing at d_off/d_sys after the last measurement.
            sys_ns -= _div_round((sys_ns - off.sys_ns) * self._d_off, self._d_sys)
        return sys_ns

    def to_tai_ns(self, phc_ns: int) -> int:
        return self.to_realtime_ns(phc_ns) + self.tai_offset * NSEC_PER_SEC
