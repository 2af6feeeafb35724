"""`RunStore`: evaluations and runs kept in one SQLite file, reloadable after a restart.

The schema (version `SCHEMA_VERSION`, in the ``meta`` table) is documented
in design_docs/evaluation.md. Each example is written in its own transaction
as soon as it finishes (and again when it is scored), in WAL mode: a process
killed mid-evaluation leaves a store that opens, with the record still marked
"running" and every completed example in it. Nothing from a resource config
is written (no endpoints, no keys); request options whose name looks like a
credential are replaced by ``"***"`` (see `plait.evaluation.snapshot`).
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from plait.errors import StoreError
from plait.evaluation.result import EvalResult, EvalRow
from plait.evaluation.snapshot import run_snapshot
from plait.execution.args import Args
from plait.graph import InferenceGraph
from plait.graph_analysis import encode

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    module TEXT NOT NULL,
    metric TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    examples INTEGER NOT NULL,
    params TEXT NOT NULL,
    info TEXT NOT NULL,
    score REAL,
    tokens INTEGER,
    cost REAL
);
CREATE TABLE IF NOT EXISTS graphs (hash TEXT PRIMARY KEY, graph TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    record_id INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    key TEXT NOT NULL,
    input TEXT NOT NULL,
    target TEXT,
    output TEXT,
    ok INTEGER NOT NULL,
    score REAL,
    message TEXT NOT NULL,
    error TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    latency REAL,
    finished_at REAL NOT NULL,
    run TEXT,
    PRIMARY KEY (record_id, idx)
);
"""
_ROW_COLUMNS = (
    "idx, key, input, target, output, ok, score, message, error, "
    "input_tokens, output_tokens, cost, latency, run"
)


def _dump(value: Any) -> str:
    if isinstance(value, Args):  # an example with several inputs: reloaded as an Args
        data = {"$args": encode(list(value.args)), "kwargs": encode(value.kwargs)}
    else:
        data = encode(value)
    return json.dumps(data, ensure_ascii=False, allow_nan=False)


def _load(text: str | None) -> Any:
    data = None if text is None else json.loads(text)
    if isinstance(data, dict) and set(data) == {"$args", "kwargs"}:
        return Args(*data["$args"], **data["kwargs"])
    return data


class RunStore:
    """A SQLite file of evaluations and runs: ``RunStore("runs.db")``.

    ``list()`` (or ``to_dataframe()``) shows what is stored; ``load(id)``
    returns an `EvalResult` (the latest with ``load()``); ``rows(id)`` a
    DataFrame of one record's examples. Pass the store (or its path) as
    ``store=`` to `plait.evaluate`, `plait.execute`, `plait.run_batch` or
    `ExecutionSettings`, or to `train`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._graphs: dict[int, tuple[str, InferenceGraph]] = {}
        if self.path.is_dir():
            raise StoreError(f"run store {str(self.path)!r} is a directory; give a file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # In WAL mode, NORMAL survives any process crash; only a power cut may drop the
            # last commits (the file stays consistent either way). FULL fsyncs every example.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{str(self.path)!r} is not a plait run store ({exc}); give a new path, "
                "or the path of a file RunStore created"
            ) from None

    def _migrate(self) -> None:
        with self._tx() as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if found is None:
                conn.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?), ('created_at', ?)",
                    (str(SCHEMA_VERSION), str(time.time())),
                )
            elif int(found[0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"run store {str(self.path)!r} has schema version {found[0]}, newer than this "
                    f"plait understands ({SCHEMA_VERSION}); upgrade plait to read it"
                )

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn)

    @property
    def schema_version(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        count = self._conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        return f"RunStore({str(self.path)!r}, {count} records)"

    # -- writing --------------------------------------------------------------------------

    def begin(
        self,
        kind: str,
        *,
        name: str,
        module: str,
        metric: str = "",
        examples: int = 0,
        params: dict[str, Any] | None = None,
        info: dict[str, Any] | None = None,
    ) -> int:
        """Start a record (status "running"); returns its id."""
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO records (kind, name, module, metric, status, started_at, examples, "
                "params, info) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (
                    kind,
                    name,
                    module,
                    metric,
                    time.time(),
                    examples,
                    _dump(params or {}),
                    _dump(info or {}),
                ),
            )
            return int(cursor.lastrowid or 0)

    def write_row(self, record_id: int, row: EvalRow) -> None:
        """Insert or replace one example of a record (one transaction)."""
        run = row.stored_run
        if row.result is not None:
            run = run_snapshot(row.result, graph=self._graph_hash(row.result.graph))
        values = (
            record_id,
            row.index,
            row.key,
            _dump(row.input),
            _dump(row.target),
            _dump(row.output),
            int(row.ok),
            row.score,
            row.message,
            row.error,
            row.input_tokens,
            row.output_tokens,
            row.cost,
            row.latency,
            None if run is None else json.dumps(run, ensure_ascii=False, default=repr),
            time.time(),
        )
        with self._tx() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO rows (record_id, {_ROW_COLUMNS}, finished_at) "
                f"VALUES ({', '.join('?' * len(values))})",
                values,
            )

    def _graph_hash(self, graph: InferenceGraph) -> str:
        """The hash a row's run refers to its graph by; the graph is written once per store."""
        known = self._graphs.get(id(graph))
        if known is not None and known[1] is graph:
            return known[0]
        text = json.dumps(graph.to_dict(), ensure_ascii=False, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:32]  # of the whole JSON form
        with self._tx() as conn:
            conn.execute("INSERT OR IGNORE INTO graphs VALUES (?, ?)", (digest, text))
        self._graphs[id(graph)] = (digest, graph)  # the graph is kept: its id stays its own
        return digest

    def _stored_run(self, text: str | None, graphs: dict[str, Any]) -> dict[str, Any] | None:
        run = _load(text)
        if run is not None and isinstance(run.get("graph"), str):
            digest = run["graph"]
            if digest not in graphs:
                found = self._conn.execute(
                    "SELECT graph FROM graphs WHERE hash = ?", (digest,)
                ).fetchone()
                graphs[digest] = _load(found[0]) if found else None
            run["graph"] = graphs[digest]
        return run

    def write_score(self, record_id: int, row: EvalRow) -> None:
        """Update the score, message and error of an example already written."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE rows SET score = ?, message = ?, error = ? WHERE record_id = ? AND idx = ?",
                (row.score, row.message, row.error, record_id, row.index),
            )

    def finish(
        self,
        record_id: int,
        status: str,
        result: EvalResult | None = None,
        *,
        summary: tuple[float | None, int, float] | None = None,
    ) -> None:
        """Mark a record finished, with its summary (score, tokens, cost) from ``result`` or given."""
        score, tokens, cost = summary or (None, None, None)
        if result is not None:
            score, tokens, cost = result.score, result.tokens, result.cost
        with self._tx() as conn:
            conn.execute(
                "UPDATE records SET status = ?, finished_at = ?, score = ?, tokens = ?, cost = ? "
                "WHERE id = ?",
                (status, time.time(), score, tokens, cost, record_id),
            )

    def delete(self, record_id: int) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM records WHERE id = ?", (record_id,))

    # -- reading --------------------------------------------------------------------------

    def list(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every record (oldest first): id, kind, name, module, status, times, examples, score."""
        where, args = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        cursor = self._conn.execute(
            "SELECT r.id, r.kind, r.name, r.module, r.metric, r.status, r.started_at, "
            "r.finished_at, r.examples, (SELECT COUNT(*) FROM rows WHERE record_id = r.id), "
            f"r.score, r.tokens, r.cost FROM records r {where} ORDER BY r.id",
            args,
        )
        names = [
            "id",
            "kind",
            "name",
            "module",
            "metric",
            "status",
            "started_at",
            "finished_at",
            "examples",
            "completed",
            "score",
            "tokens",
            "cost",
        ]
        return [dict(zip(names, found, strict=True)) for found in cursor.fetchall()]

    def to_dataframe(self, kind: str | None = None) -> Any:
        """`list` as a pandas DataFrame indexed by id."""
        import pandas as pd  # optional extra: plait[jupyter]

        frame = pd.DataFrame(self.list(kind))
        return frame.set_index("id") if len(frame) else frame

    def _record(self, record_id: int | None) -> tuple[Any, ...]:
        if record_id is None:
            found = self._conn.execute("SELECT * FROM records ORDER BY id DESC LIMIT 1").fetchone()
            if found is None:
                raise StoreError(f"run store {str(self.path)!r} holds no records yet")
            return found
        found = self._conn.execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchone()
        if found is None:
            ids = [r[0] for r in self._conn.execute("SELECT id FROM records ORDER BY id")]
            raise StoreError(
                f"run store {str(self.path)!r} has no record {record_id!r}; its ids are "
                f"{', '.join(map(str, ids[-20:])) or '(none)'} (see RunStore.list())"
            )
        return found

    def load(self, record_id: int | None = None) -> EvalResult:
        """Record ``record_id`` (default: the latest) as an `EvalResult`, rows in example order."""
        (rid, kind, name, module, metric, status, started, finished, examples, params, info) = (
            self._record(record_id)[:11]
        )
        graphs: dict[str, Any] = {}
        rows = [
            EvalRow(
                index=idx,
                key=key,
                input=_load(inp),
                target=_load(target),
                output=_load(output),
                ok=bool(ok),
                score=score,
                message=message,
                error=error,
                input_tokens=tin,
                output_tokens=tout,
                cost=cost,
                latency=latency,
                stored_run=self._stored_run(run, graphs),
            )
            for (
                idx,
                key,
                inp,
                target,
                output,
                ok,
                score,
                message,
                error,
                tin,
                tout,
                cost,
                latency,
                run,
            ) in self._conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM rows WHERE record_id = ? ORDER BY idx", (rid,)
            )
        ]
        return EvalResult(
            rows,
            name=name,
            kind=kind,
            module=module,
            metric=metric,
            params=_load(params),
            status=status,
            started_at=started,
            finished_at=finished,
            examples=examples,
            record_id=rid,
            store=str(self.path),
            info=_load(info),
        )

    def rows(self, record_id: int | None = None) -> Any:
        """One record's examples as a DataFrame (`EvalResult.to_dataframe`)."""
        return self.load(record_id).to_dataframe()

    def history(self, name: str) -> builtins.list[EvalResult]:
        """Every record called ``name`` (a `train` run's validations), oldest first."""
        ids = [r["id"] for r in self.list() if r["name"] == name]
        return [self.load(i) for i in ids]


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def open_store(store: Any) -> tuple[RunStore, bool]:
    """A `RunStore` from a store or a path, and whether it was opened here (then close it).

    Opened now, so a bad path fails before any run.
    """
    if isinstance(store, RunStore):
        return store, False
    if isinstance(store, str | os.PathLike):
        return RunStore(store), True
    raise StoreError(f"store must be a path or a plait.RunStore; got {store!r:.60}")
