"""The standard streams, made the same for every command before it runs (entry.py).

- File descriptors 0, 1 and 2 are always open: one that was closed when the program
  started (`>&-`) is opened on /dev/null, so no file, socket or pipe the command opens
  can take its number and receive what was meant for the terminal (as ssh's
  sanitise_stdfd does).
- stdout: a write or flush that fails, whoever made it (print, JSON, click's help,
  rich, the pcapng writer through .buffer), raises OutputError: EPIPE when the reader
  went away (`| head`), ENOSPC on a full disk, EBADF when stdout was closed at the
  start (its first write fails as write(2) on a closed descriptor would). OutputError
  is not an OSError, so click's own EPIPE handler (exit 1) never sees it: every
  failure reaches main's one exit path (app.exit_for).
- stderr: best effort. A write that fails is dropped: there is nowhere left to report
  it, and a closed or full stderr must not change the exit code the command chose.
"""

from __future__ import annotations

import errno
import io
import os
import sys

from xdphints_cli.errors import OutputError


class _Closed(io.TextIOBase):
    """A stream whose descriptor was closed when the program started (now /dev/null,
    held so nothing else takes it): every write fails with EBADF."""

    def __init__(self, fd: int):
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    @property
    def buffer(self) -> "_Closed":
        return self


class _Guarded:
    """stdout (or its .buffer): failures of write and flush become OutputError; the
    rest is the stream's own."""

    def __init__(self, stream):
        self._stream = stream
        self._buffer = None

    def write(self, data):
        try:
            return self._stream.write(data)
        except OSError as e:
            raise OutputError("stdout", e.errno or errno.EIO) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as e:
            raise OutputError("stdout", e.errno or errno.EIO) from None

    @property
    def buffer(self) -> "_Guarded":
        if self._buffer is None:
            self._buffer = _Guarded(self._stream.buffer)
        return self._buffer

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _BestEffort:
    """stderr: failures of write and flush are dropped."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, data):
        try:
            return self._stream.write(data)
        except OSError:
            return len(data)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _held(fd: int, stream):
    """`stream`, or when descriptor `fd` is closed, a _Closed one holding it on /dev/null."""
    try:
        os.fstat(fd)
        if stream is not None:
            return stream
    except OSError:
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    return _Closed(fd)


def install() -> None:
    """Once per process, before anything else opens a file."""
    if isinstance(sys.stdout, _Guarded):
        return
    _held(0, sys.stdin)
    sys.stdout = _Guarded(_held(1, sys.stdout))
    sys.stderr = _BestEffort(_held(2, sys.stderr))


# s a command asked to stop (SIGINT, SIGTERM) may spend blocked on a stdout nobody reads
STOP_GRACE = 1.0


def unblock_stdout_soon(grace: float = STOP_GRACE) -> None:
    """For a signal handler asking a long-running command to stop: if a write to stdout
    still blocks `grace` seconds later (a pipe whose reader stopped reading: a paused
    pager, `| sleep`), point stdout at /dev/null. The blocked write then goes there,
    and the command gets to its clean-up (detach the XDP program, restore settings)
    as the signal asked, instead of holding the device until the reader wakes."""
    import select
    import signal
    import threading

    dropped = []

    def drop(_signum, _frame) -> None:
        if dropped:
            return
        ready = select.poll()
        ready.register(1, select.POLLOUT)
        if any(ev & select.POLLOUT for _, ev in ready.poll(0)):
            signal.setitimer(signal.ITIMER_REAL, grace)   # not blocked on stdout: look again later
            return
        dropped.append(True)
        discard_stdout()
        # a write already blocked in another thread (dump's writer) stays blocked on the
        # pipe: a signal ends it with EINTR, and Python retries it on descriptor 1, now /dev/null
        for t in threading.enumerate():
            if t is not threading.main_thread() and t.ident is not None:
                try:
                    signal.pthread_kill(t.ident, signal.SIGALRM)
                except (OSError, ValueError):
                    pass
        try:
            os.write(2, b"xdphints: warning: stdout was not being read; what was left to write was dropped\n")
        except OSError:
            pass

    signal.signal(signal.SIGALRM, drop)
    signal.setitimer(signal.ITIMER_REAL, grace)


def discard_stdout() -> None:
    """Point descriptor 1 at /dev/null, so what stdout still holds in its buffer goes
    nowhere when the interpreter flushes it on exit, instead of failing again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass
