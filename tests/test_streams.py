"""stdout and stderr closed (`>&-`), full (`>/dev/full`) or broken (a pipe whose reader
left), for every command: one line on stderr and the documented exit code, never a
traceback; a stderr that cannot be written never changes the exit code or stdout; and
enable/disable undo a change whose report cannot be written, so the exit code and the
device always agree (signals too)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, sh
from test_dump import send_udp, xdp_attached

STATES = ("closed", "full", "broken")
STDOUT_ERROR = {"closed": "xdphints: error: cannot write to stdout: Bad file descriptor (EBADF)\n",
                "full": "xdphints: error: cannot write to stdout: No space left on device (ENOSPC)\n"}


def run(argv, stdout: str = "pipe", stderr: str = "pipe", ns: str = "", env=None, timeout: float = 120):
    """(exit code, stdout, stderr) of the CLI with each stream a pipe read here, closed
    by the shell (`>&-`), /dev/full, or a pipe whose reader has gone ("broken")."""
    redirect = "".join(f" {fd}>&-" for fd, state in ((1, stdout), (2, stderr)) if state == "closed")
    cmd = ["sh", "-c", f'exec "$@"{redirect}', "sh", sys.executable, "-m", "xdphints_cli", *argv]
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    opened = []

    def stream(state: str):
        if state == "full":
            f = open("/dev/full", "wb")
            opened.append(f)
            return f
        if state == "broken":
            r, w = os.pipe()
            os.close(r)
            opened.append(os.fdopen(w, "wb"))
            return w
        return subprocess.PIPE if state == "pipe" else subprocess.DEVNULL

    full_env = dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT)
    full_env.pop("XDPHINTS_DEV", None)
    full_env.update(env or {})
    try:
        p = subprocess.run(cmd, stdout=stream(stdout), stderr=stream(stderr), env=full_env, timeout=timeout)
    finally:
        for f in opened:
            f.close()
    decode = (lambda b: b.decode(errors="surrogateescape") if b is not None else None)
    return p.returncode, decode(p.stdout), decode(p.stderr)


# commands that write to stdout on success, and read only
WRITERS = [["show", "lo"], ["-j", "show", "lo"], ["show"], ["-j", "show"], ["check", "-d", "lo"],
           ["-j", "check", "-d", "lo"], ["btf", "--kernel", "--struct", "xdp_md"],
           ["-j", "btf", "--kernel", "--struct", "xdp_md"], ["btf", "--kfuncs"], ["--help"],
           ["help", "dump"], ["enable", "--help"], ["-V"]]
ERRORS = [["check", "-d", "nosuch"], ["-j", "check", "-d", "nosuch"], ["-j", "show", "nosuch"],
          ["btf", "--kernel", "--struct", "no_such_struct"]]


@pytest.mark.parametrize("argv", WRITERS, ids=" ".join)
@pytest.mark.parametrize("state", STATES)
def test_stdout_that_cannot_be_written(argv, state):
    rc, _, err = run(argv, stdout=state)
    if state == "broken":      # as a command SIGPIPE ended: quietly
        assert (rc, err) == (141, "")
    else:
        assert (rc, err) == (1, STDOUT_ERROR[state])


@pytest.mark.parametrize("argv", WRITERS + ERRORS, ids=" ".join)
@pytest.mark.parametrize("state", STATES)
def test_stderr_that_cannot_be_written_changes_nothing(argv, state):
    rc, out, _ = run(argv)
    assert (rc, out) == run(argv, stderr=state)[:2]


@pytest.mark.parametrize("argv", ERRORS, ids=" ".join)
@pytest.mark.parametrize("state", STATES)
def test_errors_keep_their_exit_code_whatever_stdout_is(argv, state):
    code = run(argv)[0]
    assert code == 5
    rc, _, err = run(argv, stdout=state)
    assert rc == code and err.startswith("xdphints: error: no ") and err.count("\n") == 1, err
    rc, out, _ = run(argv, stderr="closed")
    assert rc == code
    if "-j" in argv:
        assert json.loads(out)["exit-code"] == code


def test_both_closed_is_still_the_exit_code():
    assert run(["show", "lo"], stdout="closed", stderr="closed")[0] == 1
    assert run(["check", "-d", "nosuch"], stdout="closed", stderr="closed")[0] == 5


# --- enable and disable: the report is part of the change ----------------------------------

def rx_vlan(pair) -> str:
    out = pair.run("ethtool", "-k", pair.dev).stdout
    return next(line.split(":")[1].split()[0] for line in out.splitlines()
                if line.startswith("rx-vlan-offload:"))


@pytest.mark.privileged
@pytest.mark.parametrize("json_", [[], ["-j"]], ids=["text", "json"])
@pytest.mark.parametrize("state", STATES)
def test_enable_undoes_a_change_it_cannot_report(veth, state, json_):
    pair = veth
    for action, before, after in (("enable", "off", "on"), ("disable", "on", "off")):
        pair.run("ethtool", "-K", pair.dev, "rxvlan", before)
        rc, _, err = run([*json_, action, "rx-vlan", "-d", pair.dev], stdout=state, ns=pair.ns)
        assert rx_vlan(pair) == before, (action, err)
        why = {"closed": "Bad file descriptor (EBADF)", "full": "No space left on device (ENOSPC)",
               "broken": "Broken pipe (EPIPE)"}[state]
        assert (rc, err) == (141 if state == "broken" else 1,
                             f"xdphints: error: {pair.dev}: rx-vlan: failed: cannot write to stdout: {why}; "
                             f"restored rx-vlan to {before}\n")
        # a change it can report stands, whatever happens to stderr
        rc, out, _ = run([*json_, action, "rx-vlan", "-d", pair.dev], stderr=state, ns=pair.ns)
        assert (rc, rx_vlan(pair)) == (0, after)
        assert (json.loads(out)["features"]["rx-vlan"]["after"] if json_ else out) == \
            (after if json_ else f"{pair.dev}: rx-vlan: rx-vlan-hw-parse {before} -> {after}\n")


# The real CLI in a child process on the real veth, with one real signal sent to itself
# at a chosen moment: while the report is being written (render, emit_json), or once
# it is out (when the netlink session closes, the last thing the command does).
_SIGNAL_CHILD = """
import os, sys
from xdphints_cli.cli import app, enable
from xdphints_cli.netlink import session
from xdphints_cli.cli.main import main
where, signum = sys.argv[1], int(sys.argv[2])
def then_signal(real):
    def wrapped(*args, **kw):
        result = real(*args, **kw)
        os.kill(os.getpid(), signum)
        return result
    return wrapped
if where == "report":
    enable.render = then_signal(enable.render)
    app.App.emit_json = then_signal(app.App.emit_json)
else:
    session.Netlink.__exit__ = then_signal(session.Netlink.__exit__)
main(sys.argv[3:])
"""


@pytest.mark.privileged
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("json_", [[], ["-j"]], ids=["text", "json"])
def test_a_signal_after_the_kernel_applied_never_splits_code_and_state(veth, signum, json_):
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT)
    for where, rc_want, state_want in (("report", 128 + signum, "off"), ("after", 0, "on")):
        veth.run("ethtool", "-K", veth.dev, "rxvlan", "off")
        p = subprocess.run(["ip", "netns", "exec", veth.ns, sys.executable, "-c", _SIGNAL_CHILD, where,
                            str(int(signum)), *json_, "enable", "rx-vlan", "-d", veth.dev],
                           capture_output=True, text=True, env=env, timeout=60)
        assert (p.returncode, rx_vlan(veth)) == (rc_want, state_want), (where, p.stderr)
        if where == "report":
            assert p.stderr.splitlines()[-1] == (f"xdphints: error: {veth.dev}: rx-vlan: interrupted: "
                                                 f"{signal.Signals(signum).name}; restored rx-vlan to off")
        else:
            assert p.stderr == "" and p.stdout


# --- the long-running commands -------------------------------------------------------

@pytest.mark.privileged
@pytest.mark.parametrize("args", [["-j"], ["-w", "-"], ["--quiet", "-j"]], ids=" ".join)
@pytest.mark.parametrize("state", ["closed", "full"])
def test_dump_with_stdout_that_cannot_be_written(veth, args, state):
    """The first write fails: one line, exit 1, the program detached."""
    cmd = ["ip", "netns", "exec", veth.ns, "sh", "-c", 'exec "$@" ' + (">&-" if state == "closed" else ">/dev/full"),
           "sh", sys.executable, "-m", "xdphints_cli", "dump", "-d", veth.dev, "-q", "0", "-c", "1", *args]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT))
    while not xdp_attached(veth) and p.poll() is None:
        pass
    if p.poll() is None:          # -w - writes its header at once: it may have ended already
        send_udp(veth, 3)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1, err
    assert err.splitlines()[-1] == STDOUT_ERROR[state].rstrip("\n")
    assert "Traceback" not in err and not xdp_attached(veth)


@pytest.mark.privileged
@pytest.mark.parametrize("state", ["closed", "full", "broken"])
def test_verify_with_stdout_that_cannot_be_written(veth, state):
    rc, _, err = run(["verify", "-d", veth.dev, "-q", "0", "--duration", "0.5", "-j"], stdout=state, ns=veth.ns)
    assert "Traceback" not in err
    if state == "broken":
        assert rc == 141
    else:
        assert rc == 1 and err.splitlines()[-1] == STDOUT_ERROR[state].rstrip("\n")
    assert not xdp_attached(veth)


@pytest.mark.privileged
def test_demo_with_stdout_full_cleans_up():
    with open("/dev/full", "wb") as full:
        p = subprocess.Popen([sys.executable, "-m", "xdphints_cli", "demo", "-j"], stdout=full,
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT))
        _, err = p.communicate(timeout=300)
    assert p.returncode == 1 and err.splitlines()[-1] == STDOUT_ERROR["full"].rstrip("\n"), err
    left = sh("ip", "netns", "list").stdout
    assert f"xdph-demo-{p.pid}-" not in left, left
