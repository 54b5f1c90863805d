"""Nothing about the running kernel's BTF is kept between runs, so nothing in a cache
directory, whoever put it there, changes what `btf --kernel` prints: an entry of
the index cache earlier releases kept (planted by another user, or edited by root
with its checksum recomputed), a FIFO, a link to /dev/zero, a link to another
directory. And nothing is written there, by a whole run or one killed halfway."""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import pytest

from conftest import REPO_ROOT, xdphints
from xdphints_cli.btf import reader, sources

pytestmark = pytest.mark.skipif(not os.path.exists(sources.VMLINUX), reason="kernel has no vmlinux BTF")

STRUCT = ["btf", "--kernel", "--struct", "xdp_md"]
# The entry earlier releases kept in $XDG_CACHE_HOME/xdphints/vmlinux.btfidx (format 2):
# magic, version, n_types, SHA-1 of the BTF, CRC-32 of the payload, byte order, BTF size,
# the boot id it was last checked in; then each record's offset and name offset (u32).
_V2_HEAD = struct.Struct("<8sII20sIIQ16s4x")


def _entry_v2(edit) -> bytes:
    """A whole, checksummed entry of this kernel and this boot (its SHA-1 was skipped
    within a boot) whose offsets `edit` changed."""
    blob = sources.kernel_blob()
    offs, names = reader.parse(blob, kernel_verified=True).index()
    offs = list(offs)
    edit(offs)
    payload = struct.pack(f"<{len(offs)}I", *offs) + names
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = bytes.fromhex(f.read().strip().replace("-", ""))
    return _V2_HEAD.pack(b"XHBTFIDX", 2, len(offs), hashlib.sha1(blob).digest(), zlib.crc32(payload), 1,
                         len(blob), boot) + payload


def _true_layout() -> str:
    res = xdphints(*STRUCT, env={"XDG_CACHE_HOME": "/nonexistent"})
    assert res.returncode == 0 and "__u32" in res.stdout, res.stderr
    return res.stdout


def _type_id(name: str) -> int:
    return sources.kernel().ids_by_name(name)[0]


def _u32_to_u64(offs) -> None:
    """__u32's record where __u64's is: every member of xdp_md turns __u64."""
    offs[_type_id("__u32") - 1] = offs[_type_id("__u64") - 1]


def _past_the_end(offs) -> None:
    """__u32's record far past the end of the BTF (an IndexError in earlier releases)."""
    offs[_type_id("__u32") - 1] = 0x7FFFFFFF


@pytest.mark.parametrize("edit", [_u32_to_u64, _past_the_end], ids=["u32-as-u64", "offset-past-the-end"])
def test_an_edited_entry_of_the_earlier_cache_changes_nothing(tmp_path, edit):
    entry = tmp_path / "xdphints" / "vmlinux.btfidx"
    entry.parent.mkdir()
    entry.write_bytes(_entry_v2(edit))
    before = entry.read_bytes()
    for _ in range(2):   # an entry that was used is never rebuilt: the second run too
        res = xdphints(*STRUCT, env={"XDG_CACHE_HOME": str(tmp_path)})
        assert (res.returncode, res.stdout, res.stderr) == (0, _true_layout(), "")
    assert entry.read_bytes() == before


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_a_fifo_or_an_endless_file_at_the_cache_path_is_never_read(tmp_path, kind):
    entry = tmp_path / "xdphints" / "vmlinux.btfidx"
    entry.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(entry)
    else:
        entry.symlink_to("/dev/zero")
    for argv in (STRUCT, ["btf", "--kfuncs"]):
        res = xdphints(*argv, env={"XDG_CACHE_HOME": str(tmp_path)})   # times out (fails) if it hangs
        assert res.returncode == 0 and res.stderr == "", res.stderr
    assert sorted(os.listdir(entry.parent)) == ["vmlinux.btfidx"]


def test_a_linked_cache_directory_is_not_written_through(tmp_path):
    """$XDG_CACHE_HOME/xdphints linked to a directory only root may use: nothing in it
    is written, replaced or removed (an entry of format 1 there is left alone)."""
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    kept = secret / ("vmlinux-" + "ab" * 20 + ".btfidx")
    kept.write_bytes(b"root's")
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    (xdg / "xdphints").symlink_to(secret)
    res = xdphints(*STRUCT, env={"XDG_CACHE_HOME": str(xdg)})
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(secret)) == [kept.name] and kept.read_bytes() == b"root's"


def test_nothing_is_written_even_by_a_run_killed_halfway(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, NO_COLOR="1", XDG_CACHE_HOME=str(tmp_path), HOME=str(tmp_path))
    assert xdphints(*STRUCT, env={"XDG_CACHE_HOME": str(tmp_path), "HOME": str(tmp_path)}).returncode == 0
    for delay in (0.05, 0.1, 0.15, 0.2, 0.3):
        p = subprocess.Popen([sys.executable, "-m", "xdphints_cli", *STRUCT], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
    assert os.listdir(tmp_path) == []
