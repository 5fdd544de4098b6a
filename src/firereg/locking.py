"""An output folder's lock file, and recognising one left behind by a run that died.

A lock is a file created with ``O_EXCL`` holding ``{"pid", "host"}`` of its holder as JSON. A run
that is killed (SIGKILL, power loss) cannot remove it. The next run then finds it and asks: was it
written on **this** host by a process that no longer exists? Only then is the lock stale, and it
is taken over (renamed aside, checked again, deleted), with a message saying so. A lock from
another host (a shared file system), from a live process, or in a format this code cannot read
is never removed: the run refuses, naming the file, as before.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from firereg.atomic import json_text

__all__ = ["LockHeldError", "create_lock", "stale_lock_holder"]


class LockHeldError(Exception):
    """The lock exists and is not stale (``holder``: its content, for the message)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path}: held by {holder}")
        self.path, self.holder = path, holder


def _content() -> bytes:
    return json_text({"pid": os.getpid(), "host": socket.gethostname()}).encode()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def stale_lock_holder(text: str) -> int | None:
    """The dead pid a lock's ``text`` names, when it was written on this host by a process that
    no longer exists; None when the lock may be live (or cannot be read)."""
    try:
        holder = json.loads(text)
        pid, host = holder["pid"], holder["host"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or host != socket.gethostname():
        return None
    return None if _alive(pid) else pid


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return None


def create_lock(path: Path, on_stale=None) -> None:
    """Create the lock file ``path`` for this process, taking over a stale one.

    Raises :class:`LockHeldError` when another live (or unknown) holder has it; OSError as ``os.open``
    raises it. ``on_stale(pid)`` is called when a dead holder's lock was taken over.
    """
    for attempt in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            text = _read(path)
            if text is None:  # released meanwhile: try again
                continue
            pid = stale_lock_holder(text)
            if pid is None or attempt == 1:
                raise LockHeldError(path, text.strip() or "an unknown process") from None
            aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
            try:
                os.rename(path, aside)
            except FileNotFoundError:
                continue  # another run took it over first; compete for the new lock
            if _read(aside) != text:  # not the stale lock any more: put it back, refuse
                os.rename(aside, path)
                raise LockHeldError(path, text.strip()) from None
            aside.unlink(missing_ok=True)
            if on_stale is not None:
                on_stale(pid)
            continue
        try:
            os.write(fd, _content())
        finally:
            os.close(fd)
        return
    raise LockHeldError(path, "another run that started at the same moment")
