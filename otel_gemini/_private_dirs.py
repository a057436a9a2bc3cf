"""Directories only this user can change: where the spool and the cost store keep files.

A gateway often runs as root and writes span text to disk. If another local user can create,
rename or replace entries where it writes (a spool prepared under /tmp by someone else, a
directory writable by all), planted symlinks turn its writes into writes to any file (issue
22: root-owned files truncated and overwritten, a root-owned file holding attacker-chosen
text). So before writing anywhere we check, once, that nobody else can:

- the directory we write in (spool root, slot, the store's directory) is a real directory (no
  symlink), owned by us and writable by nobody else (a world-writable directory is refused
  even with the sticky bit: others could still create the names we are about to use); it is
  made 0700 if it is only readable by others;
- every directory above it is owned by root or us, and writable by others only with the sticky
  bit (as /tmp), which stops them renaming what is ours; a symlink on the way is owned by root
  or us.

A directory we create is 0700 whatever the umask. Files are opened 0600 with O_NOFOLLOW by
their writers. See docs/security.md, "Files".
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Final

DIR_MODE: Final = 0o700
_OTHERS_WRITE: Final = stat.S_IWGRP | stat.S_IWOTH


class UnsafeDirectoryError(OSError):
    """A directory another user could change; the message names it and says why."""

    def __init__(self, path: Path | str, why: str) -> None:
        super().__init__(errno.EPERM, f"{path} {why}; refusing to write there")

    def __str__(self) -> str:
        return str(self.strerror)  # one line naming the directory (no "[Errno 1]")


def _trusted_owner(uid: int) -> bool:
    return uid == 0 or uid == os.geteuid()


def _owner(uid: int) -> str:
    return f"owned by uid {uid}"


def _check_above(directory: Path) -> None:
    """The directories above ``directory`` (absolute): nobody else can rename its parts."""
    given = Path(os.path.abspath(directory))
    # Symlinks on the way as written: followed only when root's or ours.
    for part in reversed(given.parents):
        info = os.lstat(part)
        if stat.S_ISLNK(info.st_mode) and not _trusted_owner(info.st_uid):
            raise UnsafeDirectoryError(part, f"is a symlink {_owner(info.st_uid)}")
    real = Path(os.path.realpath(given))
    for part in reversed(real.parents):
        info = os.stat(part)
        if not _trusted_owner(info.st_uid):
            raise UnsafeDirectoryError(part, f"is {_owner(info.st_uid)}, another user")
        if info.st_mode & _OTHERS_WRITE and not info.st_mode & stat.S_ISVTX:
            raise UnsafeDirectoryError(
                part, "is writable by other users without the sticky bit (chmod o-w or +t)"
            )


def _check_own(directory: Path, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeDirectoryError(directory, "is a symlink (not followed)")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectoryError(directory, "is not a directory")
    if info.st_uid != os.geteuid():
        raise UnsafeDirectoryError(directory, f"is {_owner(info.st_uid)}, not this user")
    if info.st_mode & _OTHERS_WRITE:
        raise UnsafeDirectoryError(directory, "is writable by other users (chmod go-w)")


def private_directory(
    directory: Path, *, check_above: bool = True, make_private: bool = True
) -> Path:
    """``directory``, created 0700 (with any missing parents) if absent, checked as above;
    with ``make_private`` an existing one readable by others is made 0700 (not for a
    directory that is not only ours, such as the one a user names for the cost store file).

    Raises :class:`UnsafeDirectoryError` (an ``OSError``) naming the directory another user
    could change, or the ``OSError`` of creating it."""
    directory = Path(os.path.abspath(directory))
    missing: list[Path] = []
    for part in (directory, *directory.parents):
        if os.path.lexists(part):
            break
        missing.append(part)
    if check_above:
        # The existing part first: never create anything under a directory others control.
        top = missing[-1] if missing else directory
        _check_above(top)
    for part in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, DIR_MODE)  # umask can only remove bits from 0700
    info = os.lstat(directory)
    _check_own(directory, info)
    if make_private and stat.S_IMODE(info.st_mode) != DIR_MODE:
        os.chmod(directory, DIR_MODE)  # ours, readable by others: made private
    for part in missing[1:]:
        _check_own(part, os.lstat(part))  # created by us just now, unless raced
    return directory
