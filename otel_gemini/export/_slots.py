"""One owner per spool directory: numbered slots under the spool root, each behind a lock.

``OTEL_GEMINI_SPOOL_DIR`` is a root holding ``slot-0``, ``slot-1``, ...; a process takes
the lowest slot whose lock it can get (``flock``, released by the kernel when the process
dies, however it dies). So N worker processes sharing one configuration each get a spool
of their own, a restarted worker takes over the slot (and the backlog) a dead one left, and
a second process can never send the same spans as the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from otel_gemini._private_dirs import check_private_directory, private_directory

_logger = logging.getLogger(__name__)

SLOT_PREFIX = "slot-"
LOCK_FILE = "lock"


class SpoolBusyError(RuntimeError):
    """Every spool slot under the spool directory is owned by another running exporter."""


@dataclass
class SlotLock:
    """An exclusive hold on one slot directory, for as long as the process keeps it."""

    directory: Path
    _fd: int | None

    def release(self) -> None:
        """Unlocks the slot (the process keeps running; another exporter may take it)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def relock(self) -> bool:
        """Locks the slot again after its directory was deleted and recreated (the old lock
        file went with it, so another process could otherwise take the slot); False when
        that fails (another process took it in between): nothing may be written there."""
        try:
            fd = os.open(
                self.directory / LOCK_FILE,
                os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
        except OSError as error:
            _logger.error("otel-gemini: cannot recreate the lock of %s: %s", self.directory, error)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            _logger.error(
                "otel-gemini: cannot lock %s again after it was recreated (%s); another "
                "process may be using it",
                self.directory,
                error,
            )
            return False
        with contextlib.suppress(OSError):
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        old, self._fd = self._fd, fd
        if old is not None:
            with contextlib.suppress(OSError):
                os.close(old)
        return True

    def forget_in_child(self) -> None:
        """In a forked child: drop the inherited descriptor without unlocking the parent's
        slot (the lock belongs to the open file, which the parent still holds)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def slot_directories(root: Path) -> list[Path]:
    """The slot directories under ``root``, in slot order."""
    slots: list[tuple[int, Path]] = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in root.iterdir():
            suffix = entry.name[len(SLOT_PREFIX) :]
            if entry.name.startswith(SLOT_PREFIX) and suffix.isdigit() and entry.is_dir():
                slots.append((int(suffix), entry))
    return [path for _, path in sorted(slots)]


def check_slots(root: Path, max_slots: int) -> None:
    """Raises what :func:`acquire_slot` would refuse about ``root`` and its existing slot
    directories, creating and locking nothing (a configuration check)."""
    check_private_directory(root)
    for number in range(max_slots):
        slot = root / f"{SLOT_PREFIX}{number}"
        if os.path.lexists(slot):
            check_private_directory(slot)


def acquire_slot(root: Path, max_slots: int) -> SlotLock:
    """Locks the lowest free slot under ``root`` (creating directories as needed).

    Raises ``SpoolBusyError`` when all ``max_slots`` are owned, ``OSError`` when the
    directory cannot be created or written, ``UnsafeDirectoryError`` (an ``OSError``) when
    another user could change it or a directory above it (see ``_private_dirs``).
    """
    root = private_directory(root)
    for number in range(max_slots):
        # Checked like the root: a slot planted by another user (or a symlink) is refused.
        directory = private_directory(root / f"{SLOT_PREFIX}{number}", check_above=False)
        fd = os.open(
            directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        except OSError:
            os.close(fd)
            raise
        # The owner's pid, for `otel-gemini health` and for people reading the directory.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return SlotLock(directory, fd)
    raise SpoolBusyError(
        f"all {max_slots} spool slots under {root} are owned by running exporters; "
        "give this process its own OTEL_GEMINI_SPOOL_DIR or raise spool_slots"
    )


def slot_owner(directory: Path) -> int | None:
    """The pid owning a slot, or None when nobody holds its lock (read-only probe)."""
    try:
        # Read only, but never through a link (to a FIFO, say, where open would hang).
        fd = os.open(directory / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
