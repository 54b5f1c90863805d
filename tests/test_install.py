"""install.sh into a temporary XDPHINTS_VENV and PREFIX, from a copy of the clone: it
uses the distribution's /usr/bin/python3 (never the python3 first on PATH), keeps the
python an existing virtual environment was made with, says which, moves every file
under PREFIX (the fish completion too) and leaves the clone as it was."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import REPO_ROOT

SOURCES = ("install.sh", "pyproject.toml", "README.md", "xdphints_cli", "completions", "man", "systemd", "examples")


@pytest.fixture
def clone(tmp_path):
    """The files install.sh reads, without caches, as a fresh clone has them."""
    d = tmp_path / "clone"
    d.mkdir()
    for name in SOURCES:
        src = os.path.join(REPO_ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(src, d / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, d / name)
    return d


@pytest.fixture
def decoy(tmp_path):
    """A PATH directory whose python3 is not the distribution's: it records each call
    and fails, as a python without ssl or venv would."""
    if not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("no /usr/bin/python3 (the distribution's python) here")
    d = tmp_path / "decoy"
    d.mkdir()
    log = tmp_path / "decoy.log"
    script = d / "python3"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\nexit 1\n")
    script.chmod(0o755)
    return d, log


def tree(path) -> set:
    return {os.path.relpath(os.path.join(root, f), path) for root, dirs, files in os.walk(path) for f in files + dirs}


def run_install(clone, venv, prefix, decoy_dir, **env) -> subprocess.CompletedProcess:
    full = dict(os.environ, XDPHINTS_VENV=str(venv), PREFIX=str(prefix),
                PATH=f"{decoy_dir}:{os.environ['PATH']}", **env)
    full.pop("PYTHON", None)
    full.update(env)
    return subprocess.run(["sh", str(clone / "install.sh")], capture_output=True, text=True, env=full, timeout=600)


def test_install_into_a_prefix_with_the_distributions_python(clone, decoy, tmp_path):
    decoy_dir, log = decoy
    before = tree(clone)
    venv, prefix = tmp_path / "venv", tmp_path / "prefix"
    res = run_install(clone, venv, prefix, decoy_dir)
    assert res.returncode == 0, res.stderr
    assert "install.sh: python: /usr/bin/python3 (" in res.stdout and "the distribution's" in res.stdout
    assert not log.exists(), "install.sh ran the python3 first on PATH"
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "home = /usr/bin" in cfg
    # everything under PREFIX, fish's completion where fish reads a prefix's data dir
    for path in ("bin/xdphints", "share/bash-completion/completions/xdphints", "share/zsh/site-functions/_xdphints",
                 "share/fish/vendor_completions.d/xdphints.fish", "share/man/man8/xdphints.8",
                 "lib/systemd/system/xdphints-apply.service", "share/xdphints/hints.toml.example"):
        assert (prefix / path).exists(), path
    # the unit runs the command this install made
    unit = (prefix / "lib/systemd/system/xdphints-apply.service").read_text()
    assert f"ExecStart={prefix}/bin/xdphints apply --watch /etc/xdphints/hints.toml" in unit.splitlines()
    assert os.readlink(prefix / "bin" / "xdphints") == str(venv / "bin" / "xdphints")
    # the clone is as it was: no build/, no *.egg-info
    assert tree(clone) == before, sorted(tree(clone) ^ before)
    ran = subprocess.run([str(prefix / "bin" / "xdphints"), "--version"], capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout.startswith("xdphints ")

    # again: the virtual environment keeps its python, and says so
    again = run_install(clone, venv, prefix, decoy_dir)
    assert again.returncode == 0, again.stderr
    assert f"install.sh: python: {cfg_value(cfg, 'executable')} (" in again.stdout
    assert f"the python {venv} was made with" in again.stdout
    assert (venv / "pyvenv.cfg").read_text() == cfg and not log.exists()
    # another python asked for: refused, nothing rebuilt
    other = run_install(clone, venv, prefix, decoy_dir, PYTHON=str(decoy_dir / "python3"))
    assert other.returncode == 1 and other.stdout == ""
    assert other.stderr.startswith(f"install.sh: error: {venv} was made with ") and "remove" in other.stderr
    assert (venv / "pyvenv.cfg").read_text() == cfg and not log.exists()
    assert tree(clone) == before


def cfg_value(cfg: str, key: str) -> str:
    for line in cfg.splitlines():
        k, _, v = line.partition("=")
        if k.strip() == key:
            return v.strip()
    raise KeyError(key)


def test_a_python_without_ssl_is_refused_before_anything_is_made(clone, tmp_path):
    """PYTHON naming a python that cannot fetch the dependencies: one error line, no venv."""
    fake = tmp_path / "nossl"
    fake.write_text("#!/bin/sh\ncase \"$*\" in *'import ssl'*) exit 1;; esac\nexec /usr/bin/python3 \"$@\"\n")
    fake.chmod(0o755)
    if not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("no /usr/bin/python3 here")
    venv = tmp_path / "venv"
    res = run_install(clone, venv, tmp_path / "prefix", tmp_path, PYTHON=str(fake))
    assert res.returncode == 1 and "has no ssl module" in res.stderr and res.stderr.count("\n") == 1
    assert not venv.exists()
