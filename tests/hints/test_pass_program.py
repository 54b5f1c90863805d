"""The --pass programs pass the verifier: the XDP_PASS variant for every kfunc subset
and queue filter, the tcx program for small and large snap lengths; both get a btf_id."""

from __future__ import annotations

import pytest

from xdphints_cli.process import netns
from xdphints_cli.bpf import percpu
from xdphints_cli.bpf.ringbuf import RingBuffer
from xdphints_cli.btf.kfuncs import xdp_metadata_kfunc_ids
from xdphints_cli.hints import pass_program as PP
from xdphints_cli.hints import program as P
from xdphints_cli.bpf.program_btf import spec_of_btf

pytestmark = pytest.mark.privileged


@pytest.mark.parametrize("transport", ["metadata", "fingerprint"])
@pytest.mark.parametrize("mask,queues", [(0, None), (7, None), (5, [0]), (7, [0, 3, 7])])
def test_xdp_pass_variant_loads(veth, mask, queues, transport):
    from conftest import need_metadata_area
    from xdphints_cli.hints import fingerprint

    if transport == "metadata":
        need_metadata_area()
    kfuncs = P.usable_kfuncs(mask, xdp_metadata_kfunc_ids())
    with netns.inside(veth.ns), percpu.counters(P.N_COUNTS, "t_counts") as counts, \
            fingerprint.create_map() as fmap:
        if transport == "fingerprint":
            prog, _pbtf = P.load_items(veth.ifindex(), lambda sid: fingerprint.generate_xdp(
                kfuncs, fmap.fd, counts.fd, sid, queues=queues), "t_fp")
        else:
            prog, _pbtf = P.load(veth.ifindex(), kfuncs, None, counts_fd=counts.fd,
                                 queues=queues)
        with prog:
            assert prog.info().btf_id


def test_pass_variant_refuses_a_transport_that_changes_the_frame():
    from xdphints_cli.hints.transport import HEADROOM

    with pytest.raises(ValueError, match="cannot use the headroom transport"):
        P.generate({}, None, 5, transport=HEADROOM)


@pytest.mark.parametrize("fingerprints", [False, True])
@pytest.mark.parametrize("snaplen", [1, 128, 9000])
def test_tcx_program_loads_with_its_record_struct(snaplen, fingerprints):
    from xdphints_cli.hints import fingerprint

    with percpu.counters(P.N_COUNTS, "t_counts") as counts, RingBuffer(1 << 16) as ring, \
            fingerprint.create_map() as fmap:
        with PP.load(ring.fd, counts.fd, 5, snaplen,
                     fingerprints_fd=fmap.fd if fingerprints else None) as prog:
            spec = spec_of_btf(prog.info().btf_id)
            rec = next(t for t in spec.types if getattr(t, "name", "") == PP.RECORD_NAME)
            assert rec.size == PP.RECORD_HEADER + snaplen
            offsets = {m.name: m.offset for m in rec.members}
            assert offsets["meta"] == PP.REC_META and offsets["data"] == PP.RECORD_HEADER
            assert offsets["rx_queue"] == PP.REC_RX_QUEUE


def test_percpu_sums_start_at_zero():
    with percpu.counters(3, "t_counts") as counts:
        assert percpu.read_sums(counts) == [0, 0, 0]
    assert percpu.parse_cpu_list("0-3\n") == 4
    assert percpu.parse_cpu_list("0,2-5") == 6
    assert percpu.parse_cpu_list("0") == 1


def test_l4_hash_bit_is_where_pahole_puts_it():
    import re
    import subprocess

    from conftest import need_tool

    pahole = need_tool("pahole")
    out = subprocess.run([pahole, "-C", "sk_buff", "/sys/kernel/btf/vmlinux"],
                         capture_output=True, text=True).stdout
    byte, bit = map(int, re.search(r"\bl4_hash:1;\s*/\*\s*(\d+):\s*(\d+)", out).groups())
    found = PP.l4_hash_bit()
    assert found is not None and found.bit_offset == byte * 8 + bit
    with percpu.counters(P.N_COUNTS, "t_counts") as counts, RingBuffer(1 << 16) as ring:
        with PP.load(ring.fd, counts.fd, 5, 64, l4=found) as prog:   # the verifier takes the read
            assert prog.info().btf_id
