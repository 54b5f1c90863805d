"""Nothing from a name reaches the terminal raw: control characters in interface and
BTF names are escaped in text output and kept exact in JSON."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import sh, unique_name, xdphints
from xdphints_cli.btf.writer import Builder
from xdphints_cli.cli.safe_text import escape, escape_text

OSC = "\x1b]0;x\x07"        # sets the window title; unterminated once BEL is dropped
CLEAR = "\x1b[2J"           # clears the screen
RAW = ("\x1b", "\x07", "\x08", "\x7f")


def test_escape_rules():
    assert escape("eth0") == "eth0"
    assert escape(f"e{OSC}") == "e\\x1b]0;x\\x07"
    assert escape("a\nb\tc\x7f\x9b") == "a\\x0ab\\x09c\\x7f\\x9b"
    assert escape("\u202eevil\u2066") == "\\u202eevil\\u2066"
    assert escape("x\udcff") == "x\\xff"                  # a byte that was not UTF-8
    assert escape("caf\u00e9 \u0662 \U0001f600") == "caf\u00e9 \u0662 \U0001f600"
    assert escape_text(f"a\n\tb{CLEAR}") == "a\n\tb\\x1b[2J"


def assert_clean(text: str) -> None:
    assert not any(c in text for c in RAW), repr(text)


@pytest.fixture
def hostile_ns():
    """A namespace with a veth pair whose names carry an OSC sequence and a clear-screen."""
    ns = unique_name("xdph-e")
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "add", "name", f"e{OSC}", "type", "veth", "peer", "name", f"f{CLEAR}")
        yield ns
    finally:
        sh("ip", "netns", "del", ns, check=False)


@pytest.mark.privileged
def test_interface_names_are_escaped_in_text_and_exact_in_json(hostile_ns):
    ns = hostile_ns
    dev = f"e{OSC}"
    for args in (["show"], ["show", dev], ["check", "-d", dev], ["enable", "rx-vlan", "--dry-run", "-d", dev],
                 ["show", f"g{CLEAR}"], ["-n", f"n{CLEAR}", "show"], ["btf", "-d", dev]):
        res = xdphints(*args, ns=ns)
        assert_clean(res.stdout + res.stderr)
        assert "\\x1b" in res.stdout + res.stderr, (args, res.stdout, res.stderr)
    # dump's own start line and summary carry the name too
    sh("ip", "-n", ns, "link", "set", dev, "up")
    sh("ip", "-n", ns, "link", "set", f"f{CLEAR}", "up")
    res = xdphints("dump", "-d", dev, "--queue", "0", "--duration", "0.3", ns=ns)
    assert res.returncode == 0, res.stderr
    assert_clean(res.stdout + res.stderr)
    assert "dumping e\\x1b]0;x\\x07 queue 0" in res.stderr and "on e\\x1b]0;x\\x07 queue 0" in res.stderr
    listed = xdphints("show", ns=ns).stdout.splitlines()
    assert any(line.startswith("e\\x1b]0;x\\x07 ") for line in listed), listed
    assert any(line.startswith("f\\x1b[2J ") for line in listed), listed
    assert json.loads(xdphints("-j", "show", dev, ns=ns).stdout)["ifname"] == dev
    assert {r["ifname"] for r in json.loads(xdphints("-j", "show", ns=ns).stdout)} >= {dev, f"f{CLEAR}"}


def hostile_btf(tmp_path):
    b = Builder()
    i = b.add_int("int", 4, signed=True)
    b.add_struct(f"xdp_hints{CLEAR}", 8, [(f"a{OSC}", i, 0), ("btf_id", i, 32)])
    path = tmp_path / f"h{CLEAR}.btf"
    path.write_bytes(b.encode())
    return str(path)


def test_btf_names_are_escaped_in_text_exact_in_json_and_never_c(tmp_path):
    path = hostile_btf(tmp_path)
    for args in (["btf", "--file", path], ["btf", "--file", path, "--all"],
                 ["btf", "--file", path, "--struct", f"xdp_hints{CLEAR}"]):
        res = xdphints(*args)
        assert res.returncode == 0, res.stderr
        assert_clean(res.stdout + res.stderr)
        assert "xdp_hints\\x1b[2J" in res.stdout
    table = xdphints("btf", "--file", path).stdout
    assert "a\\x1b]0;x\\x07" in table
    # C: a name that is not an identifier is refused, in one line, with nothing on stdout
    res = xdphints("btf", "--file", path, "--format", "c")
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr.startswith("xdphints: error: struct name 'xdp_hints\\x1b[2J' is not a C identifier")
    assert_clean(res.stderr)
    doc = json.loads(xdphints("-j", "btf", "--file", path).stdout)
    (s,) = doc["hints-structs"]
    assert s["name"] == f"xdp_hints{CLEAR}" and s["members"][0]["name"] == f"a{OSC}"
    one = json.loads(xdphints("-j", "btf", "--file", path, "--struct", f"xdp_hints{CLEAR}").stdout)
    assert one["type"]["name"] == f"xdp_hints{CLEAR}" and "c" not in one["type"]


@pytest.mark.privileged
def test_interface_name_that_is_not_utf8():
    """Any bytes but NUL, '/' and whitespace make an interface name: one that is not
    UTF-8 is found, changed and shown with the byte escaped."""
    ns = unique_name("xdph-u")
    sh("ip", "netns", "add", ns)
    try:
        dev = os.fsdecode(b"u\xff")  # as argv hands it over
        subprocess.run(["ip", "-n", ns, "link", "add", "name", b"u\xff", "type", "veth", "peer", "name", "w0"],
                       check=True)
        listed = xdphints("show", ns=ns)
        assert listed.returncode == 0, listed.stderr
        assert any(line.startswith("u\\xff ") for line in listed.stdout.splitlines())
        res = xdphints("disable", "rx-vlan", "-d", dev, ns=ns)
        assert (res.returncode, res.stdout) == (0, "u\\xff: rx-vlan: rx-vlan-hw-parse on -> off\n"), res.stderr
        assert b"rx-vlan-offload: off" in subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-k", b"u\xff"],
                                                         capture_output=True).stdout
    finally:
        sh("ip", "netns", "del", ns, check=False)


def test_dump_metadata_text_escapes_struct_and_member_names():
    """--attached shows struct and member names of the user's program (any bytes)."""
    from xdphints_cli.cli.dump_output import metadata_text

    text = metadata_text({"struct": f"s{CLEAR}", "fields": {f"m{OSC}": 1, "btf_id": 7}})
    assert_clean(text)
    assert text == "struct s\\x1b[2J: m\\x1b]0;x\\x07 1"
