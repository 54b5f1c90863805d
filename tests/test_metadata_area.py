"""`show` and `check` report the XDP metadata area: refused by this kernel, or unknown
for the driver until a capture tries it, and the transport dump and verify start with."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from conftest import xdphints
from xdphints_cli.device.readiness import metadata_area
from xdphints_cli.hints import metadata_area as MA

REASON = "program of this type cannot use helper bpf_xdp_adjust_meta#54"


@pytest.mark.parametrize("status,kernel,dump,passing", [
    ("accepted", "accepts", "metadata", "metadata"),
    ("refused", "refuses", "headroom", "fingerprint"),
    ("unknown", "unknown", "metadata", "metadata"),
])
def test_verdict_follows_the_kernel_probe(monkeypatch, status, kernel, dump, passing):
    monkeypatch.setattr(MA, "kernel_metadata_area",
                        lambda: MA.MetadataArea(status, REASON if status == "refused" else
                                               "probing needs CAP_BPF" if status == "unknown" else ""))
    v = metadata_area(SimpleNamespace(driver="ena"))
    j = v.to_json()
    assert (j["kernel"], j["dump-transport"], j["pass-transport"]) == (kernel, dump, passing)
    assert j["status"] == ("refused" if status == "refused" else "unknown")
    if status == "refused":
        assert REASON in j["reason"] and "dump carries the hints in the headroom" in j["reason"]
    elif status == "accepted":
        assert "whether ena gives XDP one shows once a capture tries it" in j["reason"]
    else:
        assert j["reason"].startswith("probing needs CAP_BPF")
    assert v.text().startswith(f"metadata-area {j['status']:<13} ")


@pytest.mark.privileged
def test_show_and_check_report_it_as_the_probe_found(veth):
    MA.kernel_metadata_area.cache_clear()
    area = MA.kernel_metadata_area()
    want = {"accepted": ("unknown", "accepts", "metadata"),
            "refused": ("refused", "refuses", "headroom")}[area.status]
    for cmd in (["show", veth.dev], ["check", "-d", veth.dev]):
        res = xdphints("-j", *cmd, ns=veth.ns)
        m = json.loads(res.stdout)["metadata-area"]
        assert (m["status"], m["kernel"], m["dump-transport"]) == want, res.stderr
        text = xdphints(*cmd, ns=veth.ns).stdout
        assert f"metadata-area {want[0]:<13} " in text


@pytest.mark.privileged
def test_without_cap_bpf_it_is_unknown(veth):
    res = xdphints("-j", "check", "-d", veth.dev, ns=veth.ns, unprivileged=True)
    m = json.loads(res.stdout)["metadata-area"]
    assert m["status"] == m["kernel"] == "unknown"
    assert m["reason"].startswith("probing needs CAP_BPF")
