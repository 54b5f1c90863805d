"""The habits of the tools users know: whole usage messages, exit codes --debug leaves
alone, global options anywhere, `xdphints DEV`, command prefixes, help and -V, fix
commands that paste, `dump -w -` into tshark, and the man page as man renders it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import click
import pytest

from conftest import REPO_ROOT, need_tool, xdphints
from test_dump import _cmd, _env, finish, send_udp, start_dump, xdp_attached
from xdphints_cli.cli.main import COMMANDS, cli
from xdphints_cli.cli.options import GLOBAL_OPTIONS


# --- 1. errors and exit codes -------------------------------------------------------

def test_usage_errors_keep_their_whole_message():
    res = xdphints("disable", "-d", "X")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("xdphints: error: Missing argument 'FEATURE...'. Choose from:")
    for name in ("rx-timestamp", "tx-timestamp", "rx-hash", "rx-vlan", "rx-vlan-stag"):
        assert name in res.stderr
    res = xdphints("enable", "-d", "X")
    assert res.returncode == 2 and res.stdout == "" and len(res.stderr.splitlines()) == 1
    assert res.stderr.startswith("xdphints: error: enable: no FEATURE given: name one or more of rx-timestamp, ")
    assert "--available" in res.stderr
    bare = xdphints()
    assert bare.returncode == 2 and "Usage: xdphints" in bare.stderr
    assert all(re.search(rf"^\s+{name}\s", bare.stderr, re.M) for name in COMMANDS)


def test_debug_adds_a_traceback_and_nothing_else():
    plain = xdphints("show", "nosuch")
    debug = xdphints("--debug", "show", "nosuch")
    assert plain.returncode == debug.returncode == 5
    assert "Traceback" in debug.stderr and "Traceback" not in plain.stderr
    assert debug.stderr.splitlines()[-1] == plain.stderr.strip() == "xdphints: error: no such device: nosuch"


def test_json_error_only_when_json_was_understood():
    res = xdphints("show", "--bogus", "-j")  # -j is never reached
    assert res.returncode == 2 and res.stdout == "" and "No such option '--bogus'" in res.stderr
    res = xdphints("show", "nosuch", "-j")
    assert res.returncode == 5 and json.loads(res.stdout) == {"error": "no such device: nosuch", "exit-code": 5}


# --- 2. the habits of ip, bpftool, ethtool, tcpdump ---------------------------------------

def test_global_options_after_the_command():
    pretty = xdphints("show", "lo", "-p", "--no-color", "--debug")
    assert pretty.returncode == 0, pretty.stderr
    assert pretty.stdout.startswith("{\n  ") and json.loads(pretty.stdout)["ifname"] == "lo"
    for opts, _ in GLOBAL_OPTIONS:  # every subcommand takes every global option
        for name in COMMANDS:
            if name != "help":
                assert xdphints(name, opts[0] if opts[0] != "-n" else "--help", "--help").returncode == 0


def test_device_name_means_show_and_prefixes_work():
    show = json.loads(xdphints("show", "lo", "-j").stdout)
    for argv in (["lo", "-j"], ["sh", "lo", "-j"], ["-j", "s", "lo"]):
        res = xdphints(*argv)
        assert res.returncode == 0, (argv, res.stderr)
        got = json.loads(res.stdout)
        assert got["ifname"] == "lo" and got["hints"] == show["hints"]
    amb = xdphints("d")
    assert amb.returncode == 2 and "'d' is ambiguous: disable, dump, demo" in amb.stderr
    typo = xdphints("shwo", "lo")
    assert typo.returncode == 2 and "did you mean 'show'?" in typo.stderr
    unknown = xdphints("nosuchdev0")
    assert unknown.returncode == 5 and "no such device: nosuchdev0" in unknown.stderr


def test_help_command_and_short_version():
    assert xdphints("help").stdout == xdphints("--help").stdout
    assert xdphints("help", "en").stdout == xdphints("enable", "--help").stdout
    bad = xdphints("help", "nosuch")
    assert bad.returncode == 2 and "no such command 'nosuch'" in bad.stderr
    assert xdphints("-V").stdout == xdphints("--version").stdout != ""


@pytest.mark.privileged
def test_fix_commands_name_the_namespace_and_paste(veth):
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    for argv in (["-n", veth.ns, "check", "rx-vlan", "-d", veth.dev, "-j"],
                 ["check", "rx-vlan", "-d", veth.dev, "-j", "-n", veth.ns]):
        res = xdphints(*argv)
        assert res.returncode == 6, res.stderr
        fix = json.loads(res.stdout)["hints"]["rx-vlan"]["fix"]
        assert fix == f"xdphints -n {veth.ns} enable rx-vlan -d {veth.dev}"
    # pasted as it is (from the root namespace), it fixes the hint
    assert xdphints(*fix.split()[1:]).returncode == 0
    assert xdphints("-n", veth.ns, "check", "rx-vlan", "-d", veth.dev).returncode == 0


@pytest.mark.privileged
def test_dump_write_dash_pipes_pcapng_into_tshark(veth):
    need_tool("tshark")
    veth.run_peer("sysctl", "-qw", f"net.ipv6.conf.{veth.peer}.disable_ipv6=1")
    dump = " ".join(_cmd(veth.ns, "-d", veth.dev, "-q", "0", "-c", "3", "-w", "-"))
    p = subprocess.Popen(["bash", "-o", "pipefail", "-c", f"{dump} | tshark -r - -T fields -e udp.srcport -e udp.dstport"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    while not xdp_attached(veth):
        assert p.poll() is None, p.communicate()
    send_udp(veth, 3)
    rc, out, err = finish(p)
    assert rc == 0, err
    assert out.split("\n")[:3] == ["40000\t9999"] * 3
    assert "xdphints: 3 packets" in err  # the summary stays on stderr


# --- 5. output polish ---------------------------------------------------------------

@pytest.mark.privileged
def test_one_packet_is_singular_and_has_no_receive_rate(veth):
    p = start_dump(veth, "-d", veth.dev, "-q", "0", "-c", "1", "--quiet")
    send_udp(veth, 1)
    rc, out, err = finish(p)
    assert rc == 0, err
    assert re.search(r"^xdphints: 1 packet, 74 bytes in \S+ s \(\S+ pps\) on ", err, re.M), err
    assert "while receiving" not in err
    p = start_dump(veth, "-d", veth.dev, "-q", "0", "-c", "1", "--quiet", "-j")
    send_udp(veth, 1)
    rc, out, err = finish(p)
    summary = json.loads(out)
    assert summary["packets"] == 1 and "active-pps" not in summary
    assert "packet" not in err  # --quiet -j: the JSON summary only


# --- 4. the man page, as man renders it -------------------------------------------

def _rendered_man() -> str:
    need_tool("man")
    res = subprocess.run(["man", "-l", os.path.join(REPO_ROOT, "man", "xdphints.8")], capture_output=True,
                         text=True, env=dict(os.environ, MANWIDTH="2000", MAN_KEEP_FORMATTING="", PAGER="cat"))
    assert res.returncode == 0 and res.stderr == "", res.stderr
    return re.sub(r".\x08", "", res.stdout)


def test_man_synopsis_matches_the_click_tree():
    text = _rendered_man()
    synopsis = text.split("\nSYNOPSIS\n", 1)[1].split("\nDESCRIPTION\n", 1)[0]
    lines = {m.group(1): m.group(0) for m in re.finditer(r"^\s+xdphints (\w+)\b.*$", synopsis, re.M)}
    ctx = click.Context(cli)
    globals_ = {o for opts, _ in GLOBAL_OPTIONS for o in opts}
    assert set(lines) >= set(COMMANDS), set(COMMANDS) - set(lines)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        for p in command.params:
            if isinstance(p, click.Option) and p.name != "help" and not set(p.opts) & globals_:
                assert any(re.search(rf"\[?{re.escape(o)}\b", lines[name]) for o in p.opts), (name, p.opts)
            if isinstance(p, click.Argument):
                metavar = re.sub(r"[\[\].]", "", p.metavar or p.name.upper())
                assert metavar in lines[name], (name, metavar)
    for opts, _ in GLOBAL_OPTIONS:
        assert opts[0] in synopsis.split("GLOBAL-OPTIONS :=")[1]


def test_man_renders_json_error_with_its_quotes_and_examples_per_command():
    text = _rendered_man()
    assert '{"error": MESSAGE, "exit-code": N}' in text
    examples = text.split("\nEXAMPLES\n", 1)[1].split("\nSEE ALSO\n", 1)[0]
    for name in COMMANDS:
        assert re.search(rf"^\s+xdphints (-n \S+ )?{name}\b", examples, re.M), name
    # the provisioning block (run as written by test_examples_scripted.py)
    assert 'xdphints enable --available -d "$dev" || exit 1' in examples


@pytest.mark.privileged
@pytest.mark.parametrize("debug", [False, True])
def test_a_verifier_rejection_is_one_line_and_its_log_needs_debug(capsys, debug):
    """The message names the verifier's reason in one line; the whole log (trace and
    all) only with --debug, before that line."""
    from xdphints_cli.bpf.insn import R0, R2, XDP_PASS, exit_, ldx_mem, mov64_imm
    from xdphints_cli.bpf.prog import Program, VerifierError
    from xdphints_cli.cli.app import App, exit_for

    with pytest.raises(VerifierError) as ei:
        Program.load([mov64_imm(R0, XDP_PASS), ldx_mem(4, R0, R2, 0), exit_()], name="xh_bad")
    app = App()
    app.debug = debug
    with pytest.raises(SystemExit) as ex:
        exit_for(app, ei.value)
    err = capsys.readouterr().err
    line = "xdphints: error: loading XDP program 'xh_bad': R2 !read_ok (EACCES)"
    assert ex.value.code == 1 and err.splitlines()[-1] == line
    assert ("processed 2 insns" in err) is debug and ("(61) r0 = *(u32 *)(r2 +0)" in err) is debug
    if not debug:
        assert err == line + "\n"
