"""The generated hints program passes the verifier for every subset of kfuncs and gets
a btf_id (its BTF is loaded with it)."""

from __future__ import annotations

import pytest

from xdphints_cli.process import netns
from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.maps import Map
from xdphints_cli.btf.kfuncs import xdp_metadata_kfunc_ids
from xdphints_cli.hints import layout as L
from xdphints_cli.hints import program as P
from xdphints_cli.bpf.program_btf import spec_of_btf

pytestmark = pytest.mark.privileged


@pytest.mark.parametrize("transport", ["metadata", "headroom", "tail"])
@pytest.mark.parametrize("mask", range(8))
def test_program_loads_for_every_kfunc_subset(veth, mask, transport):
    from conftest import need_metadata_area
    from xdphints_cli.hints.transport import TRANSPORTS

    if transport == "metadata":
        need_metadata_area()
    ids = xdp_metadata_kfunc_ids()
    kfuncs = P.usable_kfuncs(mask, ids)
    assert P.kfunc_mask(kfuncs) == mask
    ifindex = veth.ifindex()
    with netns.inside(veth.ns), Map.create(sc.BPF_MAP_TYPE_XSKMAP, 4, 4, 1) as xmap:
        prog, pbtf = P.load(ifindex, kfuncs, xmap.fd, transport=TRANSPORTS[transport])
        with prog:
            info = prog.info()
            assert info.btf_id
            spec = spec_of_btf(info.btf_id)
            assert spec.name_of(pbtf.struct_id) == L.STRUCT_NAME


def test_usable_kfuncs_needs_both_advert_and_kernel():
    ids = {"bpf_xdp_metadata_rx_hash": 7}
    assert P.usable_kfuncs(7, ids) == {"bpf_xdp_metadata_rx_hash": 7}
    assert P.usable_kfuncs(1, ids) == {}
