"""The scripting examples, run as written: the provisioning block of README.md and of
the man page, and examples/ansible/hints.yml under ansible-core, on a veth."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, need_tool

pytestmark = pytest.mark.privileged

PLAYBOOK = os.path.join(REPO_ROOT, "examples", "ansible", "hints.yml")


def _env(**extra: str) -> dict:
    # the xdphints of this checkout first on PATH, as an installed one would be
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("XDPHINTS_DEV", None)
    env.update(extra)
    return env


def readme_block() -> str:
    text = open(os.path.join(REPO_ROOT, "README.md")).read()
    section = text[text.index("### Scripts and playbooks"):]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def man_block() -> str:
    text = open(os.path.join(REPO_ROOT, "man", "xdphints.8")).read()
    section = text[text.index("Provisioning:"):]
    block = re.search(r"\.nf\n\.RS\n(.*?)\.RE\n\.fi", section, re.S).group(1)
    return block.replace("\\-", "-")


def test_readme_and_man_page_give_the_same_block():
    assert readme_block() == man_block()
    assert readme_block().startswith("dev=eth0\n")


@pytest.mark.parametrize("source", [readme_block, man_block], ids=["README", "man"])
def test_provisioning_block_runs_as_written(veth, source):
    need_tool("xdphints")
    script = source().replace("dev=eth0\n", f"dev={veth.dev}\n", 1)
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    p = subprocess.run(["ip", "netns", "exec", veth.ns, "bash", "-c", script], capture_output=True, text=True,
                       env=_env(), timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"{veth.dev}: rx-vlan: rx-vlan-hw-parse off -> on" in p.stdout
    assert f"{veth.dev}: rx-timestamp: unsupported, left out: driver veth has no hardware RX timestamping" in p.stdout
    assert "rx-vlan-offload: on" in veth.run("ethtool", "-k", veth.dev).stdout


def _playbook(veth, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    playbook = need_tool("ansible-playbook")
    need_tool("sudo")   # the playbook asks for become, as one run by a user would
    return subprocess.run(
        [playbook, "-i", "localhost,", "-c", "local", PLAYBOOK,
         "-e", f"ansible_python_interpreter={sys.executable}",
         "-e", f"xdphints_dev={veth.dev}", "-e", f"xdphints_netns={veth.ns}", *extra],
        capture_output=True, text=True, timeout=300,
        env=_env(LC_ALL="C.UTF-8", ANSIBLE_HOME=str(tmp_path / "ansible"), ANSIBLE_NOCOLOR="1",
                 ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_STDOUT_CALLBACK="default"))


def _recap(p: subprocess.CompletedProcess) -> dict:
    line = re.search(r"^localhost\s*:(.*)$", p.stdout, re.M)
    assert line, p.stdout + p.stderr
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.group(1))}


def test_ansible_playbook_makes_hints_ready_once(veth, tmp_path):
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    # check mode: enable --dry-run says what would change, and nothing does
    dry = _playbook(veth, tmp_path, "--check")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    recap = _recap(dry)
    assert (recap["changed"], recap["failed"]) == (1, 0), dry.stdout
    assert "rx-vlan-offload: off" in veth.run("ethtool", "-k", veth.dev).stdout

    first = _playbook(veth, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    recap = _recap(first)
    assert (recap["changed"], recap["failed"]) == (1, 0), first.stdout
    assert "rx-vlan-offload: on" in veth.run("ethtool", "-k", veth.dev).stdout

    second = _playbook(veth, tmp_path, "-e", "xdphints_hints=[]")   # --available: the same hints here
    assert second.returncode == 0, second.stdout + second.stderr
    recap = _recap(second)
    assert (recap["changed"], recap["failed"]) == (0, 0), second.stdout


def test_ansible_playbook_fails_with_the_reason_on_a_device_without_the_hint(veth, tmp_path):
    veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
    # the hints as `-e key=value` gives them, a string
    p = _playbook(veth, tmp_path, "-e", "xdphints_hints=rx-timestamp,rx-vlan")
    assert p.returncode != 0
    recap = _recap(p)
    assert (recap["changed"], recap["failed"]) == (0, 1), p.stdout
    assert (f"xdphints: error: {veth.dev}: rx-timestamp: unsupported: driver veth has no hardware RX "
            "timestamping") in p.stdout
    # all or nothing: rx-vlan was not turned on either
    assert "rx-vlan-offload: off" in veth.run("ethtool", "-k", veth.dev).stdout
