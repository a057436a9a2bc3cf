"""The cost store's SQLite file: where it lives, its table, and how it is opened."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Final

from otel_gemini._private_dirs import (
    UnsafeDirectoryError,
    check_private_directory,
    private_directory,
)
from otel_gemini._suppress import untraced
from otel_gemini.aggregate._rows import COLUMNS

# The store's settings and error have their own home; re-exported here for the modules that
# open the file.
from otel_gemini.aggregate._settings import ENV_COST_DB as ENV_COST_DB
from otel_gemini.aggregate._settings import CostStoreError as CostStoreError
from otel_gemini.aggregate._settings import default_cost_db as default_cost_db
from otel_gemini.aggregate._settings import path_from as path_from

SCHEMA_VERSION: Final = 2
"""1: ``generations``. 2: ``service_name`` and ``tags`` columns, ``dropped_generations``.
Raised only by a change an older writer cannot write through: a new nullable column is not
one (:data:`ADDED_COLUMNS`)."""
ADDED_COLUMNS: Final = (("request_model", "TEXT"),)
ADDED_INDEXES: Final = (
    (
        "generations_by_request_model",
        # Only rows whose request named another model (an alias): budgets read those few
        # apart from the rollups, which keep the answering model only.
        "CREATE INDEX IF NOT EXISTS generations_by_request_model ON generations (start_ns) "
        "WHERE request_model IS NOT NULL",
    ),
)
"""The indexes of :data:`ADDED_COLUMNS` (name, statement), made with them, and by any open
that finds one missing (a store whose column an earlier build added without it)."""
"""Nullable columns added without a new version (``request_model``: the request's model
when the response named another). Processes of two versions share one store during a
rolling upgrade or a worker respawn: an older writer inserts by column name, so it keeps
writing to a store that has them (its rows leave them NULL), where a raised
``user_version`` would make it refuse the file and drop its spans."""
HOUR_NS: Final = 3600 * 10**9
BUSY_TIMEOUT_MS: Final = 5000

# Rows go in append order (an INTEGER rowid); the span key is a small index. (A WITHOUT ROWID
# table keyed by the random span id inserted 2.5x slower: each row landed mid-tree.)
# dropped_generations: generations the store could not keep (queue full, write errors...),
# by the hour their span started (hour_ns: its first nanosecond) and reason; answers over
# a window say how many (see _drops.py).
_CREATE: Final = (
    """CREATE TABLE IF NOT EXISTS generations (
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
    tags TEXT,
    request_model TEXT
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS generations_by_span ON generations (span_id, trace_id)",
    "CREATE INDEX IF NOT EXISTS generations_by_start ON generations (start_ns)",
    *(statement for _, statement in ADDED_INDEXES),
    """CREATE TABLE IF NOT EXISTS dropped_generations (
    hour_ns INTEGER NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (hour_ns, reason)
)""",
)

# Each version's new columns, NULL in older rows: version 1 (before the drops table) → 2.
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

ROWS_PER_STATEMENT: Final = 256
"""Rows one INSERT carries (256 x 26 values, under SQLite's 32,766 host parameters): one
statement, one step, for many rows; the writer then drops the GIL a few times a batch
rather than once a row (``executemany`` steps, and releases it, row by row)."""


def upsert_many(count: int) -> str:
    """The INSERT of ``count`` rows (``INSERT OR REPLACE``: the span key keeps one row)."""
    row = f"({', '.join('?' for _ in COLUMNS)})"
    return f"INSERT OR REPLACE INTO generations ({', '.join(COLUMNS)}) VALUES " + ", ".join(
        row for _ in range(count)
    )


ADD_DROPS: Final = (
    "INSERT INTO dropped_generations (hour_ns, reason, count) VALUES (?, ?, ?) "
    "ON CONFLICT (hour_ns, reason) DO UPDATE SET count = count + excluded.count"
)


def _check_store_file(path: Path, info: os.stat_result) -> None:
    """What a store file must be (``info``: its ``lstat``): no symlink, a regular file,
    this user's."""
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeDirectoryError(path, "is a symlink (not followed)")
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, f"{path} is not a regular file")
    if info.st_uid != os.geteuid():
        raise UnsafeDirectoryError(path, f"is owned by uid {info.st_uid}, not this user")


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
        _check_store_file(path, info)
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


def check_writable(path: Path) -> None:
    """Raises the :class:`CostStoreError` :func:`open_for_writing` would for what the path
    is (its directory, a symlink, another user's or a non-regular file), without creating
    or changing anything: a configuration check."""
    header = b""
    try:
        check_private_directory(path.parent, make_private=False)
        with contextlib.suppress(FileNotFoundError):
            _check_store_file(path, os.lstat(path))
            if not os.access(path, os.R_OK | os.W_OK):
                raise PermissionError(errno.EACCES, "not writable by this user", str(path))
            with open(path, "rb") as file:  # the SQLite header: no connection, no -wal made
                header = file.read(100)
    except OSError as error:
        raise CostStoreError(f"cannot open the cost store {str(path)!r}: {error}") from error
    if header and not header.startswith(b"SQLite format 3\x00"):
        raise CostStoreError(f"cannot use the cost store {str(path)!r}: file is not a database")
    if len(header) == 100:
        version = int.from_bytes(header[60:64], "big")  # PRAGMA user_version
        if version > SCHEMA_VERSION:
            raise CostStoreError(
                f"the cost store {str(path)!r} was written by a newer otel-gemini "
                f"(schema {version}, this one knows {SCHEMA_VERSION})"
            )


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
            and not _missing_columns(connection)
            and not _missing_indexes(connection)
        )
        # Only a new or older store is written to here: many workers open one store at
        # once, and an open that needs no write lock never waits for (or fails on) another's
        # writes.
        if not ready:
            _create_or_migrate(connection)
    except sqlite3.Error as error:
        connection.close()
        raise CostStoreError(f"cannot use the cost store {str(path)!r}: {error}") from error
    return connection


def _missing_columns(connection: sqlite3.Connection) -> list[tuple[str, str]]:
    """:data:`ADDED_COLUMNS` the ``generations`` table lacks (written by an older version)."""
    present = {row[1] for row in connection.execute("PRAGMA table_info(generations)")}
    return [(name, kind) for name, kind in ADDED_COLUMNS if name not in present]


def _missing_indexes(connection: sqlite3.Connection) -> list[str]:
    """:data:`ADDED_INDEXES` statements whose index the store lacks."""
    present = {
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='index'")
    }
    return [statement for name, statement in ADDED_INDEXES if name not in present]


def _create_or_migrate(connection: sqlite3.Connection) -> None:
    """Makes the file a store of :data:`SCHEMA_VERSION`, in one transaction: created when
    new, migrated from an older version (another process may have done it meanwhile: the
    version is read again under the write lock)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='generations'"
        ).fetchone()
        if exists and version >= 1:
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    connection.execute(statement)
        if exists:  # before the statements below, which index the added columns
            for name, kind in _missing_columns(connection):
                connection.execute(f"ALTER TABLE generations ADD COLUMN {name} {kind}")
            for statement in _missing_indexes(connection):
                connection.execute(statement)
        if not exists or version < SCHEMA_VERSION:
            for statement in _CREATE:
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
