"""The completions, driven in the real shells: bash through COMP_WORDS and _xdphints,
fish through `complete -C`, zsh through compinit and its completion widget on a
pseudo-terminal (tests/shells/complete.zsh). Devices, queues and namespaces come from a
throwaway namespace given with -n, before or after the command."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, need_tool

COMPLETIONS = os.path.join(REPO_ROOT, "completions")
FEATURES = {"rx-timestamp", "tx-timestamp", "rx-hash", "rx-vlan", "rx-vlan-stag"}
SHELLS = ("bash", "fish", "zsh")

# `xdphints show` of a NIC with hardware timestamping (recorded from the rows show prints):
# there is no such NIC here, and veth lists no tx-type or rx-filter
NIC_SHOW = """eth9: ifindex 9, driver ice, state up, mtu 1500
  Hardware TX types:          off on onestep-sync
  Hardware RX filters:        none all ptpv2-event ntp-all
"""


def _bin_dir(tmp_path, recorded_nic: bool) -> str:
    """A PATH directory whose `xdphints` is this tree's CLI (or the recorded NIC's show)."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    script = d / "xdphints"
    if recorded_nic:
        script.write_text(f"#!/bin/sh\ncat <<'END'\n{NIC_SHOW}END\n")
    else:
        script.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(REPO_ROOT)} exec {shlex.quote(sys.executable)} "
                          "-m xdphints_cli \"$@\"\n")
    script.chmod(0o755)
    return str(d)


def complete(shell: str, line: str, path_dir: str, prefix=()) -> list:
    """What `shell` offers when TAB is pressed at the end of `line`."""
    need_tool(shell)
    env = dict(os.environ, PATH=f"{path_dir}:{os.environ['PATH']}", NO_COLOR="1")
    env.pop("XDPHINTS_DEV", None)
    if shell == "bash":
        words = shlex.split(line) + ([""] if line.endswith(" ") else [])
        script = (f"source {shlex.quote(COMPLETIONS)}/xdphints.bash; COMP_WORDS=({' '.join(map(shlex.quote, words))}); "
                  f"COMP_CWORD={len(words) - 1}; _xdphints; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        argv = ["bash", "-c", script]
    elif shell == "fish":
        argv = ["fish", "--no-config", "-c",
                f"source {COMPLETIONS}/xdphints.fish; complete -C {shlex.quote(line)}"]
    else:
        fpath = os.path.join(path_dir, "zsh-functions")
        os.makedirs(fpath, exist_ok=True)
        shutil.copy(os.path.join(COMPLETIONS, "xdphints.zsh"), os.path.join(fpath, "_xdphints"))
        argv = ["zsh", "-f", os.path.join(REPO_ROOT, "tests", "shells", "complete.zsh"), fpath, line]
    res = subprocess.run(list(prefix) + argv, capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    return [ln.split("\t")[0] for ln in res.stdout.splitlines() if ln]


@pytest.fixture
def bin_dir(tmp_path):
    return _bin_dir(tmp_path, recorded_nic=False)


@pytest.mark.parametrize("shell", SHELLS)
def test_sourcing_prints_nothing(shell):
    need_tool(shell)
    cmd = {"bash": ["bash", "-c", f"source {COMPLETIONS}/xdphints.bash"],
           "fish": ["fish", "--no-config", "-c", f"source {COMPLETIONS}/xdphints.fish"],
           "zsh": ["zsh", "-f", "-c", f"autoload -U compinit; compinit -u -D; source {COMPLETIONS}/xdphints.zsh"]}
    res = subprocess.run(cmd[shell], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout == "" and res.stderr == "", res.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_commands_and_static_values(shell, bin_dir):
    from xdphints_cli.cli.main import COMMANDS

    assert set(complete(shell, "xdphints ", bin_dir)) == set(COMMANDS)
    assert set(complete(shell, "xdphints dump --match ", bin_dir)) >= {"ip", "all", "udp", "tcp", "ptp", "vlan",
                                                                      "udp:", "tcp:"}
    assert set(complete(shell, "xdphints btf --format ", bin_dir)) == {"table", "c"}
    # a feature already on the line is not offered again
    assert set(complete(shell, "xdphints enable rx-hash ", bin_dir)) == FEATURES - {"rx-hash"}
    assert set(complete(shell, "xdphints check rx-vlan rx-hash ", bin_dir)) == {"rx-timestamp"}
    # global options after the command
    assert {"--netns", "--pretty", "--dev"} <= set(complete(shell, "xdphints show --", bin_dir))


@pytest.mark.privileged
@pytest.mark.parametrize("shell", SHELLS)
def test_devices_and_queues_from_the_namespace_of_n(shell, veth_factory, bin_dir):
    pair = veth_factory(rx_queues=3)
    ns, dev = pair.ns, pair.dev
    here = set(os.listdir("/sys/class/net"))
    for line in (f"xdphints -n {ns} show -d ", f"xdphints dump -n {ns} -d ", f"xdphints -n {ns} show "):
        got = set(complete(shell, line, bin_dir))
        assert got == {"lo", dev}, (line, got)
        assert not (here - {"lo"}) & got
    for line in (f"xdphints -n {ns} dump -d {dev} --queue ", f"xdphints dump -d {dev} -n {ns} -q "):
        assert set(complete(shell, line, bin_dir)) == {"0", "1", "2", "all"}, line
    # a veth made without queue counts: one queue per CPU allocated, one active
    pair.run("ip", "link", "add", "pl0", "type", "veth", "peer", "name", "pl1")
    assert set(complete(shell, f"xdphints -n {ns} dump -d pl0 -q ", bin_dir)) == {"0", "all"}
    assert ns in complete(shell, "xdphints -n ", bin_dir)
    # veth has no hardware timestamping: no rx-filter to offer, and no error either
    assert complete(shell, f"xdphints -n {ns} enable -d {dev} --rx-filter ", bin_dir) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_rx_filters_and_tx_types_are_the_devices_own(shell, tmp_path):
    nic = _bin_dir(tmp_path, recorded_nic=True)
    assert set(complete(shell, "xdphints enable -d eth9 rx-timestamp --rx-filter ", nic)) == \
        {"all", "ptpv2-event", "ntp-all"}
    assert set(complete(shell, "xdphints enable tx-timestamp -d eth9 --tx-type ", nic)) == {"on", "onestep-sync"}


@pytest.mark.privileged
@pytest.mark.parametrize("shell", SHELLS)
def test_pinned_paths_come_from_bpffs(shell, bin_dir):
    """In a mount namespace of its own with a fresh bpffs, so the host's is left alone."""
    need_tool("unshare")
    bpftool = need_tool("bpftool")
    setup = ("mount -t bpf bpf /sys/fs/bpf && "
             f"{bpftool} map create /sys/fs/bpf/xdph_pin type array key 4 value 4 entries 1 name xdph_pin && "
             'exec "$@"')
    prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c", setup, "sh"]
    assert complete(shell, "xdphints dump -q 0 --attached --pinned ", bin_dir, prefix) == ["/sys/fs/bpf/xdph_pin"]
