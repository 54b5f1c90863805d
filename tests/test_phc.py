"""PHC offset measurement: ioctl encoding, offset arithmetic, conversion, error paths.

This machine has no /dev/ptp*, so the ioctl itself runs only against /dev/null
(ENOTTY); everything else is checked on synthetic samples.
"""

from __future__ import annotations

import ctypes
import os
import struct

import pytest

from xdphints_cli.hints import phc
from xdphints_cli.errors import EXIT_NOT_FOUND, NotFoundError, NotSupportedError, XdpHintsError
from xdphints_cli.hints.phc import ClockMap, Offset, OffsetSample, PhcClock, best_offset

S = 1_000_000_000


def _iowr(kind: str, nr: int, size: int) -> int:
    # include/uapi/asm-generic/ioctl.h: dir(2) << 30 | size(14) << 16 | type << 8 | nr
    return (3 << 30) | (size << 16) | (ord(kind) << 8) | nr


def test_ioctl_request_numbers():
    # n_samples, clockid, rsv[2] + ptp_clock_time {s64, u32, u32} x 25 x 3
    size = 4 * 4 + 25 * 3 * 16
    assert size == 1216 == phc.SYS_OFFSET_EXTENDED.size
    assert phc.PTP_SYS_OFFSET_EXTENDED == _iowr("=", 9, size) == 0xC4C03D09
    # _IOW('=', 5, struct ptp_sys_offset): 16 + 51 * 16 bytes
    assert phc.PTP_SYS_OFFSET == (1 << 30) | ((16 + 51 * 16) << 16) | (0x3D << 8) | 5 == 0x43403D05


def test_request_encoding():
    buf = phc.pack_sys_offset_extended(7, phc.CLOCK_MONOTONIC)
    assert len(buf) == 1216
    assert struct.unpack_from("<IiII", buf) == (7, 1, 0, 0)
    assert not any(buf[16:])
    for bad in (0, 26):
        with pytest.raises(ValueError):
            phc.pack_sys_offset_extended(bad)


def test_samples_round_trip():
    samples = (
        OffsetSample(1_700_000_000 * S + 5, 42 * S + 999_999_999, 1_700_000_000 * S + 900),
        OffsetSample(-3 * S + 1, 0, 7),  # negative seconds: sec is signed, nsec is not
        OffsetSample(0, 2**40, 25 * S - 1),
    )
    raw = phc.encode_samples(samples, phc.CLOCK_REALTIME)
    assert len(raw) == 1216
    assert struct.unpack_from("<I", raw)[0] == 3
    # the PHC reading of sample 0 sits at 16 + 16: sec then nsec
    assert struct.unpack_from("<qII", raw, 32) == (42, 999_999_999, 0)
    assert struct.unpack_from("<qII", raw, 16 + 3 * 16) == (-3, 1, 0)
    assert phc.unpack_sys_offset_extended(raw) == samples


def test_unpack_rejects_too_many_samples():
    raw = bytearray(phc.encode_samples([]))
    struct.pack_into("<I", raw, 0, 26)
    with pytest.raises(XdpHintsError):
        phc.unpack_sys_offset_extended(raw)


def test_basic_sys_offset_layout():
    # sys, phc, sys, phc, sys: two samples share the middle system reading
    flat = [1, 0, 0, 10, 5, 0, 2, 0, 0, 20, 7, 0, 3, 0, 0] + [0] * (3 * (51 - 5))
    raw = phc.SYS_OFFSET.pack(2, 0, 0, 0, *flat)
    assert phc._unpack_sys_offset(raw) == (
        OffsetSample(1 * S, 10 * S + 5, 2 * S),
        OffsetSample(2 * S, 20 * S + 7, 3 * S),
    )


def test_narrowest_window_wins():
    samples = [
        OffsetSample(1000, 5000, 1100),  # width 100
        OffsetSample(2000, 6010, 2020),  # width 20 -> offset 6010 - 2010
        OffsetSample(3000, 7000, 3020),  # also 20, later: the first one is kept
        OffsetSample(4000, 9999, 4500),
    ]
    off = best_offset(samples)
    assert off == Offset(offset_ns=4000, uncertainty_ns=20, sys_ns=2010, clockid=phc.CLOCK_REALTIME)


def test_backwards_window_is_skipped():
    samples = [OffsetSample(2000, 0, 1990), OffsetSample(0, 100, 50)]
    assert best_offset(samples).uncertainty_ns == 50
    with pytest.raises(XdpHintsError):
        best_offset([OffsetSample(2000, 0, 1990)])
    with pytest.raises(XdpHintsError):
        best_offset([])


def test_rounding_is_symmetric():
    # midpoint 1000.5: offset 0.5 away -> 1, and the mirrored case -> -1
    assert best_offset([OffsetSample(1000, 1001, 1001)]).offset_ns == 1
    assert best_offset([OffsetSample(1000, 1000, 1001)]).offset_ns == -1
    assert best_offset([OffsetSample(1000, 1000, 1001)]).sys_ns == 1001
    assert best_offset([OffsetSample(1000, 1003, 1002)]).offset_ns == 2


def test_negative_offset_free_running_phc():
    # A free-running PHC counts from boot: far behind CLOCK_REALTIME.
    real = 1_700_000_000 * S
    off = best_offset([OffsetSample(real, 123 * S, real + 40)])
    assert off.offset_ns == 123 * S - real - 20
    m = ClockMap(estimate_drift=False)
    m.update(off)
    assert m.to_realtime_ns(123 * S) == real + 20
    assert m.to_realtime_ns(124 * S + 7) == real + 20 + S + 7


def test_clockmap_from_samples_and_tai():
    m = ClockMap()
    off = m.refresh([OffsetSample(10 * S, 47 * S, 10 * S + 100)], tai_offset=37)
    assert off.offset_ns == 37 * S - 50
    assert m.to_realtime_ns(50 * S) == 13 * S + 50
    assert m.to_tai_ns(50 * S) == 50 * S + 50
    with pytest.raises(ValueError):
        ClockMap().to_realtime_ns(0)
    with pytest.raises(ValueError):
        ClockMap().refresh()


def test_drift_estimate_and_extrapolation():
    m = ClockMap()
    # PHC gains 1000 ns per second of system time: +1000 ppb
    m.refresh([OffsetSample(100 * S, 100 * S + 500, 100 * S)], tai_offset=0)
    assert m.drift_ppb == 0
    m.refresh([OffsetSample(102 * S, 102 * S + 2500, 102 * S)], tai_offset=0)
    assert m.drift_ppb == pytest.approx(1000.0)
    # half a second later the offset has grown by 500 ns more
    assert m.to_realtime_ns(102 * S + S // 2 + 3000) == 102 * S + S // 2
    # at the refresh point itself no correction applies
    assert m.to_realtime_ns(102 * S + 2500) == 102 * S
    # before it, the correction goes the other way
    assert m.to_realtime_ns(101 * S + 1500) == 101 * S


def test_drift_off_and_step_discarded():
    m = ClockMap(estimate_drift=False)
    m.refresh([OffsetSample(0, 500, 0)], tai_offset=0)
    m.refresh([OffsetSample(S, S + 1500, S)], tai_offset=0)
    assert m.drift_ppb == 0
    assert m.to_realtime_ns(2 * S + 1500) == 2 * S
    m = ClockMap()
    m.refresh([OffsetSample(0, 0, 0)], tai_offset=0)
    m.refresh([OffsetSample(S, 38 * S, S)], tai_offset=0)  # stepped by 37 s
    assert m.drift_ppb == 0
    assert m.to_realtime_ns(40 * S) == 3 * S


def test_fd_to_clockid():
    # FD_TO_CLOCKID(3) in C: (~3u << 3) | 3 as a 32-bit clockid_t
    assert phc.fd_to_clockid(3) == ctypes.c_int32(((~3 & 0xFFFFFFFF) << 3 | 3) & 0xFFFFFFFF).value == -29


def test_missing_phc():
    assert not os.path.exists("/dev/ptp99")
    with pytest.raises(NotFoundError, match=r"^no PTP hardware clock /dev/ptp99$") as ei:
        PhcClock(99)
    assert ei.value.exit_code == EXIT_NOT_FOUND


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_not_a_ptp_clock_and_no_leak():
    before = _open_fds()
    with PhcClock(0, path="/dev/null") as clock:
        with pytest.raises(NotSupportedError, match="ENOTTY"):
            clock.sys_offset(5)
        with pytest.raises(NotSupportedError):
            clock.gettime_ns()
        with pytest.raises(NotSupportedError, match="CLOCK_REALTIME"):
            clock.sys_offset(5, phc.CLOCK_TAI)
    assert _open_fds() == before
    with pytest.raises(ValueError):
        clock.fileno()


def test_timex_layout_and_tai_offset():
    # x86_64 (and every LP64 Linux): offsetof(struct timex, tai) == 160, sizeof == 208
    assert phc.Timex.tai.offset == 160
    assert ctypes.sizeof(phc.Timex) == 208
    tai = phc.tai_offset_s()
    assert isinstance(tai, int) and tai >= 0
    assert phc.realtime_to_tai_ns(5 * S, 37) == 42 * S
    assert phc.tai_to_realtime_ns(42 * S, 37) == 5 * S
