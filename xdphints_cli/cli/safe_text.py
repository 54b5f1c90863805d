"""Text output that a terminal cannot mistake for commands.

Names that reach the output come from the kernel, from files and from the user, and
may hold any byte but NUL: the kernel accepts ESC, BEL, BS and DEL in interface
names, BTF and ELF files any bytes in type names. Written raw, "\\e]0;...\\a" starts an
OSC sequence that swallows later output and "\\e[2J" clears the screen. So text
output shows control characters escaped, as `\\x1b`; JSON output stays exact (json
escapes them itself).

`escape` is for one value (a name, an argument quoted in an error); `escape_text`
for a block a renderer built, whose own newlines and tabs are layout.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, line/paragraph separators, bidirectional embeddings,
# overrides and isolates (they reorder what follows), and lone surrogates (bytes
# that were not UTF-8, as os.fsdecode keeps them).
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE = re.compile(f"[{_CONTROLS}\t\n]")
_UNSAFE_IN_TEXT = re.compile(f"[{_CONTROLS}]")


def _escaped(m: re.Match) -> str:
    o = ord(m.group())
    if 0xDC80 <= o <= 0xDCFF:  # os.fsdecode's stand-in for the byte o - 0xDC00
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x100:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}"


def escape(value: str) -> str:
    """`value` with every control character (newline and tab included) as \\xNN or \\uNNNN."""
    return _UNSAFE.sub(_escaped, value) if _UNSAFE.search(value) else value


def escape_text(text: str) -> str:
    """Like escape, but newlines and tabs stay: for whole lines a renderer put together."""
    return _UNSAFE_IN_TEXT.sub(_escaped, text) if _UNSAFE_IN_TEXT.search(text) else text


class SafeConsole:
    """The rich Console with every printed string passed through escape_text.

    rich itself drops only BEL, BS, VT, FF and CR, so an ESC would get through and
    a BEL-terminated OSC would lose its terminator. Tables and other renderables
    are passed as they are: their cells must be escaped by whoever fills them.
    """

    def __init__(self, console):
        self._console = console

    def print(self, *objects, **kw) -> None:
        self._console.print(*(escape_text(o) if isinstance(o, str) else o for o in objects), **kw)

    def __getattr__(self, name):
        return getattr(self._console, name)
