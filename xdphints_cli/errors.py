"""The exception tree. Each class carries the exit code that `main` maps it to.

Exit codes (documented in README.md and man/xdphints.8):
  0 success, 1 operation failed, 2 usage error, 3 not supported,
  4 permission denied, 5 no such device or object, 6 (check) needs enable,
  7 (verify) the hints disagree with the kernel stack.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Optional

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNSUPPORTED = 3
EXIT_PERMISSION = 4
EXIT_NOT_FOUND = 5
EXIT_NEEDS_ENABLE = 6
EXIT_DISAGREE = 7
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by SIGINT
EXIT_OUTPUT_CLOSED = 141  # stdout closed early (| head): as a command ended by SIGPIPE


class XdpHintsError(Exception):
    """Base class: an operation failed (exit 1)."""

    exit_code = EXIT_FAILED


class UsageError(XdpHintsError):
    exit_code = EXIT_USAGE


class NotSupportedError(XdpHintsError):
    exit_code = EXIT_UNSUPPORTED


class KernelTooOldError(NotSupportedError):
    """The running kernel lacks an operation or family (as opposed to the driver)."""


class PermissionDeniedError(XdpHintsError):
    exit_code = EXIT_PERMISSION


class NotFoundError(XdpHintsError):
    exit_code = EXIT_NOT_FOUND


class Interrupted(XdpHintsError):
    """SIGINT or SIGTERM ended a command that cleaned up after itself."""

    exit_code = EXIT_INTERRUPTED


class OutputError(XdpHintsError):
    """stdout could not be written (cli/streams.py): exit 141 when its reader went
    away (EPIPE), as a command that SIGPIPE ended; 1 when it is closed or full."""

    def __init__(self, stream: str, err: int):
        self.errno = err
        super().__init__(f"cannot write to {stream}: {os.strerror(err)} ({errno_name(err)})")
        self.exit_code = EXIT_OUTPUT_CLOSED if err == _errno.EPIPE else EXIT_FAILED


class BTFError(XdpHintsError):
    """Malformed, truncated or hostile BTF; raised by the BTF engine only."""


class KernelError(XdpHintsError):
    """A syscall or netlink request failed with an errno (and maybe extack text).

    The exit code follows the errno, so callers can raise it as is and the user
    still gets "not supported" or "permission denied" where that is what happened.
    """

    _EXIT_BY_ERRNO = {
        _errno.EOPNOTSUPP: EXIT_UNSUPPORTED,
        _errno.EPERM: EXIT_PERMISSION,
        _errno.EACCES: EXIT_PERMISSION,
        _errno.ENODEV: EXIT_NOT_FOUND,
        _errno.ENOENT: EXIT_NOT_FOUND,
        _errno.ENXIO: EXIT_NOT_FOUND,
    }

    def __init__(self, what: str, err: int, extack: Optional[str] = None):
        self.what = what
        self.errno = abs(err)
        self.extack = extack or None
        name = errno_name(self.errno)
        detail = f"{self.extack} ({name})" if self.extack else f"{os.strerror(self.errno)} ({name})"
        super().__init__(f"{what}: {detail}")
        self.exit_code = self._EXIT_BY_ERRNO.get(self.errno, EXIT_FAILED)


def errno_name(err: int) -> str:
    """'EOPNOTSUPP' for 95; a number for an errno Python does not know."""
    err = abs(err)
    if err == _errno.EOPNOTSUPP:  # ENOTSUP and EOPNOTSUPP share 95 on Linux
        return "EOPNOTSUPP"
    return _errno.errorcode.get(err, f"errno {err}")
