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


def test_second_parse_uses_the_cache_and_agrees(cache, monkeypatch):
    blob = _blob("xdp_hints_a")
    first = index_cache.cached_parse(blob, _parse)
    name = f"vmlinux-{index_cache.digest(blob).hex()}.btfidx"
    assert _entries(cache) == [name]
    _no_walk(monkeypatch)
    second = index_cache.cached_parse(blob, _parse)
    assert second.index() == first.index()
    for n in ("xdp_hints_a", "t_xdp_hints_a", "unsigned int"):
        assert second.ids_by_name(n) == first.ids_by_name(n) != []
    assert second[second.ids_by_name("xdp_hints_a")[0]] == first[first.ids_by_name("xdp_hints_a")[0]]


def test_other_btf_never_uses_an_entry_that_is_not_its_own(cache, monkeypatch):
    a, b = _blob("xdp_hints_a"), _blob("xdp_hints_bb")
    index_cache.cached_parse(a, _parse)
    path_a = index_cache.path_for("vmlinux", index_cache.digest(a))
    path_b = index_cache.path_for("vmlinux", index_cache.digest(b))
    # even an entry for `a` put under b's name is refused: the digest inside differs
    os.replace(path_a, path_b)
    assert index_cache.load(path_b, index_cache.digest(b), 100) is None
    spec = index_cache.cached_parse(b, _parse)
    assert spec.ids_by_name("xdp_hints_bb") and not spec.ids_by_name("xdp_hints_a")
    assert index_cache.load(path_b, index_cache.digest(b), 100) is not None   # rebuilt
    # a newer entry replaces the other kernel's
    index_cache.cached_parse(a, _parse)
    assert _entries(cache) == [os.path.basename(path_a)]


def _corruptions(data: bytes):
    head = index_cache._HEAD.size
    yield "empty", b""
    yield "truncated header", data[:10]
    yield "truncated payload", data[:-3]
    yield "magic", b"Y" + data[1:]
    yield "version", data[:8] + (index_cache.VERSION + 1).to_bytes(4, "little") + data[12:]
    yield "payload byte", data[:head] + bytes([data[head] ^ 1]) + data[head + 1:]
    yield "digest", data[:16] + bytes(20) + data[36:]
    # offsets past the type section, with a CRC that matches them
    import zlib

    payload = bytearray(data[head:])
    n = len(payload) // 8
    payload[4 * (n - 1):4 * n] = (10**6).to_bytes(4, "little")
    fields = list(index_cache._HEAD.unpack_from(data))
    fields[4] = zlib.crc32(bytes(payload))
    yield "offsets out of range", index_cache._HEAD.pack(*fields) + bytes(payload)


@pytest.mark.parametrize("what", [c[0] for c in _corruptions(b"\0" * 200)])
def test_unusable_entry_is_rebuilt_silently(cache, what, capsys):
    blob = _blob("xdp_hints_a")
    good = index_cache.cached_parse(blob, _parse)
    path = index_cache.path_for("vmlinux", index_cache.digest(blob))
    with open(path, "rb") as f:
        data = f.read()
    bad = dict(_corruptions(data))[what]
    with open(path, "wb") as f:
        f.write(bad)
    n_words = index_cache._type_words(blob)
    assert index_cache.load(path, index_cache.digest(blob), n_words) is None
    spec = index_cache.cached_parse(blob, _parse)
    assert spec.index() == good.index()
    assert index_cache.load(path, index_cache.digest(blob), n_words) is not None
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
