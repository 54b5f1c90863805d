"""Where BTF comes from: raw BTF files, ELF objects (.o, .ko), the running kernel."""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

from ..errors import BTFError, NotFoundError, PermissionDeniedError, UsageError, XdpHintsError
from .reader import parse
from .spec import Spec

KERNEL_BTF_DIR = "/sys/kernel/btf"
VMLINUX = os.path.join(KERNEL_BTF_DIR, "vmlinux")
ELF_MAGIC = b"\x7fELF"
_BTF_MAGICS = (b"\x9f\xeb", b"\xeb\x9f")

# The most BTF one file or section may hold (vmlinux's is 5-6 MB): more is refused
# before it is read or walked, as a sparse file of gigabytes would otherwise be.
MAX_BTF_SIZE = 64 << 20

_kernel: Optional[Spec] = None
_kernel_blob: Optional[bytes] = None
_modules: Dict[str, Spec] = {}


def _open_regular(path: str):
    """`path` opened for reading, refused unless it is a regular file: a FIFO or a
    character device would block (or never end) where a BTF file is expected. The
    O_NONBLOCK open itself cannot hang on a FIFO; the check is on the opened file."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file") from None
    except PermissionError:
        raise PermissionDeniedError(f"{path}: permission denied") from None
    except OSError as e:
        raise XdpHintsError(f"{path}: {e.strerror or e}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "is a directory" if stat.S_ISDIR(mode) else "is not a regular file"
        raise UsageError(f"{path}: {kind} (a BTF file or ELF object is expected)")
    return os.fdopen(fd, "rb")


def read_file(path: str):
    """A regular file's bytes, mapped read-only (bytes when it cannot be mapped): only
    the pages used are read, an ELF object's .BTF and not the rest."""
    return _map_or_read(path)


def elf_stream(data):
    """A stream pyelftools reads an ELF image from: the mapping itself, not a copy."""
    import io
    import mmap

    return data if isinstance(data, mmap.mmap) else io.BytesIO(data)


def detect(path: str) -> str:
    """'btf' for raw BTF, 'elf' for an ELF object, by content (not by file name)."""
    with _open_regular(path) as f:
        try:
            head = f.read(4)
        except OSError as e:
            raise XdpHintsError(f"{path}: {e.strerror or e}") from None
    return _detect_bytes(head, path)


def _detect_bytes(head: bytes, path: str) -> str:
    if head[:4] == ELF_MAGIC:
        return "elf"
    if head[:2] in _BTF_MAGICS:
        return "btf"
    raise BTFError(f"{path}: neither raw BTF nor an ELF object")


def load(path: str, base: Optional[Spec] = None) -> Spec:
    """Raw BTF or the .BTF of an ELF object, whichever `path` holds."""
    data = read_file(path)
    if _detect_bytes(data[:4], path) == "elf":
        return _from_elf(data, path, base)
    return _parse(data, path, base)


def load_raw(path: str, base: Optional[Spec] = None) -> Spec:
    data = read_file(path)
    if data[:2] not in _BTF_MAGICS:
        raise BTFError(f"{path}: not a raw BTF file (bad magic)")
    return _parse(data, path, base)


def load_elf(path: str, base: Optional[Spec] = None) -> Spec:
    """BTF of a clang-built BPF object, or of a kernel module (split over vmlinux,
    unless `base` is given)."""
    data = read_file(path)
    if data[:4] != ELF_MAGIC:
        raise BTFError(f"{path}: not an ELF object")
    return _from_elf(data, path, base)


def _parse(data: bytes, path: str, base: Optional[Spec], kernel_verified: bool = False) -> Spec:
    if len(data) > MAX_BTF_SIZE:
        raise BTFError(f"{path}: {len(data)} bytes of BTF, more than the {MAX_BTF_SIZE} read at most")
    try:
        return parse(data, base, kernel_verified)
    except BTFError as e:
        raise BTFError(f"{path}: {e}") from None


def elf_btf_section(data: bytes, path: str = "object"):
    """(.BTF bytes, is_kernel_module) from an ELF image."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(elf_stream(data))
        sec = elf.get_section_by_name(".BTF")
        if sec is None:
            raise NotFoundError(f"{path}: object has no BTF: compile with clang -g")
        if sec.header["sh_type"] == "SHT_NOBITS":
            raise BTFError(f"{path}: .BTF section has no data")
        if sec.header["sh_size"] > MAX_BTF_SIZE:
            raise BTFError(f"{path}: .BTF section of {sec.header['sh_size']} bytes, more than the "
                           f"{MAX_BTF_SIZE} read at most")
        blob = sec.data()
        is_module = (elf.get_section_by_name(".modinfo") is not None or
                     elf.get_section_by_name(".gnu.linkonce.this_module") is not None)
    except (ELFError, ValueError, KeyError, IndexError, OSError) as e:
        # pyelftools raises a mix of exceptions on damaged files.
        raise BTFError(f"{path}: malformed ELF: {e}") from None
    except Exception as e:  # struct.error and construct errors from pyelftools
        if isinstance(e, XdpHintsError):
            raise
        raise BTFError(f"{path}: malformed ELF: {e}") from None
    return blob, is_module


def _from_elf(data: bytes, path: str, base: Optional[Spec]) -> Spec:
    blob, is_module = elf_btf_section(data, path)
    if base is None and is_module:
        base = kernel()
    return _parse(blob, f"{path} .BTF", base)


def struct_id(spec: Spec, name: str) -> Optional[int]:
    """The id of the first struct or union called `name` in `spec`, or None."""
    from . import wire

    for tid in spec.ids_by_name(name):
        if spec.kind_of(tid) in (wire.KIND_STRUCT, wire.KIND_UNION):
            return tid
    return None


def struct_in_file(path: str, name: str) -> Tuple[Spec, int, str]:
    """(spec, type id, "BTF" or "DWARF") of struct NAME in a raw BTF file or an ELF
    object: its BTF, else its DWARF (clang emits no BTF for a struct used only through
    a local pointer, but its DWARF has it). NotFoundError saying where it looked."""
    tried = []
    try:
        spec = load(path)
        tid = struct_id(spec, name)
        if tid is not None:
            return spec, tid, "BTF"
        tried.append("its BTF")
    except BTFError:
        raise
    except XdpHintsError as e:          # an object without BTF may still have DWARF
        if detect(path) != "elf":
            raise
        tried.append(f"its BTF ({e})")
    if detect(path) == "elf":
        from .dwarf import NoDwarfError, struct_from_dwarf

        try:
            spec, tid = struct_from_dwarf(path, name)
            return spec, tid, "DWARF"
        except NoDwarfError as e:        # keeps its "compile with clang -g" hint
            tried.append(f"its DWARF ({e})")
        except NotFoundError:
            tried.append("its DWARF")
    raise NotFoundError(f"{path}: no struct {name} in {' or '.join(tried)}")


def kernel_blob():
    """The bytes of /sys/kernel/btf/vmlinux, once per process: mapped read-only where
    the kernel allows it (sysfs_btf.c gained mmap in 2025; 6.18 has it), else read.
    A mapping costs nothing up front, where reading (and so page-faulting in) 5 MB
    is a good part of a lookup; it is used like bytes (find, slices, len, buffer)."""
    global _kernel_blob
    if _kernel_blob is None:
        if not os.path.exists(VMLINUX):
            raise NotFoundError(f"{VMLINUX} missing: kernel built without "
                                "CONFIG_DEBUG_INFO_BTF")
        _kernel_blob = _map_or_read(VMLINUX)
    return _kernel_blob


def _map_or_read(path: str):
    import mmap

    with _open_regular(path) as f:
        try:
            # the kernel refuses shared or writable mappings of it (sysfs_btf.c)
            return mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        except (OSError, ValueError):   # no mmap for this file (older kernels), or empty
            pass
        try:
            return f.read()
        except OSError as e:
            raise XdpHintsError(f"{path}: {e.strerror or e}") from None


def kernel() -> Spec:
    """The running kernel's BTF, parsed once per process. Nothing of it is kept across
    runs: an index of it would have to be checked against the bytes before use, which
    costs as much as the walk that finds it (reader._index)."""
    global _kernel
    if _kernel is None:
        _kernel = _parse(kernel_blob(), VMLINUX, None, True)
    return _kernel


def module(name: str) -> Spec:
    """A loaded module's BTF, split over vmlinux."""
    if not name or "/" in name or name.startswith(".") or name == "vmlinux":
        raise NotFoundError(f"bad kernel module name '{name}'")
    name = name.replace("-", "_")          # as modprobe and /sys/module spell it
    spec = _modules.get(name)
    if spec is None:
        path = os.path.join(KERNEL_BTF_DIR, name)
        if not os.path.exists(path):
            raise NotFoundError(_why_no_module_btf(name))
        spec = _parse(read_file(path), path, kernel(), kernel_verified=True)
        _modules[name] = spec
    return spec


SYS_MODULE = "/sys/module"
PROC_MODULES = "/proc/modules"
MODULES_DIR = "/lib/modules"


def _builtin_modules() -> set:
    """Names in the running kernel's modules.builtin (kernel/drivers/net/veth.ko ->
    veth), for built-in modules /sys/module does not show; empty where it is missing."""
    path = os.path.join(MODULES_DIR, os.uname().release, "modules.builtin")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return {os.path.basename(line.strip()).split(".ko")[0].replace("-", "_")
                    for line in f if line.strip()}
    except OSError:
        return set()


def _why_no_module_btf(name: str) -> str:
    """Why /sys/kernel/btf has no NAME. A module built into the kernel has no BTF of
    its own: its types are in vmlinux's. A built-in module shows in /sys/module when it
    has parameters or a version, without the `initstate` a loaded one has, else in
    modules.builtin; a kernel without loadable modules has no /proc/modules."""
    here = os.path.join(SYS_MODULE, name)
    if os.path.exists(os.path.join(here, "initstate")):
        return (f"module '{name}' is loaded but has no BTF (a kernel built without "
                "CONFIG_DEBUG_INFO_BTF_MODULES)")
    if os.path.isdir(here) or name in _builtin_modules():
        return (f"module '{name}' is built into the kernel: its types are in vmlinux's BTF "
                "(use --kernel)")
    if not os.path.exists(PROC_MODULES):
        return (f"no BTF for module '{name}': this kernel has no loadable modules (no "
                f"{PROC_MODULES}), so whatever it has of {name} is built in, and its types "
                "are in vmlinux's BTF (use --kernel)")
    return f"no BTF for module '{name}' (is it loaded?)"


def kernel_modules() -> list:
    """Names of modules that have BTF in /sys/kernel/btf."""
    try:
        return sorted(n for n in os.listdir(KERNEL_BTF_DIR) if n != "vmlinux")
    except OSError:
        return []


def _reset_cache() -> None:
    """For tests."""
    global _kernel, _kernel_blob
    _kernel = None
    _kernel_blob = None
    _modules.clear()


__all__ = ["detect", "load", "load_raw", "load_elf", "kernel", "kernel_blob", "module",
           "kernel_modules", "elf_btf_section"]
