"""Load a clang-built XDP object dev-bound through the system's libbpf (ctypes), for
programs that call the RX metadata kfuncs: those need the program loaded for one
device (prog_ifindex + BPF_F_XDP_DEV_BOUND_ONLY), which Debian 12's bpftool (7.1)
cannot ask for. libbpf resolves the kfunc externs, creates the maps and loads the
object's BTF, as it does for any user's program."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
from typing import Iterator

BPF_F_XDP_DEV_BOUND_ONLY = 1 << 6


def _libbpf():
    path = ctypes.util.find_library("bpf") or "libbpf.so.1"
    lib = ctypes.CDLL(path, use_errno=True)
    vp = ctypes.c_void_p
    for name, res, args in (("bpf_object__open_file", vp, [ctypes.c_char_p, vp]),
                            ("bpf_object__next_program", vp, [vp, vp]),
                            ("bpf_program__set_ifindex", None, [vp, ctypes.c_uint32]),
                            ("bpf_program__set_flags", ctypes.c_int, [vp, ctypes.c_uint32]),
                            ("bpf_object__load", ctypes.c_int, [vp]),
                            ("bpf_program__fd", ctypes.c_int, [vp]),
                            ("bpf_object__close", None, [vp])):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


@contextlib.contextmanager
def load_dev_bound(obj_path: str, ifindex: int) -> Iterator[int]:
    """Yields the fd of the object's (first) program, loaded bound to `ifindex` of the
    calling thread's network namespace; everything is freed on exit."""
    lib = _libbpf()
    obj = lib.bpf_object__open_file(os.fsencode(obj_path), None)
    if not obj:
        raise OSError(ctypes.get_errno() or errno.EINVAL, f"libbpf cannot open {obj_path}")
    try:
        prog = lib.bpf_object__next_program(obj, None)
        lib.bpf_program__set_ifindex(prog, ifindex)
        if lib.bpf_program__set_flags(prog, BPF_F_XDP_DEV_BOUND_ONLY):
            raise OSError(errno.EINVAL, "bpf_program__set_flags failed")
        err = lib.bpf_object__load(obj)
        if err:
            raise OSError(-err, f"libbpf cannot load {obj_path}: {os.strerror(-err)}")
        yield lib.bpf_program__fd(prog)
    finally:
        lib.bpf_object__close(obj)
