"""C rendering: output compiles with gcc, and reads like bpftool's for simple types."""

from __future__ import annotations

import random
import re
import subprocess

import pytest

from xdphints_cli.btf import cformat, reader, sources, wire

from .conftest import build_bpf, need_tool
from .test_writer import sample_builder


def gcc_check(tmp_path, source: str, name: str = "t.c") -> None:
    gcc = need_tool("gcc")
    path = tmp_path / name
    path.write_text(source)
    r = subprocess.run([gcc, "-fsyntax-only", "-Werror", "-Wno-attributes", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[:4000]


def test_sample_with_dependencies_compiles(vmlinux, tmp_path):
    ids = [t for t in vmlinux.own_ids() if vmlinux.kind_of(t) in
           (wire.KIND_STRUCT, wire.KIND_UNION, wire.KIND_TYPEDEF, wire.KIND_ENUM)]
    picked = random.Random(3).sample(ids, 150)
    picked += [vmlinux.find(n, "struct").id for n in ("sk_buff", "xdp_md", "net_device")]
    src = cformat.dump_c(vmlinux, picked, guard="SAMPLE_H")
    # Every picked named type is defined.
    assert "struct sk_buff {" in src and "struct xdp_md {" in src
    gcc_check(tmp_path, src)


def test_whole_vmlinux_compiles(vmlinux, tmp_path):
    gcc_check(tmp_path, cformat.dump_c(vmlinux, guard="VMLINUX_H"), "vmlinux.c")


def test_kfunc_prototypes_compile(vmlinux, tmp_path):
    from xdphints_cli.btf.kfuncs import list_kfuncs

    ks = list_kfuncs(vmlinux, "bpf_xdp")
    src = cformat.dump_c(vmlinux, [k.id for k in ks])
    assert "extern int bpf_xdp_metadata_rx_hash(const struct xdp_md *ctx, u32 *hash, " \
           "enum xdp_rss_hash_type *rss_type);" in src
    gcc_check(tmp_path, src)


def test_layout_matches_btf_offsets(vmlinux, tmp_path):
    """offsetof()/sizeof() of the rendered C equal BTF's, for natural-layout structs."""
    names = ("xdp_md", "xdp_desc", "xdp_umem_reg", "ethhdr", "iphdr", "bpf_sock_tuple")
    ids = [t.id for n in names for t in vmlinux.by_name(n, "struct")[:1]]
    lines = [cformat.dump_c(vmlinux, ids), "#include <stddef.h>"]
    for tid in ids:
        t = vmlinux[tid]
        lines.append(f"_Static_assert(sizeof(struct {t.name}) == {t.size}, \"size\");")
        for m in t.members:
            if m.name and not m.bitfield_size:
                lines.append(f"_Static_assert(offsetof(struct {t.name}, {m.name}) == "
                             f"{m.bit_offset // 8}, \"{m.name}\");")
    gcc_check(tmp_path, "\n".join(lines))


def test_simple_types_match_bpftool(tmp_path):
    bpftool = need_tool("bpftool")
    path = tmp_path / "s.btf"
    b = sample_builder()
    path.write_bytes(b.encode())
    out = subprocess.run([bpftool, "btf", "dump", "file", str(path), "format", "c"],
                         check=True, capture_output=True, text=True).stdout
    spec = reader.parse(b.encode())
    for name, kind in (("flags", "enum"), ("u", "union")):
        ours = cformat.render(spec, spec.find(name, kind).id)
        assert ours in out, ours
    ours = cformat.render(spec, spec.find("__u32", "typedef").id)
    assert ours in out


def test_declarators(tmp_path):
    from xdphints_cli.btf.writer import Builder

    b = Builder()
    i = b.add_int("int", 4, signed=True)
    c = b.add_int("char", 1, signed=True)
    proto = b.add_func_proto(i, [("a", b.add_ptr(c))])
    fp = b.add_ptr(proto)
    arr_fp = b.add_array(fp, i, 3)
    p_arr = b.add_ptr(b.add_array(i, i, 4))
    cp = b.add_const(b.add_ptr(b.add_const(c)))
    variadic = b.add_func_proto(i, [("fmt", cp)], variadic=True)
    spec = b.spec()
    assert spec.type_name(fp) == "int (*)(char *a)"
    assert cformat.declaration(spec, arr_fp, "tbl") == "int (*tbl[3])(char *a)"
    assert cformat.declaration(spec, p_arr, "p") == "int (*p)[4]"
    assert spec.type_name(cp) == "const char *const"
    assert cformat.declaration(spec, b.add_ptr(variadic) if False else variadic, "f") == \
        "int f(const char *const fmt, ...)"


def test_offset_comments(vmlinux):
    text = cformat.render(vmlinux, vmlinux.find("xdp_md", "struct").id, offsets=True)
    assert "\t__u32 data_meta;" + " " * 33 + "/*     8     4 */" in text  # in pahole's column
    assert "/* size: 24 */" in text


_PAHOLE_COMMENT = re.compile(r"/\*\s+(\d+)(?::\s*(\d+))?\s+(\d+)\s+\*/\s*$")


def _offset_comments(text: str):
    """(offset, bit or None, size) of every member comment, and the columns of those
    whose line leaves room before pahole's column 57."""
    found, columns = [], set()
    for line in text.splitlines():
        m = _PAHOLE_COMMENT.search(line)
        if m:
            found.append(tuple(None if g is None else int(g) for g in m.groups()))
            if len(line[:m.start()].expandtabs(8).rstrip()) < 56:
                columns.add(line.expandtabs(8).index("/*"))
    return found, columns


def _pahole_bodies(names, path=sources.VMLINUX):
    """struct name -> the lines between `struct name {` and `};` of `pahole -C`, from
    the BTF of `path`."""
    out = subprocess.run([need_tool("pahole"), "-F", "btf", "-C", ",".join(names), path],
                         capture_output=True, text=True).stdout
    return dict(re.findall(r"^struct (\w+) \{\n(.*?)^\}[^\n]*;$", out, re.M | re.S))


def _assert_offsets_as_pahole(spec, names, path=sources.VMLINUX):
    theirs = _pahole_bodies(names, path)
    assert set(theirs) == set(names)
    for name in names:
        ours, columns = _offset_comments(cformat.render(spec, spec.find(name, "struct").id, offsets=True))
        assert ours == _offset_comments(theirs[name])[0], name
        assert columns <= {57}, (name, columns)


def _unique_structs(spec, having):
    names, seen = [], set()
    for tid in spec.own_ids():
        if spec.kind_of(tid) != wire.KIND_STRUCT or spec.name_of(tid) in seen:
            continue
        t = spec[tid]
        seen.add(t.name)
        if t.name and any(having(m) for m in t.members):
            names.append(t.name)
    return [n for n in names if len(spec.ids_by_name(n, "struct")) == 1]


def test_offsets_match_pahole_in_anonymous_members(vmlinux):
    """Every member comment, those inside anonymous structs and unions and on their
    closing lines included, as `pahole -C` prints it for the same vmlinux structs."""
    names = _unique_structs(vmlinux, lambda m: not m.name and vmlinux.kind_of(
        vmlinux.resolve(m.type)) in (wire.KIND_STRUCT, wire.KIND_UNION))
    sample = sorted(set(names[::8]) | {"sk_buff", "xdp_buff", "page"})
    assert len(sample) > 40
    _assert_offsets_as_pahole(vmlinux, sample)


def test_offsets_behind_a_pointer_count_from_its_target(vmlinux, tmp_path):
    """An anonymous struct behind a pointer is another object: pahole counts its
    members from 0 (parsed_partitions' `} *parts;`), where an array's first element
    counts from the outer struct (net_device_path_ctx's `} vlan[2];`)."""
    def behind_pointer(m):
        if vmlinux.kind_of(m.type) != wire.KIND_PTR:
            return False
        target = vmlinux[m.type].type
        while vmlinux.kind_of(target) in (wire.KIND_CONST, wire.KIND_VOLATILE):
            target = vmlinux[target].type
        return vmlinux.kind_of(target) in (wire.KIND_STRUCT, wire.KIND_UNION) and \
            not vmlinux.name_of(target)

    names = _unique_structs(vmlinux, behind_pointer)
    assert "parsed_partitions" in names
    _assert_offsets_as_pahole(vmlinux, sorted(set(names) | {"net_device_path_ctx"}))
    text = cformat.render(vmlinux, vmlinux.find("parsed_partitions", "struct").id, offsets=True)
    assert re.search(r"\tsector_t from; +/\*     0     8 \*/", text), text
    obj = build_bpf("c_layouts.c", tmp_path)
    _assert_offsets_as_pahole(sources.load(obj), ["behind_pointer"], obj)


def test_no_repeated_qualifier_and_no_builtin_typedef(vmlinux):
    """gcc's BTF has `const` on an array and on its elements; C takes it once. The
    typedef of __builtin_va_list is the compiler's own: clang refuses a second, and
    its size differs by target, so its type is written where it is used."""
    text = cformat.dump_c(vmlinux, [vmlinux.find(n, "struct").id for n in ("filename", "warn_args")])
    assert "\tconst char iname[0];" in text and "const const" not in text
    assert "__builtin_va_list" not in text
    assert "typedef struct __va_list_tag va_list[1];" in text


def test_no_forward_declaration_right_before_its_definition(vmlinux):
    text = cformat.dump_c(vmlinux, [vmlinux.find("list_head", "struct").id])
    assert text == "struct list_head {\n\tstruct list_head *next;\n\tstruct list_head *prev;\n};\n"
    # still there where something in between needs it
    two = cformat.dump_c(vmlinux, [vmlinux.find("xdp_buff", "struct").id])
    assert "struct xdp_rxq_info;" in two


@pytest.mark.parametrize("name", ["sk_buff", "net_device"])
def test_render_big_structs(vmlinux, name):
    text = cformat.render(vmlinux, vmlinux.find(name, "struct").id)
    assert text.startswith(f"struct {name} {{") and text.endswith("};")
