"""Does C compile to the layout its BTF describes? Two checks by real compilers, with
the expected layouts taken from bpftool's JSON of the same BTF, never from xdphints:

- `wrong_layouts`: `_Static_assert`s on sizeof and offsetof of every named member
  (members of anonymous structs and unions included, as C reaches them), compiled
  with clang for BPF, clang and gcc for the host;
- `round_trip`: clang -g compiles a variable of each struct and its BTF is compared
  member by member, bitfields included (offsetof cannot name a bitfield).
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from conftest import need_tool

# name -> the compiler's words, without the file; warnings are errors, so a
# `const const` or a redefined built-in fails too
COMPILERS = {
    "clang-bpf": ("clang", "-target", "bpf", "-fsyntax-only", "-ferror-limit=0", "-Werror"),
    "clang": ("clang", "-DBPF_NO_PRESERVE_ACCESS_INDEX", "-fsyntax-only", "-ferror-limit=0",
              "-Werror"),
    "gcc": ("gcc", "-fsyntax-only", "-fmax-errors=0", "-Werror", "-Wall", "-Wno-unknown-pragmas"),
}
_MODS = ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG")
_COMPOSITES = ("STRUCT", "UNION")
_FAILED = re.compile(r'"L(\d+) ([^"]*)"')

Types = Dict[int, dict]


def bpftool_types(path: str) -> Types:
    out = subprocess.run([need_tool("bpftool"), "-j", "btf", "dump", "file", path], check=True,
                         capture_output=True).stdout
    return {t["id"]: t for t in json.loads(out)["types"]}


def _resolve(types: Types, tid: int) -> int:
    while tid and types[tid]["kind"] in _MODS:
        tid = types[tid]["type_id"]
    return tid


def _anonymous(name: str) -> bool:
    return name in ("", "(anon)")


def plain_c_names(types: Types) -> Dict[int, str]:
    """The C name of each struct and union whose name no other struct, union or enum
    has (those are renamed foo___2 in C), and of anonymous ones behind a typedef."""
    count: Dict[str, int] = {}
    for t in types.values():
        if t["kind"] in _COMPOSITES + ("ENUM", "ENUM64") and not _anonymous(t["name"]):
            count[t["name"]] = count.get(t["name"], 0) + 1
    typedefs: Dict[str, int] = {}
    for t in types.values():
        if t["kind"] == "TYPEDEF":
            typedefs[t["name"]] = typedefs.get(t["name"], 0) + 1
    out: Dict[int, str] = {}
    for tid, t in types.items():
        if t["kind"] in _COMPOSITES and not _anonymous(t["name"]) and count[t["name"]] == 1:
            out[tid] = f"{t['kind'].lower()} {t['name']}"
        elif t["kind"] == "TYPEDEF" and typedefs[t["name"]] == 1 and t["type_id"]:
            target = types[t["type_id"]]
            if target["kind"] in _COMPOSITES and _anonymous(target["name"]):
                out.setdefault(t["type_id"], t["name"])
    return out


def _named_members(types: Types, t: dict, base: int = 0) -> Iterable[Tuple[str, int]]:
    """(name, bit offset) of the members C can name with offsetof: not bitfields;
    those of anonymous members as if they were the struct's own."""
    for m in t["members"]:
        off = base + m["bits_offset"]
        if _anonymous(m["name"]):
            inner = types.get(_resolve(types, m["type_id"]))
            if inner and inner["kind"] in _COMPOSITES:
                yield from _named_members(types, inner, off)
        elif not m.get("bitfield_size"):
            yield m["name"], off


def layout_asserts(types: Types, c_names: Dict[int, str]) -> List[str]:
    lines = []
    for tid, cname in c_names.items():
        t = types[tid]
        lines.append(f'_Static_assert(sizeof({cname}) == {t["size"]}, "L{tid} sizeof");')
        seen = set()
        for name, bits in _named_members(types, t):
            if name not in seen:                 # an anonymous union's members may repeat
                seen.add(name)
                lines.append(f'_Static_assert(__builtin_offsetof({cname}, {name}) == {bits // 8}, '
                             f'"L{tid} {name}");')
    return lines


def wrong_layouts(compiler: str, header: str, asserts: List[str], tmp_path) -> Dict[int, List[str]]:
    """Type id -> what of it compiled wrong (`sizeof` or member names). Any other
    error or warning (the C does not compile) fails the caller's test."""
    words = COMPILERS[compiler]
    need_tool(words[0])
    h = tmp_path / f"layout-{compiler}.h"
    c = tmp_path / f"layout-{compiler}.c"
    h.write_text(header)
    c.write_text(f'#include "{h.name}"\n' + "\n".join(asserts) + "\n")
    res = subprocess.run([*words, str(c)], capture_output=True, text=True, cwd=str(tmp_path))
    wrong: Dict[int, List[str]] = {}
    other = []
    for line in res.stderr.splitlines():
        m = _FAILED.search(line)
        if m and "error" in line:
            wrong.setdefault(int(m.group(1)), []).append(m.group(2))
        elif re.search(r"\b(error|warning)\b", line) and "errors generated" not in line:
            other.append(line)
    assert not other, f"{compiler}: the C does not compile:\n" + "\n".join(other[:20])
    assert res.returncode == 0 or wrong, res.stderr[:2000]
    return wrong


def _layout_key(types: Types, tid: int, depth: int = 0) -> tuple:
    """Size and members (name, bit offset, bitfield size), anonymous members' own
    layouts inside: what must survive C -> clang -> BTF."""
    t = types[tid]
    members = []
    for m in t["members"]:
        inner = types.get(_resolve(types, m["type_id"]))
        nested = None
        if _anonymous(m["name"]) and inner and inner["kind"] in _COMPOSITES and depth < 32:
            nested = _layout_key(types, inner["id"], depth + 1)
        members.append((m["name"], m["bits_offset"], m.get("bitfield_size", 0), nested))
    return t["size"], tuple(members)


def round_trip(types: Types, c_names: Dict[int, str], header: str, tmp_path,
               pick: Optional[Callable[[int], bool]] = None) -> Dict[int, Tuple[tuple, tuple]]:
    """Type id -> (BTF layout, layout clang's BTF gives our C) for every struct whose C
    compiles to another layout."""
    clang = need_tool("clang")
    ids = [tid for tid in c_names if pick is None or pick(tid)]
    h = tmp_path / "roundtrip.h"
    c = tmp_path / "roundtrip.c"
    o = tmp_path / "roundtrip.o"
    h.write_text(header)
    c.write_text(f'#include "{h.name}"\n' +
                 "".join(f"{c_names[tid]} roundtrip_{tid};\n" for tid in ids))
    res = subprocess.run([clang, "-g", "-O0", "-target", "bpf", "-c", str(c), "-o", str(o)],
                         capture_output=True, text=True, cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[:4000]
    theirs = bpftool_types(str(o))
    var_type = {t["name"]: t["type_id"] for t in theirs.values() if t["kind"] == "VAR"}
    out = {}
    for tid in ids:
        want = _layout_key(types, tid)
        got = _layout_key(theirs, _resolve(theirs, var_type[f"roundtrip_{tid}"]))
        if got != want:
            out[tid] = (want, got)
    return out
