"""One optimisation's Optuna journal in Postgres: the backend of Optuna's JournalStorage that
keeps a study's operations (trial created, parameter set, value told, ...) as rows of
`optimization_journal`, so that a claim after a restart replays them and resumes the study.

Only the worker holding the optimisation's claim writes its journal, so the journal is read
from Postgres once and then kept in memory, and new operations are written in batches (at most
`flush_every_s` apart, and on flush()). What is stored is always a prefix of the journal, which
Optuna replays to a consistent study: a trial asked for but whose result was not written yet is
a RUNNING trial that the next run fails and asks again. Should two workers write one journal
(a claim taken over while its worker still runs), the primary key refuses the second's rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

import psycopg
from optuna.storages.journal import BaseJournalBackend

FLUSH_EVERY_S = 1.0
"""The most time between writes of new operations while a study runs."""


class OptimizationJournal(BaseJournalBackend):
    """Optuna's journal backend on one optimisation's rows (blocking: use it from a thread)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        optimization_id: UUID,
        *,
        flush_every_s: float = FLUSH_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conn = conn
        self.optimization_id = optimization_id
        self.flush_every_s = flush_every_s
        self._clock = clock
        self._logs: list[dict[str, Any]] | None = None
        self._stored = 0  # logs[:stored] are in Postgres, the rest waits for flush()
        self._flushed_at = clock()

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        if self._logs is None:
            rows = self.conn.execute(
                "SELECT log FROM optimization_journal WHERE optimization_id = %s ORDER BY seq",
                (self.optimization_id,),
            ).fetchall()
            self._logs = [json.loads(row[0]) for row in rows]
            self._stored = len(self._logs)
        return self._logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if self._logs is None:
            self.read_logs(0)
        assert self._logs is not None
        self._logs.extend(logs)
        if self._clock() - self._flushed_at >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        """Write the operations not stored yet, in one transaction."""
        self._flushed_at = self._clock()
        if self._logs is None or self._stored == len(self._logs):
            return
        rows = [
            # Optuna's logs hold floats that JSON writes as NaN or Infinity: stored as text.
            (self.optimization_id, seq, json.dumps(log))
            for seq, log in enumerate(self._logs[self._stored :], start=self._stored)
        ]
        with self.conn.transaction(), self.conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO optimization_journal (optimization_id, seq, log) VALUES (%s, %s, %s)",
                rows,
            )
        self._stored = len(self._logs)
