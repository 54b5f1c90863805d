"""PHC -> CLOCK_REALTIME in dump's output, with a ClockMap fed fake samples (no PHC
here): bulk JSON lines equal the per-packet path, carry realtime and delay-ns, and
validate against the schema; pcapng packet time is the converted timestamp."""

from __future__ import annotations

import json

import jsonschema

from xdphints_cli.cli.dump_output import JsonLines, json_line, packet_json, packet_text, packet_time_ns
from xdphints_cli.hints.capture import Batch
from xdphints_cli.hints.clock import refreshing
from xdphints_cli.hints.decoding import RowLayout
from xdphints_cli.hints.phc import ClockMap, OffsetSample

from test_dump_bulk import FRAMES, RSS, SCHEMA_PATH, _meta, _metas, _rows, _slow_packets, _umem, prog_btf  # noqa: F401

OFFSET = 37 * 10**9 + 123          # PHC runs 37 s (+123 ns) ahead of CLOCK_REALTIME


def fake_clock(sys_ns=1_700_000_000 * 10**9) -> ClockMap:
    c = ClockMap(None)
    c.refresh([OffsetSample(sys_ns - 10, sys_ns + OFFSET, sys_ns + 10)], tai_offset=37)
    return c


def test_timestamps_as_realtime_with_delay(prog_btf):
    p, spec = prog_btf
    lay = RowLayout(spec, p.struct_id)
    recv = 1_700_000_000_000_050_000
    hw = recv - 20_000 + OFFSET                      # 20 us before it reached user space
    metas = [_meta(p.struct_id, ts=hw)] * len(FRAMES)
    umem, addrs, lengths = _umem(FRAMES, metas)
    batch = Batch(recv, 0, addrs, lengths, _rows(lay, umem, addrs))
    clock = fake_clock()
    jl = JsonLines(lay, umem, RSS, None, clock)
    with open(SCHEMA_PATH) as f:
        v = jsonschema.Draft202012Validator(json.load(f))
    for _ in range(2):
        fast = jl.batch(batch).splitlines()
        slow_pkts = list(_slow_packets(spec, umem, addrs, lengths, recv, None))
        assert fast == [json_line(packet_json(pk, RSS, clock=clock)) for pk in slow_pkts]
    for line in fast:
        obj = json.loads(line)
        v.validate(obj)
        ts = obj["rx-timestamp"]
        assert ts["ns"] == hw and ts["delay-ns"] == 20_000
        assert ts["realtime"] == "1700000000.000030000"
    pk = slow_pkts[0]
    assert packet_time_ns(pk, clock) == recv - 20_000
    assert packet_time_ns(pk) == hw                                  # no PHC map: raw
    assert "(realtime 1700000000.000030000, delay 20000 ns)" in packet_text(pk, RSS, clock)


def test_no_timestamp_keeps_receive_time(prog_btf):
    p, spec = prog_btf
    umem, addrs, lengths = _umem(FRAMES[:1], _metas(p.struct_id)[:1])
    (pk,) = _slow_packets(spec, umem, addrs, lengths, 5, None)
    if pk.hints["rx-timestamp"].status != "ok":
        assert packet_time_ns(pk, fake_clock()) == 5


def test_refreshing_refreshes_once_per_period():
    calls = []

    class C:
        def refresh(self):
            calls.append(1)

    ticks = iter([0.0, 0.5, 1.2, 1.3, 2.0, 2.3])
    assert list(refreshing(range(5), C(), 1.0, now=lambda: next(ticks))) == list(range(5))
    assert len(calls) == 2                                           # at 1.2 and 2.3
