"""A cache of the running kernel's BTF index, so a lookup in vmlinux costs no walk.

Parsing vmlinux BTF is one walk over its ~120k type records to find where each
starts (reader._index), plus the packed name words a lookup by name searches: about
50 ms, several times the rest of a `btf --kernel --struct NAME`. Both are a pure
function of the BTF bytes, so they are kept in one file per BTF:

    $XDG_CACHE_HOME/xdphints/   (else /var/cache/xdphints for root, ~/.cache/xdphints;
        vmlinux-<sha1 of the BTF bytes>.btfidx      see cache_dir())

Rules:
- The key is the content: the file name and the header carry the SHA-1 of the exact
  BTF bytes read this time, so another kernel, another build or a changed BTF never
  finds an entry that is not its own.
- A file that is unusable in any way (other format version, other digest, truncated,
  payload CRC wrong, offsets that do not fit the BTF) is ignored and rebuilt, without
  a word: the cache only ever saves time.
- Writing is atomic (a temporary file renamed into place) and best effort: a
  read-only or missing cache directory just means no cache. Entries for other BTF
  are removed when a new one is written, so the directory holds one file.
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import zlib
from array import array
from typing import Callable, Optional, Tuple

MAGIC = b"XHBTFIDX"
VERSION = 1                  # bump when reader._index or the name words change meaning
_HEAD = struct.Struct("<8sII20sII")   # magic, version, n_types, sha1, payload crc32, byte order
SUFFIX = ".btfidx"


def cache_dir() -> Optional[str]:
    """$XDG_CACHE_HOME/xdphints; without it /var/cache/xdphints for root and
    ~/.cache/xdphints for others. Root uses XDG_CACHE_HOME only when that directory is
    root's own (sudo -E keeps a user's: root's files there would lock the user out of
    them). None when there is no absolute directory to use (no HOME)."""
    root = os.geteuid() == 0
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        try:
            mine = not root or os.stat(xdg).st_uid == 0
        except OSError:
            mine = not root
        if mine:
            return os.path.join(xdg, "xdphints")
    if root:
        return "/var/cache/xdphints"
    home = os.path.expanduser("~")
    return os.path.join(home, ".cache", "xdphints") if os.path.isabs(home) else None


def digest(blob: bytes) -> bytes:
    return hashlib.sha1(blob).digest()


def path_for(name: str, sha1: bytes, directory: Optional[str] = None) -> Optional[str]:
    directory = directory or cache_dir()
    return os.path.join(directory, f"{name}-{sha1.hex()}{SUFFIX}") if directory else None


def load(path: str, sha1: bytes, n_words: int) -> Optional[Tuple[array, bytes]]:
    """(record offsets, name words) from a cache file made for BTF with this SHA-1
    and this many type-section words; None when there is no usable file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if len(data) < _HEAD.size:
        return None
    magic, version, n_types, got_sha1, crc, order = _HEAD.unpack_from(data)
    payload = memoryview(data)[_HEAD.size:]
    if (magic != MAGIC or version != VERSION or got_sha1 != sha1 or order != _ORDER
            or len(payload) != 8 * n_types or zlib.crc32(payload) != crc or n_types == 0):
        return None
    offs = array("I")
    offs.frombytes(payload[:4 * n_types])
    # the records must lie inside the type section, in order (first at 0)
    if offs[0] != 0 or offs[-1] >= n_words or (n_types > 1 and offs[-1] <= offs[-2]):
        return None
    return offs, bytes(payload[4 * n_types:])


def store(path: str, sha1: bytes, offs: array, name_words: bytes) -> None:
    """Write the cache file atomically; any failure leaves no file and is ignored."""
    import glob
    import tempfile

    payload = offs.tobytes() + name_words
    head = _HEAD.pack(MAGIC, VERSION, len(offs), sha1, zlib.crc32(payload), _ORDER)
    directory = os.path.dirname(path)
    tmp = None
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=directory)
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            f.write(payload)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
        for other in glob.glob(os.path.join(directory, "vmlinux-*" + SUFFIX)):
            if other != path:
                os.unlink(other)
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def cached_parse(blob: bytes, parse: Callable, name: str = "vmlinux"):
    """parse(blob, index=...) with the index from the cache when it has one for these
    exact bytes; otherwise parse(blob) builds it and the cache keeps it."""
    sha1 = digest(blob)
    path = path_for(name, sha1)
    n_words = _type_words(blob)
    got = load(path, sha1, n_words) if n_words and path else None
    if got is not None:
        return parse(blob, index=got)
    spec = parse(blob)
    if path and n_words:
        offs, name_words = spec.index()
        store(path, sha1, offs, name_words)
    return spec


def _type_words(blob: bytes) -> int:
    """Words in the type section, from the header (0 when it is not BTF we know)."""
    if len(blob) < 24 or blob[:2] != b"\x9f\xeb":   # little-endian BTF only
        return 0
    hdr_len, _type_off, type_len = struct.unpack_from("<III", blob, 4)
    return type_len // 4


_ORDER = 1 if sys.byteorder == "little" else 2
