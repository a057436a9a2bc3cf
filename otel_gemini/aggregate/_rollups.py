"""Rollups of the ``generations`` table: exact sums and duration histograms by period, so
answers read thousands of rollup rows instead of millions of generations.

Tables each keyed by a period (``span`` quarters of an hour starting at quarter
``q``, counted from 1970 UTC: ``span`` 1 is 15 minutes, 24 six hours, 96 a UTC day):

- ``rollup_by_model`` (15 minutes × model × provider): requests, errors, unpriced requests,
  tokens, money as exact split sums (:mod:`._money`), latency and time-to-first-token sums
  and maxima. Small whatever the traffic: about 3,000 periods a month per model.
- ``rollup_by_user`` (15 minutes, 6 hours and days × user × model × provider) and
  ``rollup_by_session`` (the same × session): the same sums without durations, for answers
  grouped by user, or by session, and by or filtered on model.
- ``rollup_user_totals`` and ``rollup_session_totals`` (the same periods × user, or ×
  session, over every model): the same sums again, for answers by user or session that
  name no model — the dashboard's top users and sessions. A user of four models has one
  row a period here and four there, and ranking tens of thousands of sessions is mostly
  summing their rows.
- ``rollup_latency`` (15 minutes, 6 hours and days × model × provider × measure × bucket):
  counts of durations by log bucket (:mod:`._sketch`), for percentiles within 1 %.

Unknown stays unknown: a cost's sums carry the count of known values beside them, and
unpriced requests are counted apart, exactly as the raw query does. A missing key (no
user, no model) is stored as the empty blob ``X''``, which no text equals (NULLs in a key
would never conflict, so each fold would add a row).

**Maintenance, independent of the writer.** ``rollup_state.folded_rowid`` is the
watermark: rows with a rowid up to it are in the rollups. :func:`catch_up` folds the rows
above it, in chunks, each chunk one transaction of one ``INSERT … SELECT … GROUP BY …
ON CONFLICT DO UPDATE`` statement per table, from any process sharing the file (the first query
on a store written by an older version builds everything). Answers read the rollups *and*
the rows above the watermark in one snapshot, so they are exact even when the catch-up
could not run (another process held the lock, a read-only file).

Rows that leave after being folded are taken out by triggers the migration installs, so
whichever process deletes or replaces them: ``AFTER DELETE`` (retention) subtracts the
row, and ``BEFORE INSERT`` subtracts the row an ``INSERT OR REPLACE`` is about to replace
(SQLite fires no delete trigger for a REPLACE unless ``recursive_triggers`` is on; the
writer's connection leaves it off, and must, or a replaced row would be taken out twice).
A row is never changed in place by ``UPDATE``. A deleted row that had the largest rowid
lowers the watermark, since SQLite may give its rowid to the next row.

Versioned on its own (``rollup_state.version``): a store whose rollups an older version
built gets them dropped and rebuilt (layout 3's are upgraded in place: the two tables it
lacked are sums of its own); one a newer version built is left alone (answers then read the
raw rows). The main schema's ``user_version`` is not touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from otel_gemini._background import BackgroundLoop, fork_hooks
from otel_gemini._suppress import untraced
from otel_gemini.aggregate._money import SPLIT
from otel_gemini.aggregate._sketch import BOUNDS

_logger = logging.getLogger("otel_gemini.aggregate")

ROLLUP_VERSION: Final = 4
QUARTER_NS: Final = 900 * 10**9
DAY_QUARTERS: Final = 96
SPANS: Final = (DAY_QUARTERS, 24, 1)
"""The periods of ``rollup_by_user``, ``rollup_by_session`` and ``rollup_latency``, in
quarters: a UTC day, six hours, 15 minutes (``rollup_by_model`` has 15 minutes only)."""
CHUNK_ROWS: Final = 20_000
"""Rows folded per transaction: a writer waiting on a first build waits for one chunk
(well under a second), never long enough to fill its queue."""
BUSY_TIMEOUT_S: Final = 5.0
LATENCY: Final = 0
TIME_TO_FIRST_TOKEN: Final = 1

MODEL_TABLE: Final = "rollup_by_model"
USER_TABLE: Final = "rollup_by_user"
SESSION_TABLE: Final = "rollup_by_session"
USER_TOTALS_TABLE: Final = "rollup_user_totals"
SESSION_TOTALS_TABLE: Final = "rollup_session_totals"
LATENCY_TABLE: Final = "rollup_latency"
KEYED_TABLES: Final = {
    USER_TOTALS_TABLE: ("user_id",),
    SESSION_TOTALS_TABLE: ("session_id",),
    USER_TABLE: ("user_id", "model", "provider"),
    SESSION_TABLE: ("user_id", "session_id", "model", "provider"),
}
"""The tables of sums by period of every span and their key columns (generations
columns), smallest first."""
_TABLES: Final = (
    MODEL_TABLE,
    *KEYED_TABLES,
    LATENCY_TABLE,
    "rollup_bins",
    "rollup_state",
)
_TRIGGERS: Final = ("rollup_on_delete", "rollup_on_replace")
_INDEXES: Final = ("generations_by_user", "generations_by_session")

UNPRICED_STATUSES: Final = "('unknown_model', 'implausible_usage')"
"""Generations with usage and no cost: no price, or counts no request can bill."""

# Per-row values (over a relation ``g`` with the generations' columns) and the rollup
# columns summing them. Answers read the raw rows through the same expressions.
SUM_VALUES: Final = (
    ("requests", "1"),
    ("cost_hi", f"g.cost_femto / {SPLIT}"),
    ("cost_lo", f"g.cost_femto % {SPLIT}"),
    ("cost_n", "g.cost_femto IS NOT NULL"),
    ("input_cost_hi", f"g.input_cost_femto / {SPLIT}"),
    ("input_cost_lo", f"g.input_cost_femto % {SPLIT}"),
    ("input_cost_n", "g.input_cost_femto IS NOT NULL"),
    ("output_cost_hi", f"g.output_cost_femto / {SPLIT}"),
    ("output_cost_lo", f"g.output_cost_femto % {SPLIT}"),
    ("output_cost_n", "g.output_cost_femto IS NOT NULL"),
    ("input_tokens", "g.input_tokens"),
    ("output_tokens", "g.output_tokens"),
    ("total_tokens", "g.total_tokens"),
    ("unpriced", f"g.cost_status IN {UNPRICED_STATUSES}"),
    ("errors", "g.is_error"),
)
DURATION_VALUES: Final = (
    ("latency_sum", "g.latency_ms"),
    ("ttft_n", "g.ttft_ms IS NOT NULL"),
    ("ttft_sum", "g.ttft_ms"),
)
DURATION_MAXIMA: Final = (("latency_max", "g.latency_ms"), ("ttft_max", "g.ttft_ms"))


def key_sql(column: str) -> str:
    """A generations column as a rollup key (NULL → ``X''``)."""
    return f"ifnull(g.{column}, X'')"


def bucket_sql(value: str) -> str:
    """The :mod:`._sketch` bucket of a duration, looked up in ``rollup_bins``."""
    return (
        f"ifnull((SELECT b.i FROM rollup_bins b WHERE b.upper >= {value} "
        f"ORDER BY b.upper LIMIT 1), {len(BOUNDS)})"
    )


_SPANS: Final = "(" + " UNION ALL ".join(f"SELECT {span} AS span" for span in SPANS) + ")"
_MEASURES: Final = f"(SELECT {LATENCY} AS measure UNION ALL SELECT {TIME_TO_FIRST_TOKEN})"
_QUARTER: Final = f"g.start_ns / {QUARTER_NS}"


def _keyed_ddl(table: str) -> str:
    keys = KEYED_TABLES[table]
    sums = ", ".join(f"{name} INTEGER NOT NULL" for name, _ in SUM_VALUES)
    return (
        f"CREATE TABLE {table} (span INTEGER NOT NULL, q INTEGER NOT NULL, "
        f"{', '.join(f'{key} NOT NULL' for key in keys)}, {sums}, "
        f"PRIMARY KEY (span, q, {', '.join(keys)})) WITHOUT ROWID"
    )


_TOTALS_FROM: Final = {USER_TOTALS_TABLE: USER_TABLE, SESSION_TOTALS_TABLE: SESSION_TABLE}
"""The tables layout 4 added, and the layout-3 table each is the sum over models of."""


def _upgrade_from_3(connection: sqlite3.Connection) -> None:
    """Layout 3 had every table but the two over every model: they are summed from its
    per-model tables (exact: the same integers), in seconds where refolding a million rows
    takes tens of them, and the triggers are replaced by ones that keep all of them."""
    for trigger in _TRIGGERS:
        connection.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    names = [name for name, _ in SUM_VALUES]
    for table, source in _TOTALS_FROM.items():
        keys = ", ".join(KEYED_TABLES[table])
        connection.execute(f"DROP TABLE IF EXISTS {table}")
        connection.execute(_keyed_ddl(table))
        connection.execute(
            f"INSERT INTO {table} (span, q, {keys}, {', '.join(names)}) "
            f"SELECT span, q, {keys}, {', '.join(f'sum({n})' for n in names)} "
            f"FROM {source} GROUP BY span, q, {keys}"
        )
    for trigger in _triggers():
        connection.execute(trigger)
    connection.execute("UPDATE rollup_state SET version = ? WHERE id = 1", (ROLLUP_VERSION,))


def _ddl() -> str:
    sums = ", ".join(f"{name} INTEGER NOT NULL" for name, _ in SUM_VALUES)
    keyed = "\n".join(f"{_keyed_ddl(table)};" for table in KEYED_TABLES)
    return f"""
CREATE TABLE rollup_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    folded_rowid INTEGER NOT NULL
);
CREATE TABLE rollup_bins (upper REAL PRIMARY KEY, i INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE {MODEL_TABLE} (
    span INTEGER NOT NULL, q INTEGER NOT NULL, model NOT NULL, provider NOT NULL, {sums},
    latency_sum REAL NOT NULL, ttft_n INTEGER NOT NULL, ttft_sum REAL NOT NULL,
    latency_max REAL, ttft_max REAL,
    PRIMARY KEY (span, q, model, provider)
) WITHOUT ROWID;
{keyed}
CREATE TABLE {LATENCY_TABLE} (
    span INTEGER NOT NULL, q INTEGER NOT NULL, model NOT NULL, provider NOT NULL,
    measure INTEGER NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (span, q, model, provider, measure, bucket)
) WITHOUT ROWID;
-- Answers filtered by user or session read the raw rows, through these.
CREATE INDEX IF NOT EXISTS generations_by_user ON generations (user_id, start_ns);
CREATE INDEX IF NOT EXISTS generations_by_session ON generations (session_id, start_ns);
"""


class _Fold:
    """The statements adding (``sign`` 1) or taking out (-1) the rows of ``source`` (a
    relation ``g`` with the generations' columns and ``rid``, its rowid)."""

    def __init__(self, source: str, sign: int) -> None:
        self.source = source
        self.sign = sign

    @staticmethod
    def upsert(keys: Sequence[str], values: Sequence[tuple[str, str]]) -> str:
        updates = ", ".join(f"{name} = {name} + excluded.{name}" for name, _ in values)
        return f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"

    def model(self) -> str:
        values = [(n, f"{self.sign} * ifnull(sum({e}), 0)") for n, e in SUM_VALUES]
        values += [(n, f"{self.sign} * ifnull(sum({e}), 0)") for n, e in DURATION_VALUES]
        keys = ("span", "q", "model", "provider")
        maxima = ""
        update_maxima = ""
        if self.sign > 0:
            maxima = ", " + ", ".join(f"max({e})" for _, e in DURATION_MAXIMA)
            update_maxima = ", " + ", ".join(
                f"{n} = CASE WHEN {n} IS NULL OR excluded.{n} > {n} THEN excluded.{n} ELSE {n} END"
                for n, _ in DURATION_MAXIMA
            )
        columns = [*keys, *(n for n, _ in values)]
        if self.sign > 0:
            columns += [n for n, _ in DURATION_MAXIMA]
        return (
            f"INSERT INTO {MODEL_TABLE} ({', '.join(columns)}) "
            f"SELECT 1, {_QUARTER}, {key_sql('model')}, {key_sql('provider')}, "
            f"{', '.join(e for _, e in values)}{maxima} "
            f"FROM {self.source} WHERE true GROUP BY 2, 3, 4 "
            f"{self.upsert(keys, values)}{update_maxima}"
        )

    def by_key(self, table: str, dimensions: Sequence[str]) -> str:
        """Sums by period of every span and ``dimensions`` (generations columns)."""
        values = [(n, f"{self.sign} * ifnull(sum({e}), 0)") for n, e in SUM_VALUES]
        keys = ("span", "q", *dimensions)
        columns = [*keys, *(n for n, _ in values)]
        positions = ", ".join(str(i + 1) for i in range(len(keys)))
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"SELECT s.span, {_QUARTER} / s.span * s.span, "
            f"{', '.join(key_sql(d) for d in dimensions)}, "
            f"{', '.join(e for _, e in values)} "
            f"FROM {self.source} CROSS JOIN {_SPANS} s WHERE true GROUP BY {positions} "
            f"{self.upsert(keys, values)}"
        )

    def latency(self, latency_bucket: str, ttft_bucket: str) -> str:
        keys = ("span", "q", "model", "provider", "measure", "bucket")
        return (
            f"INSERT INTO {LATENCY_TABLE} ({', '.join(keys)}, n) "
            f"SELECT s.span, {_QUARTER} / s.span * s.span, {key_sql('model')}, "
            f"{key_sql('provider')}, m.measure, "
            f"CASE m.measure WHEN {LATENCY} THEN {latency_bucket} ELSE {ttft_bucket} END, "
            f"{self.sign} * count(*) "
            f"FROM {self.source} CROSS JOIN {_SPANS} s CROSS JOIN {_MEASURES} m "
            f"WHERE CASE m.measure WHEN {LATENCY} THEN g.latency_ms ELSE g.ttft_ms END "
            f"IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6 "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET n = n + excluded.n"
        )

    def cleanup(self) -> list[str]:
        """After taking rows out: empty rollup rows go, and maxima are worked out again
        from the folded rows left (a maximum cannot be subtracted)."""
        quarter = (
            f"(SELECT 1, {_QUARTER}, {key_sql('model')}, {key_sql('provider')} FROM {self.source})"
        )
        maxima = ", ".join(
            f"{name} = (SELECT max(x.{column}) FROM generations x "
            f"WHERE x.start_ns >= {MODEL_TABLE}.q * {QUARTER_NS} "
            f"AND x.start_ns < ({MODEL_TABLE}.q + 1) * {QUARTER_NS} "
            f"AND ifnull(x.model, X'') = {MODEL_TABLE}.model "
            f"AND ifnull(x.provider, X'') = {MODEL_TABLE}.provider "
            f"AND x.rowid <= {_WATERMARK} AND x.rowid NOT IN (SELECT rid FROM {self.source}))"
            for name, column in (("latency_max", "latency_ms"), ("ttft_max", "ttft_ms"))
        )
        periods = (
            f"(SELECT s.span, {_QUARTER} / s.span * s.span FROM {self.source} "
            f"CROSS JOIN {_SPANS} s)"
        )
        return [
            f"DELETE FROM {MODEL_TABLE} WHERE requests <= 0 AND (span, q, model, provider) IN "
            f"{quarter}",
            f"UPDATE {MODEL_TABLE} SET {maxima} WHERE (span, q, model, provider) IN {quarter}",
            *(
                f"DELETE FROM {table} WHERE requests <= 0 AND (span, q) IN {periods}"
                for table in KEYED_TABLES
            ),
            f"DELETE FROM {LATENCY_TABLE} WHERE n <= 0 AND (span, q) IN {periods}",
        ]


_WATERMARK: Final = "(SELECT folded_rowid FROM rollup_state WHERE id = 1)"
_ROW_COLUMNS: Final = (
    "start_ns",
    "user_id",
    "session_id",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_femto",
    "input_cost_femto",
    "output_cost_femto",
    "cost_status",
    "latency_ms",
    "ttft_ms",
    "is_error",
)


def _triggers() -> list[str]:
    old = ", ".join(f"OLD.{column} AS {column}" for column in _ROW_COLUMNS)
    removed = _Fold(f"(SELECT OLD.rowid AS rid, {old}) g", -1)
    replaced_row = (
        f"(SELECT x.rowid AS rid, {', '.join(f'x.{c} AS {c}' for c in _ROW_COLUMNS)} "
        f"FROM generations x WHERE x.span_id = NEW.span_id AND x.trace_id = NEW.trace_id "
        f"AND x.rowid <= {_WATERMARK}) g"
    )
    replaced = _Fold(replaced_row, -1)

    def body(fold: _Fold) -> str:
        statements = [
            fold.model(),
            *(fold.by_key(table, keys) for table, keys in KEYED_TABLES.items()),
            fold.latency(bucket_sql("g.latency_ms"), bucket_sql("g.ttft_ms")),
            *fold.cleanup(),
        ]
        return "; ".join(statements)

    # The rowid SQLite gives the next row is one more than the largest left: a deleted
    # last row lowers the watermark so that a row taking its rowid is folded.
    lower = (
        "UPDATE rollup_state SET folded_rowid = "
        "(SELECT ifnull(max(rowid), 0) FROM generations) "
        "WHERE folded_rowid > (SELECT ifnull(max(rowid), 0) FROM generations)"
    )
    return [
        f"CREATE TRIGGER rollup_on_delete AFTER DELETE ON generations "
        f"WHEN OLD.rowid <= {_WATERMARK} BEGIN {body(removed)}; {lower}; END",
        f"CREATE TRIGGER rollup_on_replace BEFORE INSERT ON generations "
        f"WHEN EXISTS (SELECT 1 FROM generations x WHERE x.span_id = NEW.span_id "
        f"AND x.trace_id = NEW.trace_id AND x.rowid <= {_WATERMARK}) "
        f"BEGIN {body(replaced)}; END",
    ]


def _fold_statements() -> list[str]:
    """The writer's and the catch-up's fold of rowids ``(:lo, :hi]``.

    Each statement first sums the rows by 15-minute period and its table's keys (a
    materialized CTE: a session's turns a few seconds apart become one row), and only
    those sums are spread over the three period lengths and upserted: sums of sums are the
    same integers, so this is as exact as summing the rows, and several times cheaper for
    a batch of thousands of rows."""
    columns = ", ".join(f"rowid AS rid, {c}" if i == 0 else c for i, c in enumerate(_ROW_COLUMNS))
    rows = f"(SELECT {columns} FROM generations WHERE rowid > :lo AND rowid <= :hi) g"
    model = _Fold(rows, 1).model()
    keyed = [_fold_by_period(rows, table, keys) for table, keys in KEYED_TABLES.items()]
    # Buckets worked out once per row (not per period and measure), then counted by
    # 15-minute period before being spread over the period lengths.
    keys = ("span", "q", "model", "provider", "measure", "bucket")
    latency = (
        f"WITH g AS MATERIALIZED (SELECT {columns}, {bucket_sql('latency_ms')} AS lb, "
        f"{bucket_sql('ttft_ms')} AS tb FROM generations WHERE rowid > :lo AND rowid <= :hi), "
        f"f AS MATERIALIZED (SELECT {_QUARTER} AS q, {key_sql('model')} AS model, "
        f"{key_sql('provider')} AS provider, m.measure AS measure, "
        f"CASE m.measure WHEN {LATENCY} THEN g.lb ELSE g.tb END AS bucket, count(*) AS n "
        f"FROM g CROSS JOIN {_MEASURES} m "
        f"WHERE CASE m.measure WHEN {LATENCY} THEN g.latency_ms ELSE g.ttft_ms END "
        f"IS NOT NULL GROUP BY 1, 2, 3, 4, 5) "
        f"INSERT INTO {LATENCY_TABLE} ({', '.join(keys)}, n) "
        f"SELECT s.span, f.q / s.span * s.span, f.model, f.provider, f.measure, f.bucket, "
        f"sum(f.n) FROM f CROSS JOIN {_SPANS} s WHERE true GROUP BY 1, 2, 3, 4, 5, 6 "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET n = n + excluded.n"
    )
    return [model, *keyed, latency]


def _fold_by_period(rows: str, table: str, dimensions: Sequence[str]) -> str:
    """Adds ``rows`` to ``table``: summed by 15-minute period and ``dimensions``, then by
    each period length (see :func:`_fold_statements`)."""
    fine_keys = ", ".join(f"{key_sql(d)} AS {d}" for d in dimensions)
    fine_sums = ", ".join(f"sum({e}) AS {n}" for n, e in SUM_VALUES)
    positions = ", ".join(str(i + 1) for i in range(len(dimensions) + 1))
    fine = (
        f"f AS MATERIALIZED (SELECT {_QUARTER} AS q, {fine_keys}, {fine_sums} "
        f"FROM {rows} GROUP BY {positions})"
    )
    keys = ("span", "q", *dimensions)
    values = [(n, f"ifnull(sum(f.{n}), 0)") for n, _ in SUM_VALUES]
    group = ", ".join(str(i + 1) for i in range(len(keys)))
    return (
        f"WITH {fine} INSERT INTO {table} ({', '.join([*keys, *(n for n, _ in values)])}) "
        f"SELECT s.span, f.q / s.span * s.span, {', '.join(f'f.{d}' for d in dimensions)}, "
        f"{', '.join(e for _, e in values)} "
        f"FROM f CROSS JOIN {_SPANS} s WHERE true GROUP BY {group} "
        f"{_Fold.upsert(keys, values)}"
    )


FOLD_STATEMENTS: Final = _fold_statements()


# --- the store's rollups -------------------------------------------------------------------


class Rollups:
    """The rollups of one store file: migrates and catches up (any process), and tells
    an answer whether it may read them. Errors never reach the caller: the answer then
    reads the raw rows (exact, slower); each kind is logged once and counted."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._init_process_state(resume_build=False)
        fork_hooks(after_in_child=self._after_fork_in_child)

    def _init_process_state(self, *, resume_build: bool) -> None:
        self._lock = threading.Lock()  # one catch-up at a time in this process
        self._logged: set[str] = set()
        self._building = threading.Event()
        self._builder: BackgroundLoop | None = None
        self._resume_build = resume_build
        if resume_build:
            self._building.set()  # answers read the rows until the build has run here
        self.errors = 0
        self.last_error: str | None = None

    def _after_fork_in_child(self) -> None:
        # The parent's threads are not in a forked child: a lock one of them held at fork()
        # would stay held for ever (the child's first answer would hang), and a build it was
        # running would never end (answers would read the raw rows for ever). So: a new lock
        # and counters, and a build in progress started again by the first refresh (no
        # thread at fork time).
        self._init_process_state(resume_build=self.building)

    @property
    def building(self) -> bool:
        """Whether :meth:`start_building`'s build is still running: answers then read the
        raw rows (exact) rather than wait for it."""
        return self._building.is_set()

    def start_building(self) -> None:
        """Builds the rollups (or catches them up) on a supervised background thread, so
        that a server's first answer on a big store written by an older version, or by
        writers while nobody asked, is not a wait of a minute. Answers read the raw rows
        until it has finished."""
        if self._builder is not None:
            return
        self._building.set()
        self._builder = BackgroundLoop("cost-store-rollups", self._build, oneshot=True).start()

    def _build(self) -> None:
        try:
            self._refresh()
        finally:
            self._building.clear()

    def problems(self) -> list[str]:
        """Health reasons: the rollups could not be updated (answers then read the raw
        rows: exact, slower)."""
        if not self.errors:
            return []
        return [
            f"cost store {self.path}: its rollups could not be updated {self.errors} time(s) "
            f"(last: {self.last_error}); answers read the raw rows (exact, slower)"
        ]

    def refresh(self) -> None:
        """Builds the rollups if the store has none (or older ones) and folds the rows
        written since. Skipped when another process holds the write lock for long, and
        while :meth:`start_building`'s build runs: answers read the rows instead."""
        if self._resume_build:
            self._resume_build = False
            self.start_building()
        elif not self.building:
            self._refresh()

    @untraced  # our SQL is no span of the app's
    def _refresh(self) -> None:
        with self._lock:
            try:
                with self._writable() as connection:
                    if connection is not None:
                        catch_up(connection)
            except sqlite3.Error as error:
                self._failed(
                    "refresh", f"cannot update the cost store's rollups {self.path}", error
                )

    def built(self) -> bool:
        """Whether this version's rollups are in the store (answers may read them)."""
        try:
            with self._writable() as connection:
                return connection is not None and watermark(connection) is not None
        except sqlite3.Error:
            return False

    def fold_failed(self, error: BaseException) -> None:
        """A writer's fold failed (its rows stay above the watermark: answers fold or read
        them); counted and shown in health like the catch-up's errors."""
        self._failed("fold", f"cannot update the rollups of {self.path}", error)

    def _failed(self, kind: str, message: str, error: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{type(error).__name__}: {error}"
        if kind not in self._logged:
            self._logged.add(kind)
            _logger.warning("otel-gemini: %s (logged once): %r", message, error)

    @contextlib.contextmanager
    def _writable(self) -> Iterator[sqlite3.Connection | None]:
        try:
            info = os.lstat(self.path)
        except OSError:
            yield None
            return
        if (
            stat.S_ISLNK(info.st_mode)
            or not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.geteuid()
        ):
            # Never written through a link, nor into another user's file (as the writer,
            # _schema): the answer reads the rows instead.
            yield None
            return
        if not os.access(self.path, os.W_OK):
            yield None  # a read-only store: answers read the rows above the watermark
            return
        uri = f"file:{urllib.parse.quote(str(self.path))}?mode=rw"
        connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            # As the writer: the store is in WAL mode; a commit need not wait for fsync.
            connection.execute("PRAGMA synchronous=NORMAL")
            yield connection
        finally:
            connection.close()


def installed_version(connection: sqlite3.Connection) -> int | None:
    """The rollups' version in this store (``None``: none)."""
    try:
        row = connection.execute("SELECT version FROM rollup_state WHERE id = 1").fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else int(row[0])


def watermark(connection: sqlite3.Connection) -> int | None:
    """The rowid up to which rows are folded, if this version's rollups are there."""
    try:
        row = connection.execute(
            "SELECT version, folded_rowid FROM rollup_state WHERE id = 1"
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    if row is None or row[0] != ROLLUP_VERSION:
        return None
    return int(row[1])


def migrate(connection: sqlite3.Connection) -> bool:
    """Installs this version's rollups (empty, watermark 0) unless there; upgrades layout
    3's in place and replaces an older version's. False when a newer version's are there
    (left alone)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = installed_version(connection)
        if version == ROLLUP_VERSION:
            connection.execute("COMMIT")
            return True
        if version is not None and version > ROLLUP_VERSION:
            connection.execute("COMMIT")
            return False
        if version == 3 and ROLLUP_VERSION == 4:
            _upgrade_from_3(connection)
            connection.execute("COMMIT")
            return True
        for trigger in _TRIGGERS:
            connection.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        for table in _TABLES:
            connection.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in _ddl().split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.executemany(
            "INSERT INTO rollup_bins (upper, i) VALUES (?, ?)",
            [(upper, i) for i, upper in enumerate(BOUNDS)],
        )
        connection.execute(
            "INSERT INTO rollup_state (id, version, folded_rowid) VALUES (1, ?, 0)",
            (ROLLUP_VERSION,),
        )
        for trigger in _triggers():
            connection.execute(trigger)
        connection.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise
    return True


def fold_pending(connection: sqlite3.Connection, limit: int = CHUNK_ROWS) -> int:
    """Folds up to ``limit`` rows above the watermark, inside the caller's write
    transaction, if this version's rollups are in the store (building them is the first
    answer's job). Returns how many rowids it covered. The writer calls this after each
    batch, so answers rarely find rows to fold."""
    folded = watermark(connection)
    if folded is None:
        return 0
    top = int(connection.execute("SELECT ifnull(max(rowid), 0) FROM generations").fetchone()[0])
    high = min(top, folded + limit)
    if high <= folded:
        return 0
    for statement in FOLD_STATEMENTS:
        connection.execute(statement, {"lo": folded, "hi": high})
    connection.execute("UPDATE rollup_state SET folded_rowid = ? WHERE id = 1", (high,))
    return high - folded


def catch_up(connection: sqlite3.Connection) -> None:
    """Migrates if needed, then folds every row above the watermark, a chunk of
    :data:`CHUNK_ROWS` per transaction."""
    connection.isolation_level = None  # transactions are ours
    if watermark(connection) is None and not migrate(connection):
        return
    while True:
        top = connection.execute("SELECT ifnull(max(rowid), 0) FROM generations").fetchone()[0]
        folded = watermark(connection)
        if folded is None or folded >= top:
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            covered = fold_pending(connection)  # another process may have folded meanwhile
            connection.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise
        if not covered:
            return
