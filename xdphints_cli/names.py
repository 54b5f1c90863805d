"""Names the kernel keeps as bytes, in JSON and on a command line.

An interface name may hold any byte but NUL, '/', ':' and white space; rtnetlink and
argv give it to us through os.fsdecode, where a byte that is not UTF-8 becomes a lone
surrogate ("\\udcff" for 0xff). JSON cannot carry that (jq shows U+FFFD, strict
parsers refuse it), so such a name has one form everywhere:
- text (safe_text.escape) and the JSON value show each such byte as \\xff;
- JSON adds the exact bytes in hex under KEY-bytes (`"ifname": "x\\\\xff",
  "ifname-bytes": "78ff"`), only for such names: a name that is UTF-8 is as it is,
  its control characters escaped by JSON itself.
"""

from __future__ import annotations

import os
import re
import shlex

_NOT_UTF8 = re.compile("[\udc80-\udcff]")   # os.fsdecode's stand-ins for bytes 0x80-0xff
_PLAIN = re.compile(r"[^\x00-\x1f\x7f\udc80-\udcff]*")


def _hex_byte(m: re.Match) -> str:
    return f"\\x{ord(m.group()) - 0xDC00:02x}"


def json_name(key: str, name: str) -> dict:
    """{key: name}, or for a name that is not UTF-8 {key: its \\xNN text, KEY-bytes: hex}."""
    if not _NOT_UTF8.search(name):
        return {key: name}
    return {key: _NOT_UTF8.sub(_hex_byte, name), f"{key}-bytes": os.fsencode(name).hex()}


def shell_word(name: str) -> str:
    """`name` quoted for bash, zsh and ksh so that pasting it gives its exact bytes:
    shlex.quote, or $'...' with \\xNN for control characters and bytes not UTF-8."""
    if _PLAIN.fullmatch(name):
        return shlex.quote(name)
    out = []
    for b in os.fsencode(name):
        c = chr(b)
        if b < 0x20 or b >= 0x7F:
            out.append(f"\\x{b:02x}")
        elif c in "\\'":
            out.append("\\" + c)
        else:
            out.append(c)
    return "$'" + "".join(out) + "'"
