"""Segmented write-ahead log: the durable queue between the receivers and every consumer.

A request is acknowledged only after :meth:`WriteAheadLog.append` has resolved, i.e. after its
frame is written and fsynced. One writer thread does *group commit*: every append waiting
while an fsync runs is written together and shares the next fsync.

Layout under the WAL directory::

    00000000000000000000.wal    segment; the name is the global offset of its first byte
    00000000000067108913.wal
    consumers/<name>.offset     committed offset of each consumer (written atomically)

Frame: ``magic u32 | body length u32 | crc32(body) u32 | body`` where body is
``signal u8 | received_at_ns u64 | len(project) u16 | project utf-8 | payload``.
A frame that fails its length or checksum is never handed to a consumer: a torn tail is
truncated at start-up, and damage inside a segment is skipped up to the next valid frame
(both are reported).
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import logging
import mmap
import os
import struct
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# zlib's CRC-32, computed with ISA-L's carry-less multiply: ~56 GB/s against zlib's ~4 here, where
# every request is checked twice (written, then read back) and zlib's took 0.7 µs of CPU per span.
from isal.isal_zlib import crc32

from storage.fsutil import atomic_write_bytes, fsync_dir, remove_stray_temporaries

log = logging.getLogger("spanfuse.wal")

MAGIC = 0x53465731  # "SFW1"
_HEADER = struct.Struct("<III")
_META = struct.Struct("<BQH")
HEADER_SIZE = _HEADER.size
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_MAX_BODY = 1 << 30
_MAX_GROUP_BYTES = 32 * 1024 * 1024
# Payloads smaller than this are copied out of the WAL as it is read; bigger ones stay in its file
# until used (see WalRecord).
_COPIED_PAYLOAD_BYTES = 64 * 1024
_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16


class Signal:
    """Payload kinds stored in the WAL.

    ``TRACES`` / ``LOGS``: the raw OTLP protobuf export request. ``SCORES``: JSON
    ``{"scores": [score row, ...]}`` validated by ``POST /api/public/scores``. ``INGESTION``: JSON
    ``{"events": [normalised event, ...]}`` validated by ``POST /api/public/ingestion``
    (see :mod:`semconv.legacy`).
    """

    TRACES = 1
    LOGS = 2
    SCORES = 3
    INGESTION = 4
    NAMES = {1: "traces", 2: "logs", 3: "scores", 4: "ingestion"}


class WalError(Exception):
    """Base class for WAL failures reported to callers."""


class WalFull(WalError):
    """The unconsumed backlog is over its bound: the caller should retry later."""


class WalClosed(WalError):
    """The WAL is shutting down."""


class WalWriteFailed(WalError):
    """Writing or fsyncing failed (e.g. disk full); nothing of the append was kept."""


class WalRecord:
    """One durable record: where it is in the log, what it holds, and its payload.

    A record read from the log keeps its payload in the segment file until :attr:`payload` is
    first used, and a pickled one (the batches handed to worker processes) carries only where
    the payload is: copying each request through the collector's memory, a pipe and a worker's
    unpickling cost more than the worker reading it from the page cache. The reader checked the
    frame's checksum; the segment stays until every consumer has committed past the record.
    """

    __slots__ = ("_payload", "_segment", "next_offset", "offset", "project_id", "received_ns", "signal")

    def __init__(
        self,
        offset: int,
        next_offset: int,
        signal: int,
        project_id: str,
        received_ns: int,
        payload: bytes | None = None,
        segment: tuple[str, int, int] | None = None,
    ) -> None:
        if payload is None and segment is None:
            raise ValueError("a WAL record needs its payload or where it is")
        self.offset = offset
        self.next_offset = next_offset
        self.signal = signal
        self.project_id = project_id
        self.received_ns = received_ns
        self._payload = payload
        self._segment = segment  # (segment file, position of the payload in it, its size)

    @property
    def payload(self) -> bytes:
        if self._payload is None:
            assert self._segment is not None
            path, at, size = self._segment
            with open(path, "rb", buffering=0) as fh:
                fh.seek(at)
                data = fh.read(size)
            if len(data) != size:  # an I/O error: the batch is tried again, and the reader meets the damage
                raise OSError(errno.EIO, f"WAL record at offset {self.offset} is cut short in {path}")
            self._payload = data
        return self._payload

    def __reduce__(self) -> tuple[Any, ...]:
        payload = self._payload if self._segment is None else None
        fields = (self.offset, self.next_offset, self.signal, self.project_id, self.received_ns)
        return (WalRecord, (*fields, payload, self._segment))

    def __repr__(self) -> str:
        return (
            f"WalRecord(offset={self.offset}, next_offset={self.next_offset}, signal={self.signal}, "
            f"project_id={self.project_id!r})"
        )


@dataclass
class RecoveryReport:
    segments: int = 0
    truncated_bytes: int = 0
    damaged_regions: list[tuple[int, int]] = field(default_factory=list)


def encode_frame(signal: int, project_id: str, received_ns: int, payload: bytes) -> tuple[bytes, bytes]:
    """A frame as two parts written one after the other: its head (header, meta, project) and
    ``payload``, not copied (a request's hundreds of KiB joined into a new buffer cost a copy
    and the page faults of fresh memory, more than the checksum)."""
    project = project_id.encode()
    meta = _META.pack(signal, received_ns, len(project)) + project
    crc = crc32(payload, crc32(meta))
    return _HEADER.pack(MAGIC, len(meta) + len(payload), crc) + meta, payload


def _write_all(fd: int, parts: list[bytes]) -> None:
    """Write ``parts`` in order with as few system calls as the OS allows (partial writes resumed)."""
    views = [memoryview(part) for part in parts if part]
    first = 0
    while first < len(views):
        written = os.writev(fd, views[first : first + _IOV_MAX])
        while written:
            size = len(views[first])
            if written < size:
                views[first] = views[first][written:]
                break
            written -= size
            first += 1


def _frame_at(buf: bytes | mmap.mmap, pos: int) -> int:
    """Length of the valid frame at ``pos`` in ``buf``, or 0 if there is none."""
    if pos + HEADER_SIZE > len(buf):
        return 0
    magic, length, crc = _HEADER.unpack_from(buf, pos)
    end = pos + HEADER_SIZE + length
    if magic != MAGIC or length < _META.size or length > _MAX_BODY or end > len(buf):
        return 0
    with memoryview(buf) as view:  # (checked in place: a slice of a segment would be a copy)
        if crc32(view[pos + HEADER_SIZE : end]) != crc:
            return 0
    return HEADER_SIZE + length


def _next_valid_frame(buf: bytes | mmap.mmap, pos: int) -> int:
    """Position of the next valid frame after ``pos``, or -1."""
    search = pos + 1
    while True:
        found = buf.find(_MAGIC_BYTES, search)
        if found < 0:
            return -1
        if _frame_at(buf, found):
            return found
        search = found + 1


@dataclass
class _Pending:
    frame: tuple[bytes, bytes]  # see encode_frame
    size: int
    future: Future[int]


class WriteAheadLog:
    """Append-only, segmented, group-committed log with per-consumer committed offsets."""

    def __init__(
        self,
        directory: str | Path,
        *,
        segment_bytes: int = 64 * 1024 * 1024,
        max_backlog_bytes: int = 1024 * 1024 * 1024,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.max_backlog_bytes = max_backlog_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: deque[_Pending] = deque()
        self._queued_bytes = 0
        self._segments: list[int] = []  # start offsets, ascending
        self._fd = -1
        self._durable = 0  # global offset up to which data is fsynced
        self._committed: dict[str, int] = {}
        self._closed = False
        self._thread: threading.Thread | None = None
        self.fsyncs = 0
        self.fsync_seconds = 0.0
        self.recovery = RecoveryReport()

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> RecoveryReport:
        """Recover the log (truncate a torn tail), load consumer offsets, start the writer."""
        (self.directory / "consumers").mkdir(parents=True, exist_ok=True)
        remove_stray_temporaries(self.directory)
        self._segments = sorted(int(p.stem) for p in self.directory.glob("*.wal") if p.stem.isdigit())
        if not self._segments:
            self._segments = [0]
            self._segment_path(0).touch()
            fsync_dir(self.directory)
        report = self.recovery = self._recover_tail()
        report.segments = len(self._segments)
        last = self._segments[-1]
        self._fd = os.open(self._segment_path(last), os.O_WRONLY | os.O_APPEND)
        self._durable = last + os.fstat(self._fd).st_size
        for path in (self.directory / "consumers").glob("*.offset"):
            with contextlib.suppress(ValueError):
                self._committed[path.stem] = int(path.read_text().strip())
        self._thread = threading.Thread(target=self._writer_loop, name="wal-writer", daemon=True)
        self._thread.start()
        return report

    def close(self) -> None:
        """Finish the appends already queued, then stop the writer."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _segment_path(self, start: int) -> Path:
        return self.directory / f"{start:020d}.wal"

    def _recover_tail(self) -> RecoveryReport:
        """Validate the newest segment; cut a torn tail, remember damage followed by good data."""
        report = RecoveryReport()
        start = self._segments[-1]
        path = self._segment_path(start)
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            size = _frame_at(data, pos)
            if size:
                pos += size
                continue
            resume = _next_valid_frame(data, pos)
            if resume < 0:
                report.truncated_bytes = len(data) - pos
                with open(path, "r+b") as fh:
                    fh.truncate(pos)
                    os.fsync(fh.fileno())
                log.warning(
                    "wal torn tail truncated segment=%s at=%d dropped_bytes=%d",
                    path.name,
                    pos,
                    report.truncated_bytes,
                )
                break
            report.damaged_regions.append((start + pos, start + resume))
            log.warning("wal damaged region skipped segment=%s from=%d to=%d", path.name, pos, resume)
            pos = resume
        return report

    # ------------------------------------------------------------------ writing
    @property
    def durable_offset(self) -> int:
        return self._durable

    def backlog_bytes(self) -> int:
        """Bytes acknowledged but not yet committed by the slowest consumer."""
        with self._lock:
            return self._backlog_locked()

    def _backlog_locked(self) -> int:
        if not self._committed:
            return 0
        return self._durable + self._queued_bytes - min(self._committed.values())

    def has_room(self) -> bool:
        """False when the backlog is at its bound (a cheap check before reading a request)."""
        with self._lock:
            return self._backlog_locked() < self.max_backlog_bytes

    def size_bytes(self) -> int:
        """Bytes of WAL on disk."""
        with self._lock:
            return self._durable - self._segments[0]

    def append(self, signal: int, project_id: str, payload: bytes, received_ns: int | None = None) -> Future[int]:
        """Queue one record; the future resolves to its offset once it is fsynced.

        Raises :class:`WalFull` when the backlog is over its bound and :class:`WalClosed`
        during shutdown; the future fails with :class:`WalWriteFailed` on an I/O error.
        """
        frame = encode_frame(signal, project_id, received_ns or time.time_ns(), payload)
        size = len(frame[0]) + len(frame[1])
        future: Future[int] = Future()
        with self._cond:
            if self._closed:
                raise WalClosed("the write-ahead log is closed")
            if self._backlog_locked() + size > self.max_backlog_bytes:
                raise WalFull("write-ahead log backlog is over its bound; retry later")
            self._queue.append(_Pending(frame, size, future))
            self._queued_bytes += size
            self._cond.notify_all()
        return future

    def _take_group(self) -> tuple[list[_Pending], int] | None:
        """The appends waiting (up to a group's bound) and their bytes, or None once closed."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            group: list[_Pending] = []
            size = 0
            while self._queue and (not group or size + self._queue[0].size <= _MAX_GROUP_BYTES):
                item = self._queue.popleft()
                group.append(item)
                size += item.size
            return group, size

    def _writer_loop(self) -> None:
        while (taken := self._take_group()) is not None:
            group, size = taken
            try:
                self._maybe_roll()
                self._write_durably([part for item in group for part in item.frame])
            except OSError as exc:
                with self._cond:
                    self._queued_bytes -= size
                error = WalWriteFailed(f"write-ahead log write failed: {exc.strerror or exc}")
                log.error("wal write failed error=%s records=%d", exc, len(group))
                for item in group:
                    item.future.set_exception(error)
                continue
            offset = self._durable
            with self._cond:
                self._durable += size
                self._queued_bytes -= size
                self._cond.notify_all()
            for item in group:
                item.future.set_result(offset)
                offset += item.size

    def _write_durably(self, parts: list[bytes]) -> None:
        before = self._durable - self._segments[-1]
        try:
            _write_all(self._fd, parts)
            started = time.perf_counter()
            if self.fsync:
                os.fdatasync(self._fd)
            self.fsync_seconds += time.perf_counter() - started
            self.fsyncs += 1
        except OSError:
            # Leave no partial frame behind: a later successful append must follow good data.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, before)
            raise

    def _maybe_roll(self) -> None:
        if self._durable - self._segments[-1] < self.segment_bytes:
            return
        start = self._durable
        fd = os.open(self._segment_path(start), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        fsync_dir(self.directory)
        os.close(self._fd)
        self._fd = fd
        with self._lock:
            self._segments.append(start)

    # ------------------------------------------------------------------ consumers
    def consumer(self, name: str, *, new_at_end: bool = False) -> WalReader:
        """A reader positioned at ``name``'s committed offset.

        A consumer without one starts at the oldest data, or with ``new_at_end`` at the end of the
        log (a forwarder added to the configuration forwards what arrives from then on); that
        starting point is persisted at once so a crash cannot move it.
        """
        with self._lock:
            first = self._segments[0]
            is_new = name not in self._committed
            offset = self._committed.get(name, self._durable if new_at_end else first)
            if offset < first or offset > self._durable:
                log.warning("wal consumer offset out of range consumer=%s offset=%d", name, offset)
                offset = min(max(offset, first), self._durable)
            self._committed[name] = offset
        if is_new and new_at_end:
            atomic_write_bytes(self._offset_path(name), str(offset).encode())
        return WalReader(self, name, offset)

    def drop_consumer(self, name: str) -> bool:
        """Forget ``name`` (e.g. a forwarder no longer configured) so it stops pinning segments.

        Returns whether the consumer was known.
        """
        with self._cond:
            known = self._committed.pop(name, None) is not None
        with contextlib.suppress(FileNotFoundError):
            self._offset_path(name).unlink()
            fsync_dir(self.directory / "consumers")
        self._release_segments()
        return known

    def _offset_path(self, name: str) -> Path:
        return self.directory / "consumers" / f"{name}.offset"

    def committed(self) -> dict[str, int]:
        with self._lock:
            return dict(self._committed)

    def commit(self, name: str, offset: int) -> None:
        """Persist ``name``'s offset and delete the segments every consumer has passed."""
        atomic_write_bytes(self._offset_path(name), str(offset).encode())
        with self._cond:
            self._committed[name] = offset
        self._release_segments()

    def _release_segments(self) -> None:
        """Delete the segments every consumer has passed."""
        with self._cond:
            if not self._committed:
                return
            floor = min(self._committed.values())
            removable = [s for s, nxt in zip(self._segments, self._segments[1:], strict=False) if nxt <= floor]
            self._segments = self._segments[len(removable) :]
            self._cond.notify_all()
        for start in removable:
            with contextlib.suppress(FileNotFoundError):
                self._segment_path(start).unlink()
        if removable:
            fsync_dir(self.directory)

    def wait_for_data(self, offset: int, timeout: float) -> bool:
        """Block until data beyond ``offset`` is durable, the log closes, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._durable <= offset and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self._durable > offset

    def _locate(self, offset: int) -> tuple[int, int]:
        with self._lock:
            index = bisect.bisect_right(self._segments, offset) - 1
            start = self._segments[max(index, 0)]
            end = self._segments[index + 1] if index + 1 < len(self._segments) else self._durable
            return start, end


class WalReader:
    """Reads durable records for one consumer; :meth:`commit` persists its progress."""

    def __init__(self, wal: WriteAheadLog, name: str, offset: int) -> None:
        self.wal = wal
        self.name = name
        self.position = offset
        self.skipped_bytes = 0

    def read(self, max_bytes: int = 16 * 1024 * 1024) -> list[WalRecord]:
        """Return durable records from the current position, about ``max_bytes`` at most.

        The segment is mapped, not read: a frame's checksum is checked in place, and a payload
        of :data:`_COPIED_PAYLOAD_BYTES` or more stays in the file (see :class:`WalRecord`)."""
        records: list[WalRecord] = []
        budget = max_bytes
        while budget > 0 and self.position < self.wal.durable_offset:
            start, end = self.wal._locate(self.position)
            if self.position >= end:  # at the boundary of a segment that is being rolled
                break
            path = self.wal._segment_path(start).absolute()  # workers read payloads from it
            with open(path, "rb") as fh:
                present = min(end, start + os.fstat(fh.fileno()).st_size)
                if present <= self.position:  # the file was cut short behind the log's back
                    self._skip(end - self.position)
                    continue
                segment = str(path)
                with mmap.mmap(fh.fileno(), present - start, access=mmap.ACCESS_READ) as mapped:
                    while budget > 0 and self.position < present:
                        record = self._read_frame(mapped, segment, start)
                        if record is None:
                            self._skip_damage(mapped, start)
                            continue
                        records.append(record)
                        budget -= record.next_offset - record.offset
        return records

    def _read_frame(self, mapped: mmap.mmap, segment: str, start: int) -> WalRecord | None:
        """The valid frame at the current position (and move past it), or None."""
        pos = self.position - start
        size = _frame_at(mapped, pos)
        if not size:
            return None
        body, end = pos + HEADER_SIZE, pos + size
        signal, received_ns, project_size = _META.unpack_from(mapped, body)
        at = body + _META.size + project_size
        if at > end:
            return None
        project = mapped[body + _META.size : at].decode()
        next_offset = self.position + size
        if end - at < _COPIED_PAYLOAD_BYTES:
            payload, where = mapped[at:end], None
        else:
            payload, where = None, (segment, at, end - at)
        record = WalRecord(self.position, next_offset, signal, project, received_ns, payload, where)
        self.position = next_offset
        return record

    def _skip_damage(self, mapped: mmap.mmap, start: int) -> None:
        """Move past damaged bytes to the next valid frame of the mapped segment (or to its end)."""
        pos = self.position - start
        resume = _next_valid_frame(mapped, pos)
        self._skip((resume if resume >= 0 else len(mapped)) - pos)

    def _skip(self, size: int) -> None:
        log.error("wal damaged data skipped consumer=%s from=%d bytes=%d", self.name, self.position, size)
        self.skipped_bytes += size
        self.position += size

    def commit(self, offset: int | None = None) -> None:
        """Persist progress up to ``offset`` (default: everything read so far)."""
        self.wal.commit(self.name, self.position if offset is None else offset)

    def lag_bytes(self) -> int:
        return self.wal.durable_offset - self.wal.committed().get(self.name, self.position)
