"""What `xdphints btf` shows, and from where: everything of the command but its
options, without click, so that entry.py can run `btf --kernel --struct NAME` through
the very same functions without importing click (cli/btf.py is the click command).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from xdphints_cli.cli.app import App
from xdphints_cli.cli.safe_text import escape

KFUNC_PREFIX = "bpf_xdp_metadata_"


# --- sources -----------------------------------------------------------------------

def open_source(dev, prog_id, pinned, file_, kernel, module) -> Tuple[object, dict]:
    """(Spec, the JSON description of where it came from)."""
    from xdphints_cli.btf import sources
    from xdphints_cli.errors import NotFoundError, NotSupportedError

    if file_:
        sources.detect(file_)  # missing (5), unreadable (4), neither ELF nor BTF (1)
        try:
            spec = sources.load(file_)
        except NotFoundError as e:  # the file is there: it is the .BTF section that is not
            raise NotSupportedError(str(e)) from None
        return spec, {"type": "file", "path": file_}
    if kernel:
        return sources.kernel(), {"type": "kernel", "path": sources.VMLINUX}
    if module:
        return sources.module(module), {"type": "module", "name": module}

    from xdphints_cli.bpf import program_btf as progbtf

    source: dict = {"type": "program"}
    if pinned:
        pi = progbtf.pinned_prog_info(pinned)
        source["path"] = pinned
    elif prog_id:
        pi = progbtf.prog_info(prog_id)
    else:
        pi = _attached(dev, source)
    source.update({"prog-id": pi.id, "name": pi.name})
    spec = progbtf.prog_spec(pi)
    source["btf-obj-id"] = pi.btf_id   # the BTF object's id; "btf-id" is a type id everywhere
    return spec, source


def _attached(dev: Optional[str], source: dict):
    """ProgInfo of the program attached to DEV (the first one if several modes are used)."""
    from xdphints_cli.device import state as device
    from xdphints_cli.bpf import program_btf as progbtf
    from xdphints_cli.errors import NotFoundError
    from xdphints_cli.netlink.session import Netlink

    with Netlink() as nl:
        link = device.resolve_link(nl, dev)
    if not link.xdp.programs:
        raise NotFoundError(f"no XDP program attached to {link.ifname}")
    mode, prog_id = link.xdp.programs[0]
    from xdphints_cli.names import json_name

    source.update({**json_name("ifname", link.ifname), "mode": mode})
    return progbtf.prog_info(prog_id)


def _describe_source(source: dict) -> str:
    t = source["type"]
    if t == "file":
        return escape(source["path"])
    if t == "kernel":
        return "vmlinux"
    if t == "module":
        return f"module {escape(source['name'])}"
    where = f" on {escape(source['ifname'])} ({source['mode']})" if "ifname" in source else ""
    return f"program {source['prog-id']} {escape(source.get('name') or '-')}{where}, btf-obj-id {source.get('btf-obj-id')}"


# --- hints structs (default mode) --------------------------------------------------

def show_hints(app: App, spec, source: dict, fmt: str, offsets: bool) -> None:
    from xdphints_cli.btf import cformat, hints

    structs = hints.hints_structs(spec)
    if app.json:
        app.emit_json({"source": source, "hints-structs": [
            {"name": t.name, "btf-id": t.id, "size": t.size,
             "members": [r.to_json() for r in hints.describe(spec, t.id)]} for t in structs]})
        return
    c = app.console
    if not structs:
        c.print(f"{_describe_source(source)}: no hints structs (none named xdp_hints* or ending in __u32 btf_id)")
        return
    if fmt == "c":
        c.print(cformat.dump_c(spec, [t.id for t in structs], offsets=offsets), end="")
        return
    # every table is built before the first line is printed: an error prints nothing of them
    tables = ["\n".join(_member_table(spec, t)) for t in structs]
    c.print(f"{_describe_source(source)}:\n" + "\n\n".join(tables))


def _member_table(spec, t, with_id: bool = True) -> List[str]:
    """The lines of one member table; names escaped, as BTF names may hold any byte."""
    from xdphints_cli.btf import hints

    rows: List[Tuple[str, ...]] = [("OFFSET", "SIZE", "TYPE", "NAME")]
    for r in hints.describe(spec, t.id):
        off = str(r.offset) + (f":{r.bit_offset % 8}" if r.is_bitfield else "")
        size = f"{r.bit_size} bits" if r.is_bitfield else str(r.size)
        rows.append((off, size, escape(r.type), escape(r.name)))
    btf_id = f"  btf-id {t.id}" if with_id else ""
    head = f"{t.kind_name.lower()} {escape(t.name) or '(anon)'}{btf_id}  size {t.size}"
    return [head] + _format_rows(rows)


def _format_rows(rows: List[Tuple[str, ...]]) -> List[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        cells = [r[i].rjust(widths[i]) if i < 2 and r is not rows[0] else r[i].ljust(widths[i])
                 for i in range(len(widths))]
        lines.append("  " + "  ".join(cells + [r[-1]]).rstrip())
    return lines


# --- one named type ----------------------------------------------------------------

def _type_json(spec, tid: int, offsets: bool) -> dict:
    from xdphints_cli.btf import cformat, hints, wire
    from xdphints_cli.btf.types import Composite as T_composite

    out: dict = {"name": spec.name_of(tid), "btf-id": tid, "kind": wire.KIND_NAMES[spec.kind_of(tid)].lower()}
    try:
        out["size"] = spec.size_of(tid)
    except Exception:
        pass
    if isinstance(spec.resolve_type(tid), T_composite):
        out["members"] = [r.to_json() for r in hints.describe(spec, tid)]
    try:
        out["c"] = cformat.dump_c(spec, [tid], offsets=offsets)
    except cformat.NotCError:
        pass  # a name that is not a C identifier: the other keys stay exact
    return out


def show_file_type(app: App, path: str, name: Optional[str], fmt: str, offsets: bool,
                   tid: Optional[int] = None) -> None:
    """--file F --struct NAME (or --id N): the type from F's BTF; a struct or union its
    BTF lacks, or has as a forward declaration only (clang writes the target of a
    member's pointer so), or from an object without BTF: from F's DWARF, saying so."""
    from xdphints_cli.btf import sources, wire
    from xdphints_cli.btf.lookup import find_type
    from xdphints_cli.errors import NotFoundError, NotSupportedError

    source = {"type": "file", "path": path, "layout": "btf"}
    fwd = None                                          # (spec, id) of a forward declaration
    try:
        spec, source = open_source(None, None, None, path, False, None)
        source["layout"] = "btf"
        found = find_type(spec, name) if tid is None else None
        shown = found.tid if found else tid
        if spec.kind_of(shown) != wire.KIND_FWD:
            return show_type(app, spec, source, name or "", fmt, offsets, tid=shown,
                             same_name=found.same_name if found else ())
        fwd = spec, shown
        name = f"{'union' if spec[shown].union else 'struct'} {spec.name_of(shown)}"
        why = "its BTF has only a forward declaration"
    except (NotFoundError, NotSupportedError) as e:
        if tid is not None or sources.detect(path) != "elf":
            raise                                       # a BTF type id means the BTF
        first = e
        why = "its BTF has none" if "no type named" in str(e) else str(e)
    try:
        spec, dwarf_tid, where = sources.struct_in_file(path, name.split()[-1])
    except NotFoundError as e:
        if fwd is None:
            raise NotFoundError(f"{first}; {e}") from None
        app.warn(f"{why}, and no definition of {name} is found elsewhere: {e}")
        return show_type(app, fwd[0], source, name, fmt, offsets, tid=fwd[1])
    source["layout"] = where.lower()
    note = f"{spec[dwarf_tid].kind_name.lower()} {spec.name_of(dwarf_tid)} from the DWARF of {path} ({why})"
    return show_type(app, spec, source, name, fmt, offsets, tid=dwarf_tid,
                     note=note if where == "DWARF" else "")


def show_type(app: App, spec, source: dict, name: str, fmt: str, offsets: bool,
              tid: Optional[int] = None, note: str = "", same_name: tuple = ()) -> None:
    """The type called `name` (or, given, type `tid`, one of `same_name`): a member
    table, or C."""
    from xdphints_cli.btf.lookup import find_type
    from xdphints_cli.btf.types import Composite as T_composite

    if tid is None:
        found = find_type(spec, name)
        tid, same_name = found.tid, found.same_name
    else:
        spec[tid]                                       # NotFoundError (5) for no such id
    if same_name:
        app.warn(f"{len(same_name)} types named {spec.name_of(tid)!r}: "
                 + ", ".join(_kind_and_size(spec, i) for i in same_name)
                 + f"; showing {tid}, --id N shows another")
    if note and not app.json:
        app.console.print(f"/* {note.replace('*/', '* /')} */" if fmt == "c" else note)
    from_dwarf = source.get("layout") == "dwarf"     # its type ids are ours, not the file's
    if app.json:
        out = _type_json(spec, tid, offsets)
        if from_dwarf:
            del out["btf-id"]
        doc = {"source": source, "type": out}
        if same_name:
            doc["same-name"] = [_same_name_json(spec, i) for i in same_name]
        app.emit_json(doc)
        return
    t = spec[tid]
    if fmt == "c" or not isinstance(spec.resolve_type(tid), T_composite):
        from xdphints_cli.btf import cformat      # a table (the light path) needs none of it

        text = cformat.dump_c(spec, [tid], offsets=offsets)
        if not text.strip():    # no definition of its own (int, pointer, anonymous struct)
            text = cformat.type_name(spec, tid) + "\n"
        app.console.print(text, end="")
        return
    app.console.print("\n".join(_member_table(spec, t, with_id=not from_dwarf)))


def _kind_and_size(spec, tid: int) -> str:
    j = _same_name_json(spec, tid)
    return f"{j['kind']} {tid}" + (f" ({j['size']} bytes)" if "size" in j else "")


def _same_name_json(spec, tid: int) -> dict:
    from xdphints_cli.btf import wire
    from xdphints_cli.errors import BTFError

    out = {"btf-id": tid, "kind": wire.KIND_NAMES[spec.kind_of(tid)].lower()}
    try:
        out["size"] = spec.size_of(tid)
    except BTFError:                                    # a typedef of a function type
        pass
    return out


# --- every named type --------------------------------------------------------------

# bpftool's guard, whatever the source: its vmlinux.h and ours stand in for each other
VMLINUX_GUARD = "__VMLINUX_H__"


def show_all(app: App, spec, source: dict, fmt: str = "table", offsets: bool = False) -> None:
    from xdphints_cli.btf import wire

    if fmt == "c" and not app.json:
        from xdphints_cli.btf import cformat

        app.console.print(cformat.dump_c(spec, offsets=offsets, guard=VMLINUX_GUARD,
                                         access_index=True), end="")
        return

    sized = {wire.KIND_INT, wire.KIND_STRUCT, wire.KIND_UNION, wire.KIND_ENUM, wire.KIND_ENUM64,
             wire.KIND_FLOAT, wire.KIND_DATASEC}
    rows = []
    for tid in spec.own_ids():
        name = spec.name_of(tid)
        if not name:
            continue
        k = spec.kind_of(tid)
        row: dict = {"btf-id": tid, "kind": wire.KIND_NAMES.get(k, str(k)).lower(), "name": name}
        if k in sized:
            row["size"] = spec[tid].size
        rows.append(row)
    if app.json:
        app.emit_json({"source": source, "types": rows})
        return
    table = [("ID", "KIND", "NAME", "SIZE")] + [
        (str(r["btf-id"]), r["kind"], escape(r["name"]), str(r.get("size", "-"))) for r in rows]
    w0 = max(len(r[0]) for r in table)
    w1 = max(len(r[1]) for r in table)
    w2 = max(len(r[2]) for r in table)
    out = "\n".join(f"{r[0]:>{w0}}  {r[1]:<{w1}}  {r[2]:<{w2}}  {r[3]}" for r in table)
    app.console.print(out)


# --- kfuncs ------------------------------------------------------------------------

def show_kfuncs(app: App) -> None:
    from xdphints_cli.btf import kfuncs, sources

    found = kfuncs.list_kfuncs(sources.kernel(), KFUNC_PREFIX)
    if app.json:
        app.emit_json({"source": {"type": "kernel", "path": sources.VMLINUX},
                       "kfuncs": [{"name": k.name, "btf-id": k.id, "prototype": k.prototype} for k in found]})
        return
    if not found:
        app.console.print("no XDP metadata kfuncs in this kernel's BTF")
        return
    w = max(len(str(k.id)) for k in found)
    app.console.print(f"{'ID':>{w}}  PROTOTYPE")
    for k in found:
        app.console.print(f"{k.id:>{w}}  {k.prototype};")
