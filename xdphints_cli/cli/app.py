"""The application object every command receives, and the only owner of output streams.

rich is imported only for coloured text output and for tables, and its Console is
made with markup and highlighting off so an interface or struct name is never read as
markup. Without colour (a pipe, a file, NO_COLOR), plain strings are written as they
are, without importing rich at all: it is most of the start-up time of a short
command. Either way text has its control characters escaped (safe_text.py).

click is not imported here either: the one command form that runs without it
(entry.py) needs App and exit_for. The click helpers commands share are in
options.py.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, NoReturn, Optional

from xdphints_cli.cli.safe_text import SafeConsole, escape, escape_text
from xdphints_cli.cli.streams import discard_stdout
from xdphints_cli.errors import EXIT_FAILED, EXIT_OUTPUT_CLOSED, OutputError, XdpHintsError


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
        """Something with rich's `print(*objects, sep=" ", end="\n", style=None)`."""
        if self._console is None:
            self._console = SafeConsole(self.rich_console() if self.color
                                        else PlainConsole(self.rich_console))
        return self._console

    def rich_console(self):
        from rich.console import Console

        return Console(markup=False, highlight=False, no_color=not self.color,
                       force_terminal=self.color or None, soft_wrap=True,
                       width=None if sys.stdout.isatty() else 200)

    def emit_json(self, obj: Any) -> None:
        text = json.dumps(obj, indent=2 if self.pretty else None, sort_keys=False)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def warn(self, message: str) -> None:
        sys.stderr.write(f"xdphints: warning: {escape_text(message)}\n")

    def acting_on(self, ifname: str, chosen_by: str) -> None:
        """A command that changes a device it was not given names it, and why (on stderr)."""
        from xdphints_cli.device.chosen import CHOSEN_BY_WORDS

        if chosen_by in CHOSEN_BY_WORDS:
            sys.stderr.write(f"xdphints: acting on {escape_text(ifname)}, {CHOSEN_BY_WORDS[chosen_by]} "
                             "(-d DEV names another)\n")

    def fail(self, message: str, code: int, as_json: bool = False, detail: str = "") -> NoReturn:
        """Print the one-line error (and {"error": ...} on stdout for -j) and exit.
        `detail` (a usage error's list of choices, say) follows the line as it is.
        Neither stream failing changes `code` (streams.py)."""
        # one line (a verifier log or extack may span several); only line breaks are
        # folded, so a control character in a name is escaped below, not hidden
        message = re.sub(r"[ \t]*[\r\n]+[ \t]*", " ", message).strip()
        if as_json:
            try:
                # the text form of a message (a byte that is not UTF-8 as \xff), never a lone surrogate
                sys.stdout.write(json.dumps({"error": escape(" ".join(f"{message} {detail}".split())),
                                             "exit-code": code}) + "\n")
                sys.stdout.flush()
            except OutputError:
                discard_stdout()
        sys.stderr.write(f"xdphints: error: {escape(message)}\n"
                         + (escape_text(detail.rstrip("\n")) + "\n" if detail else ""))
        sys.exit(code)


class PlainConsole:
    """rich's Console.print for uncoloured output: strings are written as rich writes
    them without colour (tabs expanded to 8 columns, the style dropped); anything else
    (a rich Table) goes to a rich Console made on first use."""

    def __init__(self, make_rich):
        self._make_rich = make_rich
        self._rich = None

    def print(self, *objects, sep: str = " ", end: str = "\n", style=None) -> None:
        if all(isinstance(o, str) for o in objects):
            text = sep.join(objects) + end
            sys.stdout.write(text.expandtabs(8) if "\t" in text else text)
            return
        if self._rich is None:
            sys.stdout.flush()
            self._rich = self._make_rich()
        self._rich.print(*objects, sep=sep, end=end, style=style)


def exit_for(app: App, e: BaseException) -> NoReturn:
    """End the process for an exception a command raised: the one mapping of
    interrupts, a stdout that cannot be written, our errors and OS errors to a
    message and exit code, for main.py's click path and entry.py's path without click."""
    if isinstance(e, KeyboardInterrupt):
        app.fail("interrupted", 130, app.json)
    if isinstance(e, BrokenPipeError) or (isinstance(e, OutputError) and e.exit_code == EXIT_OUTPUT_CLOSED):
        output_closed()
    if isinstance(e, (XdpHintsError, OSError)):
        if app.debug:
            import traceback

            traceback.print_exception(type(e), e, e.__traceback__)
            log = getattr(e, "verifier_log", "")
            if log:
                sys.stderr.write(f"xdphints: the verifier's log:\n{escape_text(log.rstrip())}\n")
        if isinstance(e, OutputError):      # no JSON error: stdout is what failed
            discard_stdout()
            app.fail(str(e), e.exit_code)
        if isinstance(e, XdpHintsError):
            app.fail(str(e), e.exit_code, app.json)
        app.fail(f"{e.strerror or e}", EXIT_FAILED, app.json)
    raise e


def output_closed() -> NoReturn:
    """The reader of stdout went away (`| head`): stop quietly, like a tool that
    SIGPIPE ended, but after the clean-up (detach, restore) has run."""
    discard_stdout()
    sys.exit(EXIT_OUTPUT_CLOSED)
