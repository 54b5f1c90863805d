"""Replacing a file so that a reader sees the old contents or the new, never a part:
node_exporter's textfile collector may read it at any moment.

The new contents go to a temporary file in the same directory (a name starting with
a dot and ending in .tmp: the collector reads *.prom only), are flushed to disk and
renamed over FILE. rename(2) replaces the directory entry itself, so it never writes
through a symbolic link; a FILE that exists and is not a regular file (a symbolic
link, a FIFO, a directory, a device) is refused before anything is written, since
replacing it would silently turn it into something else. The new file keeps the mode,
and where this process may set them (root) the owner and group, of the one it
replaces (0644 for a new one), so the collector, which runs unprivileged, can still
read it.
"""

from __future__ import annotations

import errno
import os
import stat

from xdphints_cli.errors import NotFoundError, PermissionDeniedError, XdpHintsError

NEW_FILE_MODE = 0o644
_KIND = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a directory",
         stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _error(path: str, e: OSError) -> XdpHintsError:
    what = f"cannot write {path}: {e.strerror or e}"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDeniedError(what)
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFoundError(what + " (the directory must exist)")
    return XdpHintsError(what)


def replace(path: str, data: bytes) -> None:
    owner = None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    except OSError as e:
        raise _error(path, e) from None
    else:
        if not stat.S_ISREG(st.st_mode):
            kind = _KIND.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise XdpHintsError(f"{path} is {kind}: metrics replaces a regular file (a new file "
                                "renamed over it), so give the path of one, or of none yet")
        mode = stat.S_IMODE(st.st_mode)
        owner = (st.st_uid, st.st_gid)
    directory = os.path.dirname(path) or "."
    tmp = None
    try:
        import tempfile

        # a short name: FILE's own may be near the 255-byte limit already
        fd, tmp = tempfile.mkstemp(prefix=".xdphints-", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if owner is not None and owner != (os.geteuid(), os.getegid()):
                try:
                    os.fchown(f.fileno(), *owner)
                except PermissionError:     # not root: the file is ours, as any file we write
                    pass
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise _error(path, e) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
