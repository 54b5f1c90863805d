"""The application object every command receives, and the only owner of output streams.

rich is imported only for text output, and its Console is made with markup and
highlighting off so an interface or struct name is never read as markup; text that
goes to the terminal has its control characters escaped (safe_text.py).
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Optional

import click

from xdphints_cli.cli.safe_text import SafeConsole, escape, escape_text


class App:
    def __init__(self) -> None:
        self.json = False
        self.pretty = False
        self.netns: Optional[str] = None
        self.no_color = False
        self.debug = False
        self._console = None

    @property
    def color(self) -> bool:
        return not self.no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()

    @property
    def console(self):
        if self._console is None:
            from rich.console import Console

            self._console = SafeConsole(Console(markup=False, highlight=False, no_color=not self.color,
                                                force_terminal=self.color or None, soft_wrap=True,
                                                width=None if sys.stdout.isatty() else 200))
        return self._console

    def emit_json(self, obj: Any) -> None:
        text = json.dumps(obj, indent=2 if self.pretty else None, sort_keys=False)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def warn(self, message: str) -> None:
        sys.stderr.write(f"xdphints: warning: {escape_text(message)}\n")

    def fail(self, message: str, code: int, as_json: bool = False, detail: str = "") -> None:
        """Print the one-line error (and {"error": ...} on stdout for -j) and exit.
        `detail` (a usage error's list of choices, say) follows the line as it is."""
        # one line (a verifier log or extack may span several); only line breaks are
        # folded, so a control character in a name is escaped below, not hidden
        message = re.sub(r"[ \t]*[\r\n]+[ \t]*", " ", message).strip()
        if as_json:
            try:
                sys.stdout.write(json.dumps({"error": " ".join(f"{message} {detail}".split()),
                                             "exit-code": code}) + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                pass
        sys.stderr.write(f"xdphints: error: {escape(message)}\n"
                         + (escape_text(detail.rstrip("\n")) + "\n" if detail else ""))
        sys.exit(code)


def complete_devices(ctx, param, incomplete: str):
    try:
        names = sorted(os.listdir("/sys/class/net"))
    except OSError:
        return []
    return [n for n in names if n.startswith(incomplete)]


def check_device_name(ctx, param, value: Optional[str]) -> Optional[str]:
    """An empty DEV is a usage error here, before any command could take '' for "not given"."""
    if value == "":
        raise click.BadParameter("an interface name cannot be empty", ctx=ctx, param=param)
    return value


def dev_option(f):
    return click.option("-d", "--dev", metavar="DEV", shell_complete=complete_devices, callback=check_device_name,
                        help="Device name (default: $XDPHINTS_DEV, else the only non-loopback interface that is up).")(f)


def usage_error(message: str) -> click.UsageError:
    """A usage error (exit 2) raised from inside a command body."""
    return click.UsageError(message)
