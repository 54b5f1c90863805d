"""`Fd`: the owner of one kernel file descriptor (a BPF object, a socket, ...)."""

from __future__ import annotations

import os
from typing import Optional, Union


class Fd:
    """Owns one file descriptor; closes it exactly once.

    Use as a context manager, or call close(). `take()` hands the descriptor over
    to someone else (the Fd then no longer closes it).
    """

    __slots__ = ("_fd", "__weakref__")

    def __init__(self, fd: int):
        if fd < 0:
            raise ValueError(f"invalid file descriptor {fd}")
        self._fd: Optional[int] = fd

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise ValueError("file descriptor already closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd is None

    def fileno(self) -> int:
        return self.fd

    def take(self) -> int:
        """Give up ownership and return the raw descriptor."""
        fd = self.fd
        self._fd = None
        return fd

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> "Fd":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # Safety net only: owners are meant to be closed explicitly.
        try:
            self.close()
        except Exception:
            pass

    def __int__(self) -> int:
        return self.fd

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._fd if self._fd is not None else 'closed'})"


class FdOwner:
    """Base of the BPF object owners (program, map, link): one Fd, closed once,
    and a context manager that closes it."""

    def __init__(self, fd: Union[Fd, int]):
        self._fd = fd if isinstance(fd, Fd) else Fd(fd)

    @property
    def fd(self) -> int:
        return self._fd.fd

    def fileno(self) -> int:
        return self._fd.fd

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def close(self) -> None:
        self._fd.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
