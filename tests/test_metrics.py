"""`xdphints metrics`: the Prometheus text format, parsed by prometheus_client's own
parser and checked against `check -j` and `show -j` of the same devices."""

from __future__ import annotations

import json
import os
import stat

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import unique_name, xdphints
from event_helpers import build_hints_pass
from xdphints_cli.cli.prometheus import Family, label_value, render

STATES = ("ready", "needs-enable", "unsupported")


def parse(text: str) -> dict:
    """{family name: [(labels, value)]} through the reference parser."""
    out = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = [(s.labels, s.value) for s in fam.samples]
    return out


# --- the format alone ----------------------------------------------------------------

@pytest.mark.parametrize("value", ['a"b', "a\\b", "a\nb", 'x\\"\n\\', "plain", ""])
def test_label_values_round_trip_through_the_reference_parser(value):
    f = Family("t_metric", "help with \\ and\nnewline")
    f.add(1, device=value)
    ((labels, v),) = parse(render([f]))["t_metric"]
    assert labels == {"device": value} and v == 1


def test_not_utf8_name_is_its_text_form():
    name = b"v\xff".decode("utf-8", "surrogateescape")
    assert label_value(name) == "v\\\\xff"
    f = Family("t_metric", "h")
    f.add(0, device=name)
    ((labels, _),) = parse(render([f]))["t_metric"]
    assert labels == {"device": "v\\xff"}


# --- against the real kernel -------------------------------------------------------------


@pytest.mark.privileged
def test_states_agree_with_check_for_every_device(veth):
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")       # one needs-enable among the rest
    res = xdphints("metrics", ns=veth.ns)
    assert res.returncode == 0, res.stderr
    fams = parse(res.stdout)
    devices = {labels["device"] for labels, _ in fams["xdphints_device_info"]}
    assert {"lo", veth.dev} <= devices
    for dev in devices:
        check = json.loads(xdphints("-j", "check", "-d", dev, ns=veth.ns).stdout)
        got = {(lab["hint"], lab["state"]): v for lab, v in fams["xdphints_hint_state"] if lab["device"] == dev}
        for hint, verdict in check["hints"].items():
            assert {s: got[(hint, s)] for s in STATES} == {s: float(s == verdict["state"]) for s in STATES}
    assert ({"device": veth.dev, "hint": "rx-vlan", "state": "needs-enable"}, 1.0) in fams["xdphints_hint_state"]


@pytest.mark.privileged
def test_config_facts_agree_with_show(veth, tmp_path):
    obj = build_hints_pass(tmp_path)
    veth.run("ip", "link", "set", "dev", veth.dev, "xdpdrv", "obj", obj, "sec", "xdp")
    res = xdphints("metrics", "-d", veth.dev, ns=veth.ns)
    assert res.returncode == 0, res.stderr
    fams = parse(res.stdout)
    show = json.loads(xdphints("-j", "show", veth.dev, ns=veth.ns).stdout)
    assert {lab["device"] for lab, _ in fams["xdphints_device_info"]} == {veth.dev}
    offl = {lab["offload"]: v for lab, v in fams["xdphints_offload_active"]}
    fixed = {lab["offload"]: v for lab, v in fams["xdphints_offload_fixed"]}
    for name in ("rx-hashing", "rx-vlan-hw-parse", "rx-vlan-stag-hw-parse"):
        assert offl[name] == float(show["offloads"][name]["active"])
        assert fixed[name] == float(show["offloads"][name]["fixed"])
    assert fams["xdphints_xdp_attached"] == [({"device": veth.dev}, 1.0)]
    (p,) = show["xdp"]["programs"]
    assert fams["xdphints_xdp_program_info"] == [
        ({"device": veth.dev, "mode": "drv", "id": str(p["id"]), "name": "hints_pass"}, 1.0)]
    assert fams["xdphints_hwtstamp_config_info"] == []       # veth has no hwtstamp config


@pytest.mark.privileged
def test_hostile_device_name_parses_back(veth):
    name = 'q"\\z' + unique_name("")[-4:]
    veth.run("ip", "link", "add", name, "type", "veth", "peer", "name", unique_name("hp")[:15])
    res = xdphints("metrics", "-d", name, ns=veth.ns)
    assert res.returncode == 0, res.stderr
    assert {lab["device"] for lab, _ in parse(res.stdout)["xdphints_hint_state"]} == {name}


@pytest.mark.privileged
def test_a_name_not_utf8_and_its_text_as_a_name_are_two_series(veth):
    """b"g\\xffh" and the literal name "g\\\\xffh" have the same text form: device_bytes
    (as JSON's ifname-bytes) keeps their series apart, or the collector would refuse both."""
    import subprocess

    raw, text = b"g\xffh", "g\\xffh"
    for name in (raw, text.encode()):
        subprocess.run([b"ip", b"netns", b"exec", veth.ns.encode(), b"ip", b"link", b"add", name, b"type",
                        b"veth", b"peer", b"name", unique_name("gp")[:15].encode()], check=True)
    res = xdphints("metrics", ns=veth.ns)
    assert res.returncode == 0, res.stderr
    series = [tuple(sorted(lab.items())) for lab, _ in parse(res.stdout)["xdphints_device_info"]]
    assert len(series) == len(set(series))
    ours = {lab.get("device_bytes"): lab["device"] for lab, _ in parse(res.stdout)["xdphints_device_info"]
            if lab["device"] == text}
    assert ours == {None: text, raw.hex(): text}


@pytest.mark.privileged
def test_output_file_is_replaced_atomically_with_its_mode(veth, tmp_path):
    out = tmp_path / "xdphints.prom"
    out.write_text("old\n")
    os.chmod(out, 0o640)
    inode = out.stat().st_ino
    res = xdphints("metrics", "-d", veth.dev, "-o", str(out), ns=veth.ns)
    assert res.returncode == 0 and res.stdout == "", res.stderr
    assert out.stat().st_ino != inode                     # a new file renamed over the old
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert "xdphints_hint_state" in parse(out.read_text())
    assert sorted(os.listdir(tmp_path)) == ["xdphints.prom"]      # no temporary file left
    os.chown(out, 65534, 65534)             # a file node_exporter's user owns, readable by it alone
    os.chmod(out, 0o600)
    assert xdphints("metrics", "-d", veth.dev, "-o", str(out), ns=veth.ns).returncode == 0
    st = out.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o600)
    new = tmp_path / "new.prom"
    assert xdphints("metrics", "-d", veth.dev, "-o", str(new), ns=veth.ns).returncode == 0
    assert stat.S_IMODE(new.stat().st_mode) == 0o644       # readable by node_exporter


@pytest.mark.privileged
def test_output_refuses_symlink_fifo_directory_and_missing_dir(veth, tmp_path):
    target = tmp_path / "target"
    target.write_text("keep\n")
    link = tmp_path / "link.prom"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.prom"
    os.mkfifo(fifo)
    for path, word in ((link, "symbolic link"), (fifo, "FIFO"), (tmp_path, "directory")):
        res = xdphints("metrics", "-d", veth.dev, "-o", str(path), ns=veth.ns)
        assert res.returncode == 1 and word in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert target.read_text() == "keep\n" and link.is_symlink()
    res = xdphints("metrics", "-d", veth.dev, "-o", str(tmp_path / "nodir" / "x.prom"), ns=veth.ns)
    assert res.returncode == 5, res.stderr
    assert sorted(os.listdir(tmp_path)) == ["fifo.prom", "link.prom", "target"]


@pytest.mark.privileged
def test_bad_use(veth):
    assert xdphints("metrics", "-d", "nosuch0", ns=veth.ns).returncode == 5
    assert xdphints("metrics", "-o", "", ns=veth.ns).returncode == 2


def test_readme_timer_units_verify(tmp_path):
    """The service and timer the README shows pass systemd-analyze verify (ExecStart
    pointed at an executable that exists here: the unit's syntax is what is checked)."""
    import shutil
    import subprocess

    from conftest import REPO_ROOT, need_tool

    analyze = need_tool("systemd-analyze")
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        readme = f.read()
    block = readme.split("# /etc/systemd/system/xdphints-metrics.service\n", 1)[1].split("```", 1)[0]
    service, timer = block.split("# /etc/systemd/system/xdphints-metrics.timer\n")
    service = service.replace("/usr/local/bin/xdphints", shutil.which("true"))
    (tmp_path / "xdphints-metrics.service").write_text(service)
    (tmp_path / "xdphints-metrics.timer").write_text(timer)
    res = subprocess.run([analyze, "verify", str(tmp_path / "xdphints-metrics.service"),
                          str(tmp_path / "xdphints-metrics.timer")], capture_output=True, text=True)
    assert res.returncode == 0 and "xdphints-metrics" not in res.stderr, res.stderr
    assert "OnUnitActiveSec=" in timer and "Type=oneshot" in service
