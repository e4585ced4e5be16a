"""A doorbell on a directory: sleep until a file appears in it, or a timeout.

A node agent's watch waits for its wrappers' announced ends (`sites`, *Announced ends*) and for its
next duty (a sample, a life check). Listing the directory at a fixed pace wakes the agent whether
or not anything happened: on the benchmark's virtual machine a thread's wake-up alone costs some
0.1 ms of CPU, and a watch that looked 20 times a second used 0.6% of a core with nothing to watch.
With Linux inotify the agent sleeps until a file is created in (or moved into) the directory or
its next duty is due.

Where inotify is not there (another system, no libc, no watch left: `fs.inotify.max_user_watches`)
the bell says why (`why_not`) and `wait` sleeps at most `step_s`: the caller then looks at that
pace, as without a bell.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import struct
import time
from pathlib import Path
from types import TracebackType

#: inotify event bits (linux/inotify.h): a file created in or moved into the directory; the
#: directory's watch removed (it was deleted), or the kernel's event queue overflowed.
IN_CREATE, IN_MOVED_TO = 0x100, 0x080
IN_Q_OVERFLOW, IN_IGNORED = 0x4000, 0x8000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of name


class Doorbell:
    """Rings when a file appears in `directory` (made if missing). Use: `clear()`, then look at the
    directory, then `wait(timeout)`: a file that appears after `clear` ends the wait at once, so
    none is missed between the look and the wait."""

    def __init__(self, directory: Path, step_s: float) -> None:
        self.directory = directory
        self.step_s = step_s
        self.why_not: str | None = None
        self._fd = -1
        self._poll: select.poll | None = None
        self._libc: ctypes.CDLL | None = None
        try:
            self._poll = select.poll()  # not select.select: a descriptor past 1023 is out of its range
            self._libc = ctypes.CDLL(None, use_errno=True)
            fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            self._fd = fd
            self._poll.register(fd, select.POLLIN)
            self._arm()
        except (OSError, AttributeError) as exc:  # no inotify here: the caller looks every step_s
            self.why_not = f"no inotify ({exc})"
            self.close()

    def _arm(self) -> None:
        """Watch the directory (made again if it was removed)."""
        assert self._libc is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(self.directory), IN_CREATE | IN_MOVED_TO)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_add_watch {self.directory}: {os.strerror(err)}")

    @property
    def active(self) -> bool:
        """Whether the bell rings (inotify), rather than the caller looking every `step_s`."""
        return self._fd >= 0

    def clear(self) -> None:
        """Forget the rings so far (read the pending events); watch the directory again if it was
        removed."""
        if self._fd < 0:
            return
        rearm = False
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            off = 0
            while off + _EVENT.size <= len(buf):
                _, mask, _, length = _EVENT.unpack_from(buf, off)
                rearm = rearm or bool(mask & IN_IGNORED)
                off += _EVENT.size + length
        if rearm:
            try:
                self._arm()
            except OSError as exc:
                self.why_not = f"directory watch lost ({exc})"
                self.close()

    def wait(self, timeout_s: float) -> None:
        """Sleep until a file appeared since the last `clear`, or `timeout_s` (without inotify: at
        most `step_s`)."""
        timeout_s = max(0.0, timeout_s)
        if self._fd < 0 or self._poll is None:
            time.sleep(min(timeout_s, self.step_s))
            return
        self._poll.poll(1000 * timeout_s)

    def close(self) -> None:
        """Release the inotify descriptor (the bell then falls back to looking every `step_s`)."""
        if self._fd >= 0:
            if self._poll is not None:
                with contextlib.suppress(KeyError):
                    self._poll.unregister(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Doorbell:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["Doorbell"]
