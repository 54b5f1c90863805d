"""README.md's sample output is what the tool prints today: each `$ xdphints ...` block
with output is run on devices named as in the README (a veth pair v0/v1 and one
xh0/xh1 with rx-vlan off, each in a throwaway namespace of its own) and compared
line by line, after the numbers a machine picks (ifindex, BTF ids) are normalised."""

from __future__ import annotations

import os
import re
import shlex

import pytest

from conftest import REPO_ROOT, sh, unique_name, xdphints

pytestmark = pytest.mark.privileged

# samples the test cannot make here, and why; every other sample with output is run
NOT_RUN = {
    "xdphints dump -d xa --queue 0 --count 4": "per-packet times and hashes of live traffic",
}


def samples() -> list:
    """(command, expected output lines) for each `$ xdphints` line of README.md that is
    followed by output."""
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        blocks = re.findall(r"^```\n(.*?)^```$", f.read(), re.M | re.S)
    out = []
    for block in blocks:
        current = None
        for line in block.splitlines():
            if line.startswith("$ "):
                current = (line[2:], [])
                out.append(current)
            elif current is not None:
                current[1].append(line)
    # a blank line parts two samples in one block
    out = [(cmd, lines[:-1] if lines and lines[-1] == "" else lines) for cmd, lines in out]
    return [(cmd, lines) for cmd, lines in out if cmd.startswith("xdphints ") and lines]


def normalise(lines, area_status=None) -> list:
    """Numbers this machine picks become N; the kfunc table's id column is N at any
    width. The metadata-area line depends on the kernel (6.18.44 builds refuse the
    area, others accept it): when `area_status` (the README's) differs from the
    status printed, only that the line is there is compared."""
    out = []
    for line in lines:
        line = line.rstrip()
        line = re.sub(r"\b(ifindex|btf-id) \d+", r"\1 N", line)
        line = re.sub(r"^ *(\d+|ID)  ", "N  ", line)
        m = re.match(r"^(\S+: )?(metadata-area|  metadata-area) +(\S+)", line)
        if m and area_status is not None and m.group(3) != area_status:
            line = (m.group(1) or "") + m.group(2) + " (another kernel's verdict)"
        out.append(line)
    return out


@pytest.fixture(scope="module")
def namespaces():
    """v0/v1 up (the show samples), xh0/xh1 up with rx-vlan off on xh0 (the check
    sample); lo up in both, as on a host."""
    made = {}
    try:
        for key, (a, b) in (("v", ("v0", "v1")), ("xh", ("xh0", "xh1"))):
            ns = unique_name(f"xdph-rm{key}")
            sh("ip", "netns", "add", ns)
            made[key] = ns
            sh("ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b)
            for dev in ("lo", a, b):
                sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ethtool", "-K", "xh0", "rxvlan", "off", ns=made["xh"])
        yield made
    finally:
        for ns in made.values():
            sh("ip", "netns", "del", ns, check=False)


def test_readme_lists_samples():
    cmds = [cmd for cmd, _ in samples()]
    assert "xdphints show v0" in cmds and "xdphints show" in cmds and "xdphints btf --kfuncs" in cmds
    assert set(NOT_RUN) <= set(cmds), "a sample NOT_RUN names is no longer in README.md"


@pytest.mark.parametrize("cmd,expected", [s for s in samples() if s[0] not in NOT_RUN], ids=lambda v: str(v)[:40])
def test_readme_sample_is_what_the_tool_prints(cmd, expected, namespaces):
    words = shlex.split(cmd.split(";")[0])[1:]
    res = xdphints(*words, ns=namespaces["xh" if "xh0" in cmd else "v"])
    got = res.stdout.splitlines()
    if cmd.endswith("; echo $?"):
        got.append(str(res.returncode))
    else:
        assert res.returncode == 0, res.stderr
    status = next((m.group(1) for ln in expected for m in [re.search(r"metadata-area +(\S+)", ln)] if m), None)
    assert normalise(got, status) == normalise(expected, status), f"README.md's sample of `{cmd}` is stale"
