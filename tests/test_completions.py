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

from conftest import REPO_ROOT, need_tool, sh, unique_name

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
        words = []
        for w in shlex.split(line):     # COMP_WORDS as bash makes them: '=' is a word of its own
            opt, eq, value = w.partition("=") if w.startswith("--") else (w, "", "")
            words += [opt, eq, value] if eq and value else [opt, eq] if eq else [w]
        words += [""] if line.endswith(" ") else []
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
    assert {"--check", "--watch", "--json"} <= set(complete(shell, "xdphints apply --", bin_dir))


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


# --- names that other people control are data, never code ---------------------------

# What a container's root can name its interfaces (and anyone their namespaces or pins):
# each would run `id` or glob if the completion expanded it. At most 15 bytes each.
HOSTILE = ("x$(id>pwn)", "y`id>pw2`", "x*", "a'q\"x", "~x", "$((6*7))", "${PWD}")


def bash_inserted(line: str, path_dir: str, cwd: str, prefix=()) -> str:
    """The line an interactive bash has after `line` + readline's insert-completions
    (every match, as the shell would insert it): bash on a pseudo-terminal, so word
    splitting, quoting and readline are the real ones."""
    import pty
    import select
    import time

    need_tool("bash")
    env = dict(os.environ, PATH=f"{path_dir}:{os.environ['PATH']}", NO_COLOR="1", TERM="dumb")
    env.pop("XDPHINTS_DEV", None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec only
        os.chdir(cwd)
        argv = list(prefix) + ["bash", "--norc", "--noprofile", "-i"]
        os.execvpe(argv[0], argv, env)
    out = b""

    def read_until(marker: bytes, timeout: float = 30) -> None:
        nonlocal out
        end = time.monotonic() + timeout
        while marker not in out and time.monotonic() < end:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
        assert marker in out, out.decode(errors="replace")

    try:
        os.write(fd, (f"PS1=; source {shlex.quote(COMPLETIONS)}/xdphints.bash; "
                      "bind '\"\\C-x\": insert-completions'; "
                      "bind -x '\"\\C-t\": printf \"<<%s>>%s<<%s>>\\n\" LINE \"$READLINE_LINE\" END'; "
                      "echo '<<'READY'>>'\n").encode())
        read_until(b"<<READY>>")
        out = b""  # the markers below are printed, never echoed as typed
        os.write(fd, line.encode() + b"\x18\x14")   # C-x: insert-completions, C-t: print the line
        read_until(b"<<END>>")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    text = out.decode()
    return text[text.rindex("<<LINE>>") + len("<<LINE>>"):text.rindex("<<END>>")]


def inserted_words(line: str, after: str) -> list:
    """The words completion put in place of the word being typed at the end of `line`
    (a word without spaces; none when `line` ends in one), read back as the shell
    reads them."""
    kept = len(shlex.split(line.rpartition(" ")[0]))
    return shlex.split(after)[kept:]


def offered(shell: str, line: str, path_dir: str, cwd, prefix=()) -> set:
    """The names `shell` offers for `line`, read back as the shell reads what it would
    insert: bash's line after insert-completions, zsh's matches as compadd quotes them,
    fish's candidates (fish escapes them only as it inserts them)."""
    if shell == "bash":
        return set(inserted_words(line, bash_inserted(line, path_dir, str(cwd), prefix)))
    here = os.getcwd()
    os.chdir(cwd)
    try:
        got = complete(shell, line, path_dir, prefix)
    finally:
        os.chdir(here)
    return {w for m in got for w in shlex.split(m)} if shell == "zsh" else set(got)


@pytest.fixture
def trap_dir(tmp_path):
    """The shell's working directory: files a glob would pick up, and where the
    hostile names would write theirs (pwn, pw2) if they ran."""
    d = tmp_path / "cwd"
    d.mkdir()
    for name in ("x-glob1", "x-glob2"):
        (d / name).write_text("")
    return d


def _no_code_ran(trap_dir) -> None:
    assert sorted(os.listdir(trap_dir)) == ["x-glob1", "x-glob2"]


@pytest.mark.privileged
@pytest.mark.parametrize("shell", SHELLS)
def test_hostile_device_and_namespace_names_are_offered_literally(shell, veth, bin_dir, trap_dir):
    for i, name in enumerate(HOSTILE):
        veth.run("ip", "link", "add", "name", name, "type", "veth", "peer", "name", f"hp{i}")
    devices = set(HOSTILE) | {"lo", veth.dev} | {f"hp{i}" for i in range(len(HOSTILE))}
    for line in (f"xdphints -n {veth.ns} show ", f"xdphints dump -n {veth.ns} -d "):
        assert offered(shell, line, bin_dir, trap_dir) == devices, line
    _no_code_ran(trap_dir)
    ns = unique_name("n$(id>pwn)'`id>pw2`*")
    sh("ip", "netns", "add", ns)
    try:
        assert ns in offered(shell, "xdphints -n ", bin_dir, trap_dir)
    finally:
        sh("ip", "netns", "del", ns, check=False)
    _no_code_ran(trap_dir)


@pytest.mark.privileged
@pytest.mark.parametrize("shell", SHELLS)
def test_the_line_is_read_as_the_cli_reads_it(shell, veth, bin_dir, trap_dir):
    """--netns=NS (which bash splits at '='), -nNS, a unique prefix of a command, and a
    device in the command's place (show DEV) complete as the CLI reads the line, in
    the namespace named (bash: real readline on a pseudo-terminal)."""
    ns, dev = veth.ns, veth.dev
    for line in (f"xdphints --netns={ns} show ", f"xdphints -n{ns} show ", f"xdphints -n {ns} sh ",
                 f"xdphints --netns={ns} sh -d "):
        assert offered(shell, line, bin_dir, trap_dir) == {"lo", dev}, line
    got = offered(shell, f"xdphints sho --netns={ns} --dev=", bin_dir, trap_dir)   # after the '='
    assert {w.replace("--dev=", "", 1) for w in got} == {"lo", dev}, got
    assert offered(shell, f"xdphints --netns={ns} du -d {dev} -q ", bin_dir, trap_dir) == {"0", "all"}
    assert ns in {w.replace("--netns=", "", 1) for w in complete(shell, "xdphints --netns=", bin_dir)}
    # a device in the command's place is show's DEV, and show takes one: options follow
    for line in (f"xdphints -n {ns} {dev} -", f"xdphints -n {ns} show {dev} -"):
        got = offered(shell, line, bin_dir, trap_dir)
        assert {"--dev", "--json", "--netns"} <= got and dev not in got, (line, got)
    for line in (f"xdphints -n {ns} {dev} ", f"xdphints -n {ns} show {dev} "):
        assert not {"lo", dev} & offered(shell, line, bin_dir, trap_dir), line
    # an ambiguous prefix is a usage error: nothing to offer
    assert complete(shell, f"xdphints -n {ns} d ", bin_dir) == []
    # the word in the command's place is looked up as data, never run
    for word in ("'$(id>pwn)'", "'`id>pw2`'", "'../../x'"):
        offered(shell, f"xdphints -n {ns} {word} -", bin_dir, trap_dir)
    _no_code_ran(trap_dir)


@pytest.mark.privileged
def test_bash_completes_a_quoted_prefix_to_the_one_name(veth, bin_dir, trap_dir):
    """The word typed so far is read as the shell reads it (quotes and backslashes),
    and a glob character in it is a character."""
    for i, name in enumerate(HOSTILE):
        veth.run("ip", "link", "add", "name", name, "type", "veth", "peer", "name", f"hp{i}")
    ns = f"-n {veth.ns}"
    for typed, name in (("x\\$", "x$(id>pwn)"), ("'x$", "x$(id>pwn)"), ('"x\\$(', "x$(id>pwn)"),
                        ("x\\*", "x*"), ("'x*'", "x*"), ("\\~", "~x"), ("a\\'q", "a'q\"x"), ('"y`', "y`id>pw2`")):
        line = f"xdphints {ns} show {typed}"
        got = bash_inserted(line, bin_dir, str(trap_dir))
        assert inserted_words(line, got) == [name], (typed, got)
    _no_code_ran(trap_dir)


@pytest.mark.privileged
@pytest.mark.parametrize("shell", SHELLS)
def test_hostile_pinned_paths_and_files_are_offered_literally(shell, bin_dir, trap_dir):
    """Pins in a bpffs of the test's own (a mount namespace of its own), and files in
    the working directory, with names that would run code if expanded."""
    need_tool("unshare")
    bpftool = need_tool("bpftool")
    pins = ["/sys/fs/bpf/p$(id>pwn)", "/sys/fs/bpf/q`id>pw2`", "/sys/fs/bpf/r*"]
    setup = "mount -t bpf bpf /sys/fs/bpf && " + " && ".join(
        f"{bpftool} map create {shlex.quote(p)} type array key 4 value 4 entries 1 name xdph_pin" for p in pins) \
        + ' && exec "$@"'
    prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c", setup, "sh"]
    assert offered(shell, "xdphints dump -q 0 --attached --pinned ", bin_dir, trap_dir, prefix) == set(pins)
    _no_code_ran(trap_dir)
    (trap_dir / "f$(id>pwn)").write_text("")
    got = offered(shell, "xdphints btf --file f", bin_dir, trap_dir)
    assert got == {"f$(id>pwn)"}, got
    assert sorted(os.listdir(trap_dir)) == ["f$(id>pwn)", "x-glob1", "x-glob2"]
