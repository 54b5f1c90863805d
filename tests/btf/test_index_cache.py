"""The vmlinux BTF index cache (btf/index_cache.py): used only for the exact BTF it was
made from, rebuilt silently when unusable, never in the way when it cannot be written."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from xdphints_cli.btf import index_cache, reader, sources
from xdphints_cli.btf.writer import Builder


def _blob(struct_name: str) -> bytes:
    b = Builder()
    u32 = b.add_int("unsigned int", 4)
    b.add_struct(struct_name, 8, [("a", u32, 0), ("btf_id", u32, 32)])
    b.add_typedef("t_" + struct_name, u32)
    return b.encode()


def _parse(blob, index=None):
    return reader.parse(blob, kernel_verified=True, index=index)


def _no_walk(monkeypatch):
    """Make the walk over the type records fail: a parse that still works used the cache."""
    def boom(_words):
        raise AssertionError("type records walked although the cache had the index")
    monkeypatch.setattr(reader, "_index", boom)


def _entries(d) -> list:
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(str(d), "xdphints", "*")))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def _path() -> str:
    return index_cache.path_for("vmlinux")


def _load(blob):
    return index_cache.load(_path(), index_cache._type_words(blob), len(blob))


def _hashes(monkeypatch) -> list:
    """Count the SHA-1s computed from here on."""
    calls = []
    real = index_cache.digest

    def counted(blob):
        calls.append(len(blob))
        return real(blob)
    monkeypatch.setattr(index_cache, "digest", counted)
    return calls


BOOT_A, BOOT_B = b"A" * 16, b"B" * 16


def test_second_parse_uses_the_cache_and_agrees(cache, monkeypatch):
    blob = _blob("xdp_hints_a")
    first = index_cache.cached_parse(blob, _parse)
    assert _entries(cache) == ["vmlinux.btfidx"]
    _no_walk(monkeypatch)
    second = index_cache.cached_parse(blob, _parse)
    assert second.index() == first.index()
    for n in ("xdp_hints_a", "t_xdp_hints_a", "unsigned int"):
        assert second.ids_by_name(n) == first.ids_by_name(n) != []
    assert second[second.ids_by_name("xdp_hints_a")[0]] == first[first.ids_by_name("xdp_hints_a")[0]]


def test_other_btf_never_uses_an_entry_that_is_not_its_own(cache, monkeypatch):
    a, b = _blob("xdp_hints_a"), _blob("xdp_hints_b")      # same size, other bytes
    assert len(a) == len(b) and a != b
    index_cache.cached_parse(a, _parse)
    assert _load(b).sha1 != index_cache.digest(b)         # a's entry, refused for b
    spec = index_cache.cached_parse(b, _parse)
    assert spec.ids_by_name("xdp_hints_b") and not spec.ids_by_name("xdp_hints_a")
    assert _load(b).sha1 == index_cache.digest(b)         # rebuilt for b
    assert _entries(cache) == ["vmlinux.btfidx"]


def test_same_boot_skips_the_hash_and_a_new_boot_checks_it_once(cache, monkeypatch):
    blob = _blob("xdp_hints_a")
    index_cache.cached_parse(blob, _parse, boot=BOOT_A)
    assert _load(blob).boot_id == BOOT_A
    hashes = _hashes(monkeypatch)
    _no_walk(monkeypatch)
    assert index_cache.cached_parse(blob, _parse, boot=BOOT_A).ids_by_name("xdp_hints_a")
    assert hashes == []                                   # same boot: no SHA-1
    assert index_cache.cached_parse(blob, _parse, boot=BOOT_B).ids_by_name("xdp_hints_a")
    assert len(hashes) == 1 and _load(blob).boot_id == BOOT_B   # new boot: checked, stamped
    index_cache.cached_parse(blob, _parse, boot=BOOT_B)
    assert len(hashes) == 1
    index_cache.cached_parse(blob, _parse)                # no boot id: always hashed
    assert len(hashes) == 2


def test_another_kernel_after_a_reboot_rebuilds(cache):
    """The entry of the kernel of the last boot, the same size as this one's BTF."""
    a, b = _blob("xdp_hints_a"), _blob("xdp_hints_b")
    index_cache.cached_parse(a, _parse, boot=BOOT_A)
    spec = index_cache.cached_parse(b, _parse, boot=BOOT_B)
    assert spec.ids_by_name("xdp_hints_b") and not spec.ids_by_name("xdp_hints_a")
    entry = _load(b)
    assert (entry.sha1, entry.boot_id) == (index_cache.digest(b), BOOT_B)


def test_same_boot_other_size_rebuilds(cache):
    """Within a boot vmlinux cannot change; BTF of another size is still never taken
    for the entry's (a boot id that lies, as a container could make it)."""
    a, b = _blob("xdp_hints_a"), _blob("xdp_hints_longer_name")
    assert len(a) != len(b)
    index_cache.cached_parse(a, _parse, boot=BOOT_A)
    spec = index_cache.cached_parse(b, _parse, boot=BOOT_A)
    assert spec.ids_by_name("xdp_hints_longer_name") and not spec.ids_by_name("xdp_hints_a")


def test_boot_id_is_this_boots():
    got = index_cache.boot_id()
    with open(index_cache.BOOT_ID) as f:
        assert got is not None and got.hex() == f.read().strip().replace("-", "")


def test_unreadable_boot_id_means_hashing(monkeypatch, tmp_path):
    monkeypatch.setattr(index_cache, "BOOT_ID", str(tmp_path / "missing"))
    assert index_cache.boot_id() is None
    bad = tmp_path / "bad"
    bad.write_text("not-a-uuid\n")
    monkeypatch.setattr(index_cache, "BOOT_ID", str(bad))
    assert index_cache.boot_id() is None


def test_entry_of_the_earlier_format_is_removed(cache):
    old = cache / "xdphints" / ("vmlinux-" + "ab" * 20 + ".btfidx")
    old.parent.mkdir()
    old.write_bytes(b"XHBTFIDX" + bytes(100))
    index_cache.cached_parse(_blob("xdp_hints_a"), _parse)
    assert _entries(cache) == ["vmlinux.btfidx"]


def _corruptions(data: bytes):
    head = index_cache._HEAD.size
    yield "empty", b""
    yield "truncated header", data[:10]
    yield "truncated payload", data[:-3]
    yield "magic", b"Y" + data[1:]
    yield "version", data[:8] + (index_cache.VERSION + 1).to_bytes(4, "little") + data[12:]
    yield "payload byte", data[:head] + bytes([data[head] ^ 1]) + data[head + 1:]
    fields = list(index_cache._HEAD.unpack_from(data))
    fields[6] += 4
    yield "btf size", index_cache._HEAD.pack(*fields) + data[head:]
    # offsets past the type section, with a CRC that matches them
    import zlib

    payload = bytearray(data[head:])
    n = len(payload) // 8
    payload[4 * (n - 1):4 * n] = (10**6).to_bytes(4, "little")
    fields = list(index_cache._HEAD.unpack_from(data))
    fields[4] = zlib.crc32(bytes(payload))
    yield "offsets out of range", index_cache._HEAD.pack(*fields) + bytes(payload)


@pytest.mark.parametrize("what", [c[0] for c in _corruptions(b"\0" * 200)] + ["digest"])
def test_unusable_entry_is_rebuilt_silently(cache, what, capsys):
    blob = _blob("xdp_hints_a")
    good = index_cache.cached_parse(blob, _parse, boot=BOOT_A)
    with open(_path(), "rb") as f:
        data = f.read()
    if what == "digest":   # a whole entry, but of other bytes, stamped with another boot
        fields = list(index_cache._HEAD.unpack_from(data))
        fields[3], fields[7] = bytes(20), BOOT_B
        bad = index_cache._HEAD.pack(*fields) + data[index_cache._HEAD.size:]
        with open(_path(), "wb") as f:
            f.write(bad)
        assert _load(blob) is not None
    else:
        bad = dict(_corruptions(data))[what]
        with open(_path(), "wb") as f:
            f.write(bad)
        assert _load(blob) is None
    spec = index_cache.cached_parse(blob, _parse, boot=BOOT_A)
    assert spec.index() == good.index()
    assert _load(blob).sha1 == index_cache.digest(blob)
    assert capsys.readouterr() == ("", "")


def test_unwritable_cache_directory_is_no_error(tmp_path, monkeypatch):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_dir))
    spec = index_cache.cached_parse(_blob("xdp_hints_a"), _parse)
    assert spec.ids_by_name("xdp_hints_a")


def test_cache_directory(tmp_path, monkeypatch):
    users = tmp_path / "user-cache"
    users.mkdir()
    os.chown(users, 1000, 1000)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", "/home/u")
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert index_cache.cache_dir() == "/x/cache/xdphints"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert index_cache.cache_dir() == "/home/u/.cache/xdphints"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")        # not absolute: ignored (XDG spec)
    assert index_cache.cache_dir() == "/home/u/.cache/xdphints"
    monkeypatch.setenv("HOME", "relative")                  # nowhere absolute: no cache
    assert index_cache.cache_dir() is None
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert index_cache.cache_dir() == "/var/cache/xdphints"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))      # root's own directory
    assert index_cache.cache_dir() == str(tmp_path / "xdphints")
    monkeypatch.setenv("XDG_CACHE_HOME", str(users))         # a user's (sudo -E): not for root
    assert index_cache.cache_dir() == "/var/cache/xdphints"


def test_no_cache_directory_still_parses(monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", "relative")
    assert index_cache.cached_parse(_blob("xdp_hints_a"), _parse).ids_by_name("xdp_hints_a")


@pytest.mark.skipif(not os.path.exists(sources.VMLINUX), reason="kernel has no vmlinux BTF")
def test_vmlinux_cold_and_warm_give_the_same_answers(tmp_path):
    """The CLI end to end: a cold run makes the entry, a warm run reads it; the same
    output both times, and the same as a parse without any cache."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, XDG_CACHE_HOME=str(tmp_path), NO_COLOR="1")
    cmd = [sys.executable, "-m", "xdphints_cli", "btf", "--kernel", "--struct", "sk_buff"]
    cold = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert cold.returncode == 0, cold.stderr
    assert len(_entries(tmp_path)) == 1
    warm = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert (warm.returncode, warm.stdout, warm.stderr) == (0, cold.stdout, "")
    with open(sources.VMLINUX, "rb") as f:
        blob = f.read()
    sk = reader.parse(blob, kernel_verified=True).ids_by_name("sk_buff", "struct")
    assert f"btf-id {sk[0]}" in warm.stdout
