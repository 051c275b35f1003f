"""Per-file rollups of daily metrics: what one compacted observations file adds to each model's day.

Daily metrics (:func:`storage.reads.metrics.daily_metrics`) spend nearly all their time reading
observations — the usage map above all — to fold them into a few rows per (day, model). A
partition that compaction has folded into one file holds each observation once (compaction
drops duplicates), and that file never changes: it is written once under its final name and
only ever removed whole (a later compaction writes a new name). So its per-(day, model) rows
can be computed once and remembered by the file's path, as :mod:`storage.partition_index`
remembers trace ids.

The rows are raw: before tombstones, before any filter. A caller may use them for a day only
when the file is that day's whole partition, every row of the file started on that day, the
day lies wholly within the request's time range, no trace filter applies, and no deleted trace
may be in the file — otherwise it reads the day's rows as usual. Late data for a day lands in a
new file of its partition, which then is no longer one compacted file, so the day is read until
compaction folds it again (into a new name, computed afresh).

Memory: one row per model per file (a few hundred bytes per day and project).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.query import TableQuery


@dataclass(frozen=True)
class FileRollup:
    """The per-(day, model) rows of one file; ``usable`` is false when its rows started on days
    other than its partition's (then they cannot stand for the partition's day)."""

    usable: bool
    rows: tuple[dict[str, Any], ...]


class DailyRollups:
    """Rollups of one :class:`TableQuery`'s observations files, by path; safe to share between threads."""

    def __init__(self) -> None:
        self._files: dict[Path, FileRollup] = {}
        self._lock = threading.Lock()

    def get(
        self, paths: Iterable[Path], compute: Callable[[list[Path]], dict[Path, FileRollup]]
    ) -> dict[Path, FileRollup]:
        """The rollups of ``paths``; those not known yet come from one ``compute`` call."""
        paths = list(paths)
        with self._lock:
            known = {p: self._files[p] for p in paths if p in self._files}
        missing = [p for p in paths if p not in known]
        if missing:
            found = compute(missing)
            with self._lock:
                self._files.update(found)
            known.update(found)
        return known

    def forget_others(self, project_dir: Path, listed: set[Path]) -> None:
        """Drop the rollups of files under ``project_dir`` that are no longer ``listed`` (compacted
        away, or removed by retention)."""
        with self._lock:
            for gone in [p for p in self._files if p.parent.parent == project_dir and p not in listed]:
                del self._files[gone]


_ROLLUPS: weakref.WeakKeyDictionary[TableQuery, DailyRollups] = weakref.WeakKeyDictionary()
_ROLLUPS_LOCK = threading.Lock()


def rollups_of(tq: TableQuery) -> DailyRollups:
    """The rollups kept for ``tq`` (created on first use, gone with it)."""
    with _ROLLUPS_LOCK:
        found = _ROLLUPS.get(tq)
        if found is None:
            found = _ROLLUPS[tq] = DailyRollups()
        return found
