"""`Program`: load an eBPF program (BPF_PROG_LOAD) and own its fd."""

from __future__ import annotations

import errno
import struct
from typing import Iterable, Optional, Sequence, Tuple, Union

from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.fd import Fd, FdOwner
from xdphints_cli.bpf.insn import Item, assemble
from xdphints_cli.bpf.verifier_log import log_text as _log_text, reason_line
from xdphints_cli.errors import EXIT_FAILED, KernelError

LOG_SIZE = 1 << 20          # the kernel keeps the *tail* of an overlong log (6.4+)
FUNC_INFO_REC_SIZE = 8      # struct bpf_func_info {u32 insn_off; u32 type_id;}


class VerifierError(KernelError):
    """The verifier (or the loader) rejected the program. The message carries the
    verifier's one line of reason; `verifier_log` holds the whole log (shown with
    --debug). Exit code 1 even for EACCES: a rejected program is not a permission
    problem, whatever errno the verifier picked."""

    def __init__(self, what: str, err: int, log: str):
        super().__init__(what, err, reason_line(log) or None)
        self.verifier_log = log
        if self.errno in (errno.EACCES, errno.EINVAL, errno.E2BIG, errno.ENOSPC):
            self.exit_code = EXIT_FAILED


class Program(FdOwner):
    """An owned BPF program fd. Use as a context manager; closing the last fd (and
    detaching every link) unloads the program."""

    def __init__(self, fd: Union[Fd, int], prog_type: int = 0, name: str = "",
                 verifier_log: str = ""):
        super().__init__(fd)
        self.prog_type = prog_type
        self.name = name
        self.verifier_log = verifier_log

    def __repr__(self) -> str:
        return f"Program({self.name!r}, type={sc.type_name(sc.PROG_TYPE_NAMES, self.prog_type)}, fd={self._fd!r})"

    def info(self):
        from xdphints_cli.bpf.info import prog_info
        return prog_info(self.fd)

    @property
    def id(self) -> int:
        return self.info().id

    @classmethod
    def load(cls, insns: Union[bytes, Iterable[Item]], prog_type: int = sc.BPF_PROG_TYPE_XDP,
             license: str = "GPL", name: str = "", ifindex: int = 0, flags: int = 0,
             expected_attach_type: int = 0, btf_fd: int = 0,
             func_info: Optional[Sequence[Tuple[int, int]]] = None,
             log_level: int = 1, fd_array: Optional[Sequence[int]] = None,
             attach_btf_id: int = 0) -> "Program":
        """Load a program. `insns` are Insn/Label items (assembled here) or an
        encoded image. `func_info` is [(insn_off, btf_type_id), ...] for the BTF in
        `btf_fd`. `ifindex` + `flags=BPF_F_XDP_DEV_BOUND_ONLY` makes a dev-bound program.

        The first attempt runs without a verifier log (fast); on failure the load is
        repeated with `log_level` and the log's tail goes into the KernelError.
        """
        if isinstance(insns, (bytes, bytearray)):
            image = bytes(insns)
        else:
            image = b"".join(i.encode() for i in assemble(insns))
        if not image or len(image) % 8:
            raise ValueError("program image must be a non-empty multiple of 8 bytes")
        raw_name = name.encode()[:sc.BPF_OBJ_NAME_LEN - 1]
        kind = sc.type_name(sc.PROG_TYPE_NAMES, prog_type).upper()
        what = f"loading {kind} program" + (f" {name!r}" if name else "")

        def attr_for(level: int, log: Optional[bytearray]) -> sc.Attr:
            a = sc.Attr()
            a.u32(0, prog_type).u32(4, len(image) // 8).ptr(8, image)
            a.ptr(16, license.encode())
            if level and log is not None:
                a.u32(24, level).u32(28, len(log)).ptr(32, log)
            a.u32(44, flags).raw(48, raw_name)
            a.u32(64, ifindex).u32(68, expected_attach_type)
            if btf_fd:
                a.u32(72, btf_fd)
            if func_info:
                recs = b"".join(struct.pack("=II", off, tid) for off, tid in func_info)
                a.u32(76, FUNC_INFO_REC_SIZE).ptr(80, recs).u32(88, len(func_info))
            if attach_btf_id:
                a.u32(108, attach_btf_id)
            if fd_array:
                a.ptr(120, struct.pack(f"={len(fd_array)}i", *fd_array))
            return a

        ret = _load_retrying(attr_for(0, None))
        if ret >= 0:
            return cls(Fd(ret), prog_type, name)
        first_err = -ret
        if first_err == errno.EPERM:
            raise sc.error(what, first_err, needs="CAP_BPF and CAP_NET_ADMIN")
        if not log_level:
            raise VerifierError(what, first_err, "")
        log = bytearray(LOG_SIZE)
        attr = attr_for(log_level, log)
        ret = _load_retrying(attr)
        attr.release()
        if ret >= 0:  # should not happen, but a program is a program
            return cls(Fd(ret), prog_type, name, _log_text(bytes(log)))
        err = -ret
        if err == errno.ENOSPC:  # log too small: the load error is the first one
            err = first_err
        raise VerifierError(what, err, _log_text(bytes(log)))

    def test_run(self, data: bytes, repeat: int = 1, data_out_size: int = 0) -> Tuple[int, bytes, int]:
        """BPF_PROG_TEST_RUN: (return value, output packet, duration ns per run)."""
        out = bytearray(data_out_size or len(data) + 512)
        a = sc.Attr()
        a.u32(0, self.fd).u32(8, len(data)).u32(12, len(out)).ptr(16, bytes(data))
        a.ptr(24, out).u32(32, repeat)
        sc.bpf(sc.BPF_PROG_TEST_RUN, a, "test-running program")
        retval, size_out = a.get_u32(4), a.get_u32(12)
        duration = a.get_u32(36)
        a.release()
        return retval, bytes(out[:size_out]), duration


def _load_retrying(attr: sc.Attr) -> int:
    """BPF_PROG_LOAD -> fd or -errno; EAGAIN is retried a few times (as libbpf does)."""
    for _ in range(5):
        ret = sc.bpf_raw(sc.BPF_PROG_LOAD, attr)
        if ret != -errno.EAGAIN and ret != -errno.EINTR:
            return ret
    return ret
