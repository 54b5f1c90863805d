"""`xdphints btf`: the hints structs (metadata layouts) in a program's or a file's BTF.

Sources (exactly one; default: the program attached to the device):
  -d DEV, --prog-id N, --pinned PATH, --file PATH, --kernel, --module NAME.
Modes: hints structs (default), --struct NAME, --id N, --all, --kfuncs.

Exit codes: 2 two sources or conflicting modes; 3 no BTF in the object or program;
4 permission denied; 5 file, program, module, device program, struct or type id not found.
"""

from __future__ import annotations

from typing import Optional

import click

from xdphints_cli.cli import btf_view as view
from xdphints_cli.cli.app import App
from xdphints_cli.cli.options import AsciiNumber, dev_option, global_options, nonempty, usage_error


@click.command("btf", epilog="Exit codes: 0 shown, 1 malformed BTF (or a name --format c cannot print), "
                              "2 usage error (two sources, conflicting modes), 3 no BTF in the object or "
                              "program, 4 permission denied, 5 no such file, program, module, device "
                              "program, struct or type id.")
@dev_option
@click.option("--prog-id", type=AsciiNumber(click.IntRange(1, 0xFFFFFFFF)), metavar="N", help="A loaded program, by id.")
@click.option("--pinned", metavar="PATH", callback=nonempty, help="A program pinned in bpffs.")
@click.option("--file", "file_", metavar="PATH", type=click.Path(readable=False), callback=nonempty,  # errors (4, 5) are ours
              help="An ELF object (.o, .ko) or a raw BTF file, told apart by content.")
@click.option("--kernel", is_flag=True, help="The running kernel's BTF (/sys/kernel/btf/vmlinux).")
@click.option("--module", metavar="NAME", callback=nonempty, help="A loaded kernel module's BTF (split over vmlinux).")
@click.option("--struct", "struct_name", metavar="NAME", callback=nonempty, help="Show this named type instead of the hints structs.")
@click.option("--id", "type_id", type=click.IntRange(1, 0xFFFFFFFF), metavar="N",
              help="Show the type with this BTF id (where several types share a name).")
@click.option("--all", "all_", is_flag=True,
              help="List every named type: id, kind, name, size; with --format c, a header of them all.")
@click.option("--kfuncs", is_flag=True, help="The XDP metadata kfuncs the running kernel offers.")
@click.option("--format", "fmt", type=click.Choice(["table", "c"]), default="table", show_default=True,
              help="Text output as a member table or as C.")
@click.option("--offsets", is_flag=True, help="With --format c: pahole-style /* offset size */ comments.")
@global_options
@click.pass_obj
def btf(app: App, dev: Optional[str], prog_id: Optional[int], pinned: Optional[str], file_: Optional[str],
        kernel: bool, module: Optional[str], struct_name: Optional[str], type_id: Optional[int], all_: bool,
        kfuncs: bool, fmt: str, offsets: bool) -> None:
    """Show the XDP hints structs in BTF: by default those of the program attached to
    DEV. A hints struct is named xdp_hints*, or its last 4 bytes are a 32-bit `btf_id` member.

    With --struct, any named type; with --id, a type by its BTF id; with --all, every
    named type (--format c: as one C header); with --kfuncs, the bpf_xdp_metadata_*
    kfuncs of the running kernel with prototypes and BTF ids.
    """
    given = [opt for opt, v in (("-d", dev), ("--prog-id", prog_id), ("--pinned", pinned), ("--file", file_),
                                ("--kernel", kernel), ("--module", module)) if v]
    if len(given) > 1:
        raise usage_error(f"give one source, not {' and '.join(given)}")
    modes = [opt for opt, v in (("--struct", struct_name), ("--id", type_id), ("--all", all_),
                                ("--kfuncs", kfuncs)) if v]
    if len(modes) > 1:
        raise usage_error(f"{' and '.join(modes)} cannot be combined")
    if kfuncs and given and given != ["--kernel"]:
        raise usage_error("--kfuncs reads the running kernel's BTF: no other source")
    if offsets and fmt != "c":
        raise usage_error("--offsets needs --format c")

    if kfuncs:
        return view.show_kfuncs(app)
    if file_ and (struct_name or type_id):
        return view.show_file_type(app, file_, struct_name, fmt, offsets, type_id)
    spec, source = view.open_source(dev, prog_id, pinned, file_, kernel, module)
    if struct_name or type_id:
        return view.show_type(app, spec, source, struct_name or "", fmt, offsets, tid=type_id)
    if all_:
        return view.show_all(app, spec, source, fmt, offsets)
    return view.show_hints(app, spec, source, fmt, offsets)
