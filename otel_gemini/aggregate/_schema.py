"""The cost store's SQLite file: where it lives, its table, and how it is opened."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from otel_gemini._private_dirs import UnsafeDirectoryError, private_directory
from otel_gemini._suppress import untraced
from otel_gemini.aggregate._rows import COLUMNS

ENV_COST_DB: Final = "OTEL_GEMINI_COST_DB"
ENV_COST_RETENTION_DAYS: Final = "OTEL_GEMINI_COST_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS: Final = 90.0
SCHEMA_VERSION: Final = 2
"""1: the first store; 2 adds ``service_name`` and ``tags`` (budgets by service and tag)."""
BUSY_TIMEOUT_MS: Final = 5000

_CREATE: Final = """
CREATE TABLE IF NOT EXISTS generations (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    user_id TEXT,
    session_id TEXT,
    model TEXT,
    provider TEXT,
    operation TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    usage_details TEXT,
    cost_femto INTEGER,
    input_cost_femto INTEGER,
    output_cost_femto INTEGER,
    cost_details TEXT,
    cost_status TEXT,
    prices_version TEXT,
    latency_ms REAL NOT NULL,
    ttft_ms REAL,
    is_error INTEGER NOT NULL,
    error_type TEXT,
    service_name TEXT,
    tags TEXT
);
-- Rows go in append order (rowid); the span key is a small index. (A WITHOUT ROWID table
-- keyed by the random span id inserted 2.5x slower: each row landed mid-tree.)
CREATE UNIQUE INDEX IF NOT EXISTS generations_by_span ON generations (span_id, trace_id);
CREATE INDEX IF NOT EXISTS generations_by_start ON generations (start_ns);
"""

# What each older schema needs to become the current one (run in one transaction).
_MIGRATIONS: Final = {
    1: (
        "ALTER TABLE generations ADD COLUMN service_name TEXT",
        "ALTER TABLE generations ADD COLUMN tags TEXT",
    ),
}

UPSERT: Final = (
    f"INSERT OR REPLACE INTO generations ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)})"
)


class CostStoreError(RuntimeError):
    """The cost store's database cannot be opened or created (the message names the path)."""


def default_cost_db(environ: Mapping[str, str]) -> Path:
    """``$OTEL_GEMINI_COST_DB``, else ``$XDG_STATE_HOME/otel-gemini/costs.sqlite3``, else
    ``~/.local/state/otel-gemini/costs.sqlite3``."""
    configured = environ.get(ENV_COST_DB)
    if configured:
        return Path(configured).expanduser()
    state_home = environ.get("XDG_STATE_HOME")
    base = Path(state_home) if state_home else Path.home() / ".local" / "state"
    return base / "otel-gemini" / "costs.sqlite3"


def retention_from_env(environ: Mapping[str, str]) -> float | None:
    """Days to keep rows: ``OTEL_GEMINI_COST_RETENTION_DAYS`` (``0``: forever), default 90."""
    text = environ.get(ENV_COST_RETENTION_DAYS)
    if text is None or not text.strip():
        return DEFAULT_RETENTION_DAYS
    try:
        days = float(text)
    except ValueError:
        raise CostStoreError(
            f"{ENV_COST_RETENTION_DAYS} must be a number of days (got {text!r})"
        ) from None
    if days < 0 or days != days:
        raise CostStoreError(f"{ENV_COST_RETENTION_DAYS} must be 0 or more (got {text!r})")
    return days or None


def _create_private(path: Path) -> None:
    """Creates the database file 0600 before SQLite does (it would use 0644 & ~umask), or
    makes an existing one of ours 0600; SQLite gives ``-wal`` and ``-shm`` the database
    file's mode. Never through a symlink: one planted there would make SQLite write its
    pages into whatever file it names."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise UnsafeDirectoryError(path, "is a symlink (not followed)")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise UnsafeDirectoryError(path, f"is owned by uid {info.st_uid}, not this user")
        if stat.S_IMODE(info.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        # Left by an earlier version with 0644: made private too (never through a link).
        with contextlib.suppress(OSError):
            companion = os.open(f"{path}{suffix}", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                if os.fstat(companion).st_uid == os.geteuid():
                    os.fchmod(companion, 0o600)
            finally:
                os.close(companion)


# The sqlite3 instrumentation wraps every connection sqlite3.connect() returns, whatever the
# context, and decides per statement; so the statements run here are untraced, and the
# connection's later users suppress at their own calls.
@untraced
def open_for_writing(path: Path) -> sqlite3.Connection:
    """Opens (creating if needed) the store in WAL mode, for the writer thread.

    The file and its ``-wal`` / ``-shm`` are 0600 whatever the umask, in a directory only
    this user can change (``_private_dirs``; a directory writable by all, /tmp itself
    included, is refused), and a store path that is a symlink is refused."""
    try:
        private_directory(path.parent, make_private=False)
        _create_private(path)
    except OSError as error:
        raise CostStoreError(f"cannot open the cost store {str(path)!r}: {error}") from error
    # Processes starting together (prefork workers) race to turn a new file into a store:
    # switching it to WAL answers "database is locked" at once, without SQLite's busy wait.
    # The loser tries again, briefly backing off, until the store is there.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            return _open_store(path)
        except CostStoreError as error:
            locked = isinstance(error.__cause__, sqlite3.OperationalError) and (
                "locked" in str(error.__cause__) or "busy" in str(error.__cause__)
            )
            if not locked or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)  # backoff before trying again, not synchronisation
        delay = min(delay * 2, 0.2)


def _open_store(path: Path) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
        )
    except sqlite3.Error as error:
        raise CostStoreError(f"cannot open the cost store {str(path)!r}: {error}") from error
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit never waits for fsync (only checkpoints do); a power cut
        # can lose the last commits, never corrupt the file. These are answers, not money.
        connection.execute("PRAGMA synchronous=NORMAL")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CostStoreError(
                f"the cost store {str(path)!r} was written by a newer otel-gemini "
                f"(schema {version}, this one knows {SCHEMA_VERSION})"
            )
        ready = (
            version == SCHEMA_VERSION
            and connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='generations'"
            ).fetchone()
        )
        # Only a new store is written to here: many workers open one store at once, and an
        # open that needs no write lock never waits for (or fails on) another's writes.
        if not ready:
            _create_or_migrate(connection)
    except sqlite3.Error as error:
        connection.close()
        raise CostStoreError(f"cannot use the cost store {str(path)!r}: {error}") from error
    return connection


def _create_or_migrate(connection: sqlite3.Connection) -> None:
    """Makes a new file a store, or brings an older store's schema up to date, each in one
    write transaction (another process may be doing the same at once)."""
    has_table = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='generations'"
    ).fetchone()
    if not has_table:  # idempotent statements: a second process creating it changes nothing
        connection.executescript(
            f"BEGIN IMMEDIATE; {_CREATE} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
        )
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: another process may have migrated meanwhile.
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        for step in range(max(1, version), SCHEMA_VERSION):
            for statement in _MIGRATIONS[step]:
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        connection.commit()
    except BaseException:
        connection.rollback()
        raise


@untraced
def open_for_reading(path: Path) -> sqlite3.Connection:
    """A connection for queries.

    A path with no store (missing, a directory, an empty or foreign file) raises
    :class:`CostStoreError` naming it: an answer of "$0 spent" from nothing recorded would
    be a silent wrong number. A store that exists and holds no rows answers $0 rightly.
    """
    if not path.exists():
        raise CostStoreError(
            f"there is no cost store at {str(path)!r} ({ENV_COST_DB} / --db): "
            "nothing has been recorded there"
        )
    if not path.is_file():
        raise CostStoreError(f"the cost store {str(path)!r} is not a file")
    try:
        connection = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000)
        connection.execute("PRAGMA query_only=1")
        has_table = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='generations'"
        ).fetchone()
    except sqlite3.Error as error:
        raise CostStoreError(f"cannot read the cost store {str(path)!r}: {error}") from error
    if has_table is None:
        connection.close()
        raise CostStoreError(f"{str(path)!r} is not an otel-gemini cost store (no generations)")
    return connection


def path_from(value: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path:
    """The store's path: ``value`` when given, else :func:`default_cost_db`."""
    return Path(value).expanduser() if value is not None else default_cost_db(environ)
