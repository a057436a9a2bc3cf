"""Directories only this user can change: where the spool and the cost store keep files.

A gateway often runs as root and writes span text to disk. If another local user can create,
rename or replace entries where it writes (a spool prepared under /tmp by someone else, a
directory writable by all), planted symlinks turn its writes into writes to any file (issue
22: root-owned files truncated and overwritten, a root-owned file holding attacker-chosen
text). So before writing anywhere we check, once, that nobody else can:

- the directory we write in (spool root, slot, the store's directory) is a real directory (no
  symlink), owned by us and not writable by all (a world-writable directory is refused even
  with the sticky bit: others could still create the names we are about to use); a spool
  directory readable or group-writable (umask 002, an earlier version's 0775 slot, a 2775
  volume) is made 0700; the store's directory (one a user may name) is left as it is, and
  may be group-writable only by the owner's private group;
- every directory above it is owned by root or us, and writable by others only with the sticky
  bit (as /tmp), which stops them renaming what is ours, or writable by its group when that
  is the owner's private group (a group whose only member is the owner: ``~/.local`` 0775 on
  user-private-group distros); a symlink on the way is owned by root or us.

A directory we create is 0700 whatever the umask. Files are opened 0600 with O_NOFOLLOW by
their writers. See docs/security.md, "Files".
"""

from __future__ import annotations

import contextlib
import errno
import grp
import itertools
import os
import pwd
import stat
from pathlib import Path
from typing import Final

DIR_MODE: Final = 0o700


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


def _private_group(info: os.stat_result) -> bool:
    """The directory's group is its owner's private group: the owner's primary group, with
    no other member listed (so group-write gives nobody else a way in)."""
    try:
        return (
            pwd.getpwuid(info.st_uid).pw_gid == info.st_gid and not grp.getgrgid(info.st_gid).gr_mem
        )
    except KeyError:  # no such user or group (a container's arbitrary uid): not known private
        return False


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
        if info.st_mode & stat.S_ISVTX:
            continue  # as /tmp: others cannot rename or remove what is ours
        if info.st_mode & stat.S_IWOTH:
            raise UnsafeDirectoryError(
                part, "is writable by other users without the sticky bit (chmod o-w or +t)"
            )
        if info.st_mode & stat.S_IWGRP and not _private_group(info):
            raise UnsafeDirectoryError(
                part,
                f"is writable by its group (gid {info.st_gid}, not its owner's private group) "
                "without the sticky bit (chmod g-w or +t)",
            )


def _check_own(directory: Path, info: os.stat_result, *, made_private: bool = True) -> None:
    """``made_private``: a group-writable directory is fine, it is about to be made 0700."""
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeDirectoryError(directory, "is a symlink (not followed)")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectoryError(directory, "is not a directory")
    if info.st_uid != os.geteuid():
        raise UnsafeDirectoryError(directory, f"is {_owner(info.st_uid)}, not this user")
    if info.st_mode & stat.S_IWOTH:
        raise UnsafeDirectoryError(directory, "is writable by other users (chmod go-w)")
    if info.st_mode & stat.S_IWGRP and not made_private and not _private_group(info):
        raise UnsafeDirectoryError(
            directory,
            f"is writable by its group (gid {info.st_gid}, not its owner's private group) "
            "(chmod g-w)",
        )


def _missing_parts(directory: Path) -> list[Path]:
    """``directory`` and its parents that do not exist yet, deepest first."""
    return list(
        itertools.takewhile(lambda part: not os.path.lexists(part), (directory, *directory.parents))
    )


def private_directory(
    directory: Path, *, check_above: bool = True, make_private: bool = True
) -> Path:
    """``directory``, created 0700 (with any missing parents) if absent, checked as above;
    with ``make_private`` an existing one readable or group-writable is made 0700 (not for a
    directory that is not only ours, such as the one a user names for the cost store file).

    Raises :class:`UnsafeDirectoryError` (an ``OSError``) naming the directory another user
    could change, or the ``OSError`` of creating it."""
    directory = Path(os.path.abspath(directory))
    missing = _missing_parts(directory)
    if check_above:
        # The existing part first: never create anything under a directory others control.
        top = missing[-1] if missing else directory
        _check_above(top)
    for part in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, DIR_MODE)  # umask can only remove bits from 0700
    info = os.lstat(directory)
    _check_own(directory, info, made_private=make_private)
    if make_private and stat.S_IMODE(info.st_mode) != DIR_MODE:
        os.chmod(directory, DIR_MODE)  # ours, readable or group-writable: made private
    for part in missing[1:]:
        _check_own(part, os.lstat(part), made_private=False)  # created by us, unless raced
    return directory


def check_private_directory(directory: Path, *, make_private: bool = True) -> None:
    """Raises what :func:`private_directory` would, without creating or changing anything
    (a configuration check: ``otel-gemini gateway --check``)."""
    directory = Path(os.path.abspath(directory))
    missing = _missing_parts(directory)
    _check_above(missing[-1] if missing else directory)  # as private_directory
    if not missing:
        _check_own(directory, os.lstat(directory), made_private=make_private)
    elif not os.path.isdir(missing[-1].parent):
        raise NotADirectoryError(errno.ENOTDIR, "is not a directory", str(missing[-1].parent))
    # Written into (or created under): this user needs to write there.
    writable = missing[-1].parent if missing else directory
    if not os.access(writable, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "not writable by this user", str(writable))
