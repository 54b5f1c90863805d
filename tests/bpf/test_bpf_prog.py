"""Loading programs: info vs bpftool, program BTF, verifier errors, EPERM, test runs."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from bpftest_helpers import bpftool_json, minimal_btf, vmlinux_func_ids
from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.btf_object import load_btf, prog_btf_blob
from xdphints_cli.bpf.info import prog_fd_by_id, prog_info
from xdphints_cli.bpf.insn import (
    JEQ, R0, R1, R2, R6, R10, XDP_DROP, XDP_PASS, Label, add64_imm, call_kfunc, exit_, jmp_imm, ldx_mem,
    mov64_imm, mov64_reg, st_mem, stx_mem,
)
from xdphints_cli.bpf.prog import Program, VerifierError
from xdphints_cli.errors import EXIT_FAILED, EXIT_PERMISSION, KernelError, NotFoundError

pytestmark = pytest.mark.privileged

PASS = [mov64_imm(R0, XDP_PASS), exit_()]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_trivial_xdp_program_matches_bpftool():
    with Program.load(PASS, name="xh_pass") as prog:
        info = prog.info()
        tool = bpftool_json("prog", "show", "id", str(info.id))
    assert info.type == sc.BPF_PROG_TYPE_XDP and info.type_name == "xdp"
    assert tool["type"] == "xdp"
    assert tool["name"] == info.name == "xh_pass"
    assert tool["tag"] == info.tag
    assert tool["gpl_compatible"] is info.gpl_compatible is True
    assert tool["bytes_xlated"] == info.xlated_prog_len == 16
    assert tool["bytes_jited"] == info.jited_prog_len
    assert "btf_id" not in tool and info.btf_id == 0
    assert info.map_ids == () and "map_ids" not in tool
    assert info.to_json()["type"] == "xdp" and "btf-id" in info.to_json()


def test_program_btf_and_func_info():
    blob, func_id = minimal_btf("xh_btf_prog")
    with load_btf(blob) as btf, \
            Program.load(PASS, name="xh_btf_prog", btf_fd=btf.fd, func_info=[(0, func_id)]) as prog:
        info = prog.info()
        tool = bpftool_json("prog", "show", "id", str(info.id))
        assert info.btf_id > 0
        assert tool["btf_id"] == info.btf_id
        # the kernel hands back exactly the blob we loaded
        assert prog_btf_blob(info.id) == blob


def test_prog_btf_blob_without_btf():
    with Program.load(PASS) as prog:
        with pytest.raises(NotFoundError, match="without BTF"):
            prog_btf_blob(prog.info().id)


def test_bad_btf_gives_kernel_log():
    blob, _ = minimal_btf()
    bad = bytearray(blob)
    bad[24 + 12 + 4 * 1 + 8] = 0xFF  # the FWD's size/type field: nonsense
    bad[24 + 4] = 0x0E               # INT's kind -> an invalid kind 14 with garbage
    with pytest.raises(KernelError) as ei:
        load_btf(bytes(bad)).close()
    assert ei.value.errno == errno.EINVAL
    assert ei.value.extack  # the BTF verifier said something


def test_verifier_rejection_carries_log():
    bad = [mov64_imm(R0, XDP_PASS), ldx_mem(4, R0, R2, 0), exit_()]  # r2 uninitialised
    with pytest.raises(VerifierError) as ei:
        Program.load(bad, name="xh_bad")
    e = ei.value
    assert e.errno == errno.EACCES
    assert "R2 !read_ok" in str(e)
    assert "loading XDP program 'xh_bad'" in str(e)
    assert "processed" in e.verifier_log
    assert e.exit_code == EXIT_FAILED  # a rejected program is not "permission denied"


def test_missing_exit_is_rejected():
    with pytest.raises(VerifierError) as ei:
        Program.load([mov64_imm(R0, 1)])
    assert ei.value.errno == errno.EINVAL


def test_kfunc_needs_dev_bound_program():
    ids = vmlinux_func_ids()
    prog = [mov64_reg(R6, R1), st_mem(8, R10, -8, 0), mov64_reg(R1, R6), mov64_reg(R2, R10),
            add64_imm(R2, -8), call_kfunc(ids["bpf_xdp_metadata_rx_timestamp"]),
            mov64_imm(R0, 2), exit_()]
    with pytest.raises(KernelError) as ei:
        Program.load(prog)
    assert ei.value.errno == errno.EINVAL
    assert "device-bound" in str(ei.value)


def test_branches_and_stores_run():
    """Labels, ST/STX/LDX on the stack, exercised by BPF_PROG_TEST_RUN."""
    prog = [
        st_mem(4, R10, -4, 7),
        ldx_mem(4, R1, R10, -4),
        stx_mem(4, R10, R1, -8),
        ldx_mem(4, R2, R10, -8),
        mov64_imm(R0, XDP_DROP),
        jmp_imm(JEQ, R2, 7, "pass"),
        exit_(),
        Label("pass"),
        mov64_imm(R0, XDP_PASS),
        exit_(),
    ]
    with Program.load(prog) as p:
        ret, data, _ = p.test_run(bytes(64))
    assert ret == XDP_PASS and len(data) == 64


def test_prog_fd_by_id_gives_same_program():
    with Program.load(PASS, name="xh_byid") as prog:
        pid = prog.info().id
        with prog_fd_by_id(pid) as fd:
            assert prog_info(fd.fd).id == pid
            assert prog_info(fd.fd).name == "xh_byid"


def test_eperm_maps_to_exit_code_4():
    """A root process without capabilities: EPERM -> PermissionDeniedError (exit 4)."""
    code = (
        "import sys\n"
        "from xdphints_cli.bpf.prog import Program\n"
        "from xdphints_cli.bpf.insn import mov64_imm, exit_\n"
        "from xdphints_cli.errors import XdpHintsError\n"
        "try:\n"
        "    Program.load([mov64_imm(0, 2), exit_()])\n"
        "except XdpHintsError as e:\n"
        "    print(e)\n"
        "    sys.exit(e.exit_code)\n"
    )
    r = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all", sys.executable,
                        "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=REPO), timeout=60)
    assert r.returncode == EXIT_PERMISSION, r.stderr
    assert "needs CAP_BPF" in r.stdout


def test_eperm_error_mapping_unit():
    exc = sc.error("loading XDP program", errno.EPERM)
    assert exc.exit_code == EXIT_PERMISSION and "needs CAP_BPF (run as root)" in str(exc)
    assert sc.error("x", errno.EOPNOTSUPP).exit_code == 3
