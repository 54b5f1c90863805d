"""Where the program starts (`xdphints`, `python3 -m xdphints_cli`).

One command form runs without click: `xdphints btf --kernel --struct NAME`, with any
of -j, -p, --no-color, --format table|c and --offsets (with --format c), each at most
once, in any order, as `--opt VALUE` or `--opt=VALUE`. It is the pahole -C of this
tool, and importing click takes about as long as pahole needs for the whole lookup.

The form is taken only when click could not read the words otherwise and the command
can raise no usage error: anything else (another command, another option, a repeated
one, a value starting with "-", an empty NAME, shell completion asking) goes to the
click command tree in main.py unchanged. Both paths call the same btf_view functions
and end through app.exit_for, so output, errors and exit codes are the same
(tests/test_btf_fast_path.py runs both on the same words and compares).
"""

from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional, Union

# word -> (field, value): flags set their field to True, options take the next word
_FLAGS = {"-j": "json", "--json": "json", "-p": "pretty", "--pretty": "pretty",
          "--no-color": "no_color", "--kernel": "kernel", "--offsets": "offsets"}
_VALUED = {"--struct": "struct", "--format": "format"}
_FORMATS = ("table", "c")
# set by a shell asking click for completions (click's _<PROG>_COMPLETE)
_COMPLETE_VAR = "_XDPHINTS_COMPLETE"


def main(argv: Optional[List[str]] = None) -> None:
    from xdphints_cli.cli import streams

    streams.install()
    argv = list(sys.argv[1:] if argv is None else argv)
    form = kernel_type_form(argv, os.environ)
    if form is None:
        from xdphints_cli.cli.main import main as click_main

        click_main(argv)
        return
    run_kernel_type(form)


def kernel_type_form(argv: List[str], environ) -> Optional[Dict[str, Union[str, bool]]]:
    """The fields of `btf --kernel --struct NAME [...]` when `argv` is exactly that
    form (see the module's docstring); None for anything else."""
    if not argv or argv[0] != "btf" or environ.get(_COMPLETE_VAR):
        return None
    form: Dict[str, Union[str, bool]] = {}
    words = iter(argv[1:])
    for word in words:
        if word in _FLAGS:
            field, value = _FLAGS[word], True
        else:
            option, eq, value = word.partition("=")
            if option not in _VALUED:
                return None
            if not eq:
                value = next(words, None)
            if not value or value.startswith("-"):
                return None
            field = _VALUED[option]
        if field in form:
            return None
        form[field] = value
    fmt = form.get("format", "table")
    if not form.get("kernel") or "struct" not in form or fmt not in _FORMATS \
            or (form.get("offsets") and fmt != "c"):
        return None
    return form


def run_kernel_type(form: Dict[str, Union[str, bool]]) -> None:
    """What `btf --kernel --struct NAME` does through click (btf.py, main.py), without it."""
    # imported here: every other command, --help and completion start in this module
    from xdphints_cli.cli import btf_view
    from xdphints_cli.cli.app import App, exit_for
    from xdphints_cli.errors import XdpHintsError

    app = App()
    app.json = bool(form.get("json") or form.get("pretty"))
    app.pretty = bool(form.get("pretty"))
    app.no_color = bool(form.get("no_color"))
    try:
        try:
            spec, source = btf_view.open_source(None, None, None, None, True, None)
            btf_view.show_type(app, spec, source, str(form["struct"]), str(form.get("format", "table")),
                               bool(form.get("offsets")))
        except KeyboardInterrupt:
            sys.stderr.write("\n")      # as click does, closing the terminal's ^C echo
            raise
        sys.stdout.flush()
    except (KeyboardInterrupt, XdpHintsError, OSError) as e:
        exit_for(app, e)
    sys.exit(0)
