"""Wall-clock times as dump prints packet times, for lines that are not packets
(monitor's events, dump's notices): text is local HH:MM:SS.microseconds, JSON is
seconds.nanoseconds since the epoch as a string. A float of epoch seconds holds
microseconds, so the last three digits are zero rather than invented."""

from __future__ import annotations

import time


def _micros(t: float) -> int:
    return int(round(t * 1e6))


def wall_text(t: float) -> str:
    us = _micros(t)
    return time.strftime("%H:%M:%S", time.localtime(us // 10**6)) + f".{us % 10**6:06d}"


def wall_json(t: float) -> str:
    us = _micros(t)
    return f"{us // 10**6}.{us % 10**6:06d}000"
