"""A cache of the running kernel's BTF index, so a lookup in vmlinux costs no walk.

Parsing vmlinux BTF is one walk over its ~120k type records to find where each
starts (reader._index), plus the packed name words a lookup by name searches: about
50 ms, several times the rest of a `btf --kernel --struct NAME`. Both are a pure
function of the BTF bytes, so they are kept in one file:

    $XDG_CACHE_HOME/xdphints/vmlinux.btfidx   (else /var/cache/xdphints for root,
                                              ~/.cache/xdphints; see cache_dir())

Rules:
- The key is the content: the header carries the SHA-1 of the exact BTF bytes the
  entry was made from, so another kernel, another build or a changed BTF never uses
  an entry that is not its own.
- Hashing vmlinux's 5 MB costs more than the rest of a lookup, so an entry also
  carries the boot id (/proc/sys/kernel/random/boot_id) of the boot in which its
  SHA-1 was last found equal to the running kernel's BTF, and that BTF's size. In
  the same boot the SHA-1 is not computed again. This is safe because the bytes of
  /sys/kernel/btf/vmlinux cannot change within a boot: they are the kernel image's
  .BTF section (__start_BTF..__stop_BTF, read-only data, its size fixed at init by
  kernel/bpf/sysfs_btf.c), and the boot id is 16 random bytes made once per boot
  (drivers/char/random.c, proc_do_uuid; writing it is refused). A new boot, even
  into the same kernel, has a new id: the SHA-1 is checked once and the entry
  stamped with the new id. Without a readable boot id, the SHA-1 is checked every time.
  Only the running kernel's BTF is given a boot id (sources.kernel()); other BTF is
  always hashed.
- A file that is unusable in any way (other format version, other digest or size,
  truncated, payload CRC wrong, offsets that do not fit the BTF) is ignored and
  rebuilt, without a word: the cache only ever saves time.
- Writing is atomic (a temporary file renamed into place) and best effort: a
  read-only or missing cache directory just means no cache. Entries of the earlier
  format (vmlinux-<sha1>.btfidx) are removed when one is written.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from typing import Callable, NamedTuple, Optional

MAGIC = b"XHBTFIDX"
VERSION = 2                  # bump when reader._index or the name words change meaning
# magic, version, n_types, sha1 of the BTF, payload crc32, byte order, BTF size, boot id
# (zero: none), padding to 8 bytes so that the offsets after it can be used in place
_HEAD = struct.Struct("<8sII20sIIQ16s4x")
SUFFIX = ".btfidx"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
NO_BOOT = bytes(16)


class Entry(NamedTuple):
    sha1: bytes
    boot_id: bytes
    offs: memoryview        # u32 record offsets, in words
    name_words: bytes       # each record's name offset, packed u32


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


def digest(blob) -> bytes:
    import hashlib   # only when hashing: its OpenSSL module costs ~2 ms to import

    return hashlib.sha1(blob).digest()


def boot_id() -> Optional[bytes]:
    """This boot's id (16 bytes), or None when it cannot be read."""
    try:
        with open(BOOT_ID, "rb") as f:
            got = bytes.fromhex(f.read(64).decode("ascii").strip().replace("-", ""))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return got if len(got) == 16 and got != NO_BOOT else None


def path_for(name: str, directory: Optional[str] = None) -> Optional[str]:
    directory = directory or cache_dir()
    return os.path.join(directory, name + SUFFIX) if directory else None


def load(path: str, n_words: int, size: int) -> Optional[Entry]:
    """The entry in `path` if it is whole and fits BTF of `size` bytes with `n_words`
    type-section words; None when there is no usable file. Whose BTF it is, is for
    the caller to decide (sha1, boot_id)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if len(data) < _HEAD.size:
        return None
    magic, version, n_types, sha1, crc, order, btf_size, boot = _HEAD.unpack_from(data)
    payload = memoryview(data)[_HEAD.size:]
    if (magic != MAGIC or version != VERSION or order != _ORDER or btf_size != size
            or len(payload) != 8 * n_types or n_types == 0 or zlib.crc32(payload) != crc):
        return None
    offs = payload[:4 * n_types].cast("I")
    # the records must lie inside the type section, in order (first at 0)
    if offs[0] != 0 or offs[-1] >= n_words or (n_types > 1 and offs[-1] <= offs[-2]):
        return None
    return Entry(sha1, boot, offs, bytes(payload[4 * n_types:]))


def store(path: str, sha1: bytes, boot: Optional[bytes], size: int, offs, name_words: bytes) -> None:
    """Write the cache file atomically; any failure leaves no file and is ignored.
    (Neither tempfile nor glob: their imports would cost the first run more than this.)"""
    payload = offs.tobytes() + name_words
    head = _HEAD.pack(MAGIC, VERSION, len(offs), sha1, zlib.crc32(payload), _ORDER, size,
                      boot or NO_BOOT)
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o644)       # whatever the umask: readable like any cache
                f.write(head)
                f.write(payload)
            os.replace(tmp, path)
        except OSError:
            os.unlink(tmp)
            raise
        for old in os.listdir(directory):
            if old.startswith("vmlinux-") and old.endswith(SUFFIX):    # the earlier format's
                os.unlink(os.path.join(directory, old))
    except OSError:
        pass


def cached_parse(blob, parse: Callable, name: str = "vmlinux", boot: Optional[bytes] = None):
    """parse(blob, index=...) with the index from the cache when it has one for these
    exact bytes; otherwise parse(blob) builds it and the cache keeps it.

    `boot`: the boot id, given only for the running kernel's BTF (bytes that cannot
    change within a boot): an entry stamped with it is used without hashing `blob`."""
    path = path_for(name)
    n_words = _type_words(blob)
    if not (path and n_words):
        return parse(blob)
    entry = load(path, n_words, len(blob))
    sha1 = None
    if entry is not None and not (boot and entry.boot_id == boot):
        sha1 = digest(blob)
        if entry.sha1 != sha1:
            entry = None
        elif boot:      # a new boot into the same kernel: checked once, stamped for the rest
            store(path, sha1, boot, len(blob), entry.offs, entry.name_words)
    if entry is not None:
        return parse(blob, index=(entry.offs, entry.name_words))
    spec = parse(blob)
    offs, name_words = spec.index()
    store(path, sha1 or digest(blob), boot, len(blob), offs, name_words)
    return spec


def _type_words(blob) -> int:
    """Words in the type section, from the header (0 when it is not BTF we know)."""
    if len(blob) < 24 or blob[:2] != b"\x9f\xeb":   # little-endian BTF only
        return 0
    hdr_len, _type_off, type_len = struct.unpack_from("<III", blob, 4)
    return type_len // 4


_ORDER = 1 if sys.byteorder == "little" else 2
