"""The CLI frame: lazy imports, docs and completions kept in step with the click tree."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import click
import pytest

from conftest import REPO_ROOT, need_tool, xdphints
from xdphints_cli.cli import completion_gen
from xdphints_cli.cli.main import COMMANDS, cli

PROBE = """
import sys
from xdphints_cli.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pyroute2', 'rich', 'elftools'))
print('HEAVY=' + ','.join(heavy), file=sys.stderr)
"""


def _heavy_modules(argv, env=None) -> str:
    res = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=REPO_ROOT, **(env or {})))
    return res.stderr.strip().splitlines()[-1]


def test_help_imports_neither_pyroute2_nor_rich():
    assert _heavy_modules(["--help"]) == "HEAVY="
    for name in COMMANDS:
        assert _heavy_modules([name, "--help"]) == "HEAVY=", name


def test_shell_completion_stays_light():
    env = {"_XDPHINTS_COMPLETE": "bash_complete", "COMP_WORDS": "xdphints sh", "COMP_CWORD": "1"}
    assert _heavy_modules([], env) == "HEAVY="


def test_version_and_help():
    res = xdphints("--version")
    assert res.returncode == 0 and res.stdout.startswith("xdphints ")
    res = xdphints("--help")
    assert res.returncode == 0
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s", res.stdout, re.M), name


def test_completions_are_current():
    for name, text in completion_gen.generate().items():
        with open(os.path.join(REPO_ROOT, "completions", name)) as f:
            assert f.read() == text, f"completions/{name} is stale: run python3 -m xdphints_cli.cli.completion_gen completions"


def _bash_complete(words, cword) -> list:
    script = (f"source {REPO_ROOT}/completions/xdphints.bash; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
              f"COMP_CWORD={cword}; _xdphints; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return res.stdout.split()


def test_bash_completion_words():
    assert set(COMMANDS) <= set(_bash_complete(["xdphints", ""], 1))
    assert "--netns" in _bash_complete(["xdphints", "--"], 1)
    assert "lo" in _bash_complete(["xdphints", "show", "-d", ""], 3)
    assert "--dev" in _bash_complete(["xdphints", "-j", "show", "--"], 3)
    assert {"rx-timestamp", "rx-hash", "rx-vlan"} <= set(_bash_complete(["xdphints", "enable", ""], 2))
    assert {"0", "all"} <= set(_bash_complete(["xdphints", "dump", "-d", "lo", "--queue", ""], 5))


def _click_tree():
    """(command name or '', every option string) for the root and each subcommand."""
    out = [("", [o for p in cli.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts])]
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        out.append((name, [o for p in command.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts]))
    return out


def _read(path: str) -> str:
    with open(os.path.join(REPO_ROOT, path)) as f:
        return f.read()


def test_man_page_documents_every_command_and_option():
    man = _read("man/xdphints.8").replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")
    for name, options in _click_tree():
        if name:
            assert re.search(rf"^\.SS {name}\b", man, re.M), f"man page lacks a section for {name}"
        for opt in options:
            assert opt in man, f"man page lacks {opt} ({name or 'global'})"
    for code in range(0, 8):
        assert re.search(rf"^\.B {code}$|^\.IP {code}\b|^{code}\b", man, re.M), f"exit code {code}"


def _man_sections(man: str) -> dict:
    """command -> (the options its synopses list, the options its .TP items describe),
    each as a list in order, from the man page source."""
    opt = re.compile(r"\\-\\-[a-z][a-z\\-]*|(?<![\w\\-])\\-[a-zA-Z](?![\w\\])")
    out = {name: ([], []) for name in COMMANDS}
    synopsis = man.split("\n.SH SYNOPSIS\n", 1)[1].split("\n.SH ", 1)[0]
    for chunk in re.split(r"^\.B xdphints\b", synopsis, flags=re.M)[1:]:
        name = chunk.split("\n", 1)[0].strip()
        if name in out:
            out[name][0].extend(opt.findall(chunk))
    for m in re.finditer(r"^\.SS (\w+)\n(.*?)(?=^\.S[SH] )", man, re.M | re.S):
        if m.group(1) not in out:
            continue
        body = m.group(2)
        head = body.split("\n.PP\n", 1)[0]       # the section's own synopsis
        out[m.group(1)][0].extend(opt.findall(head))
        for item in re.findall(r"^\.TP\n(.*)$", body, re.M):
            out[m.group(1)][1].extend(dict.fromkeys(opt.findall(item)))
    return out


def test_man_page_lists_no_option_twice_per_command():
    """Each synopsis names an option once, and one .TP item per option (the man page
    once listed dump's --struct and --btf twice)."""
    sections = _man_sections(_read("man/xdphints.8"))
    for name, (synopses, items) in sections.items():
        for what, found in (("synopsis", synopses), ("option items", items)):
            # the SYNOPSIS and the section's own synopsis each list it once
            limit = 2 if what == "synopsis" else 1
            twice = sorted({o for o in found if found.count(o) > limit})
            assert not twice, f"man page: {name} {what} list {twice} more than once"
    assert sections["dump"][1].count("\\-\\-struct") == 1 and "\\-\\-btf" in sections["dump"][1]


def test_every_command_help_states_its_exit_codes():
    for name in COMMANDS:
        if name == "help":
            continue
        res = xdphints(name, "--help")
        assert res.returncode == 0
        text = " ".join(res.stdout.split())
        m = re.search(r"Exit codes: (.*)", text)
        assert m, f"{name} --help states no exit codes"
        assert re.search(r"\b0 ", m.group(1)) and "2 usage error" in m.group(1), (name, m.group(1))


def test_dump_help_leads_with_examples_that_parse():
    """dump --help is short: examples first (each one parses as dump's options), the
    prose in the man page."""
    import shlex

    text = xdphints("dump", "--help").stdout
    assert len(text.splitlines()) < 90
    before_options = text.split("\nOptions:", 1)[0]
    examples = [ln.strip() for ln in before_options.splitlines() if ln.strip().startswith("xdphints dump ")]
    assert 3 <= len(examples) <= 5, examples
    assert before_options.index("Examples:") < before_options.index("A built-in")
    dump = cli.get_command(click.Context(cli), "dump")
    for line in examples:
        words = shlex.split(line.split("#")[0].split("|")[0])[2:]
        ctx = dump.make_context("dump", words, parent=click.Context(cli, obj=None), resilient_parsing=True)
        assert ctx.params["queue_"], line
        dump.make_parser(ctx).parse_args(list(words))   # a usage error would raise


def test_man_page_renders_without_warnings():
    need_tool("groff")
    res = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(REPO_ROOT, "man", "xdphints.8")],
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == "", res.stderr


def test_readme_documents_every_command_option_and_exit_code():
    readme = _read("README.md")
    for name, options in _click_tree():
        if name:
            assert f"xdphints {name}" in readme, name
        for opt in options:
            assert opt in readme, f"README lacks {opt} ({name or 'global'})"
    for code in range(0, 8):
        assert re.search(rf"^\| {code} \|", readme, re.M), f"README lacks exit code {code}"


def test_ci_runs_the_readme_quick_start_and_test_lines():
    readme = _read("README.md")
    lines = [line for line in readme.splitlines() if line.startswith("apt-get update && ")]
    quick, tests = lines[0], lines[1]
    assert quick.endswith(" && xdphints demo") and "--break-system-packages" not in quick
    assert tests.endswith(" && python3 -m pytest -q")
    ci = _read(".ci/run")
    assert "grep -m1 '^apt-get update && .* xdphints demo$' README.md" in ci
    assert "grep -m1 '^apt-get update && .* python3 -m pytest -q$' README.md" in ci
    assert "PATH=/usr/bin:" in ci  # the quick start runs on the distribution's python3
