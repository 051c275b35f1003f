"""The write-ahead log: durability, group commit, recovery, consumers and its bound."""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path

import pytest

from storage.wal import HEADER_SIZE, Signal, WalFull, WalWriteFailed, WriteAheadLog


def _open(path: Path, **kwargs) -> WriteAheadLog:
    wal = WriteAheadLog(path, **kwargs)
    wal.open()
    return wal


def _segments(path: Path) -> list[Path]:
    return sorted(path.glob("*.wal"))


def test_records_read_back_in_order_with_their_metadata(tmp_path):
    wal = _open(tmp_path)
    offsets = [
        wal.append(Signal.TRACES, f"p{i}", f"payload {i}".encode(), received_ns=1000 + i).result() for i in range(5)
    ]
    reader = wal.consumer("parquet")
    records = reader.read()
    assert [r.offset for r in records] == offsets
    assert [(r.project_id, r.payload, r.received_ns, r.signal) for r in records] == [
        (f"p{i}", f"payload {i}".encode(), 1000 + i, Signal.TRACES) for i in range(5)
    ]
    assert records[-1].next_offset == wal.durable_offset
    wal.close()


def test_a_big_payload_is_handed_on_by_where_it_is_and_read_from_the_log_when_used(tmp_path):
    # A batch of records goes to a worker process pickled: the big payloads as where they are in
    # the segment (the worker reads them from the page cache), the small ones as bytes.
    wal = _open(tmp_path, segment_bytes=1 << 20)
    big = [os.urandom(700_000) for _ in range(3)]  # past one segment: the records span two files
    small = b"a few spans"
    for payload in (big[0], small, big[1], big[2]):
        wal.append(Signal.TRACES, "p", payload).result()
    records = wal.consumer("parquet").read()
    sent = pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(sent) < 2_000  # no payload of 700 kB went with them
    received = pickle.loads(sent)
    assert [r.payload for r in received] == [big[0], small, big[1], big[2]]
    assert [(r.offset, r.next_offset, r.project_id) for r in received] == [
        (r.offset, r.next_offset, r.project_id) for r in records
    ]
    assert len(_segments(tmp_path)) == 2
    with open(_segments(tmp_path)[0], "r+b") as fh:
        fh.truncate(100_000)  # cut short behind the log's back: an error, never a short payload
    with pytest.raises(OSError, match="cut short"):  # retryable: a batch is tried again
        _ = pickle.loads(sent)[0].payload
    wal.close()


def test_concurrent_appends_share_fsyncs(tmp_path):
    wal = _open(tmp_path)
    barrier = threading.Barrier(32)
    results: list[int] = []

    def append() -> None:
        barrier.wait()
        results.append(wal.append(Signal.TRACES, "p", b"x" * 1000).result())

    threads = [threading.Thread(target=append) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 32
    assert wal.fsyncs < 32  # group commit: fewer fsyncs than appends
    wal.close()


def test_committed_offsets_survive_reopen_and_reading_resumes_there(tmp_path):
    wal = _open(tmp_path)
    for i in range(4):
        wal.append(Signal.TRACES, "p", bytes([i])).result()
    reader = wal.consumer("parquet")
    first_two = reader.read(max_bytes=1)  # at least one record per read
    reader.commit()
    wal.close()

    wal = _open(tmp_path)
    rest = wal.consumer("parquet").read()
    assert [r.payload for r in first_two + rest] == [bytes([i]) for i in range(4)]
    assert rest[0].offset == first_two[-1].next_offset
    wal.close()


def test_segments_roll_and_are_deleted_once_every_consumer_passed_them(tmp_path):
    wal = _open(tmp_path, segment_bytes=256)
    fast, slow = wal.consumer("fast"), wal.consumer("slow")
    for _ in range(6):
        wal.append(Signal.LOGS, "p", b"y" * 300).result()  # one frame fills a segment
    assert len(_segments(tmp_path)) == 6
    fast.read()
    fast.commit()
    assert len(_segments(tmp_path)) == 6  # "slow" still needs them
    slow.read()
    slow.commit()
    assert len(_segments(tmp_path)) == 1  # only the active segment is kept
    assert wal.backlog_bytes() == 0
    wal.close()


def test_torn_tail_is_truncated_and_never_read(tmp_path):
    wal = _open(tmp_path)
    wal.append(Signal.TRACES, "p", b"kept").result()
    wal.append(Signal.TRACES, "p", b"torn record").result()
    wal.close()
    segment = _segments(tmp_path)[-1]
    size = segment.stat().st_size
    with open(segment, "r+b") as fh:
        fh.truncate(size - 3)  # the crash cut the last frame short

    wal = WriteAheadLog(tmp_path)
    report = wal.open()
    assert report.truncated_bytes == HEADER_SIZE + len(b"torn record") + 12 - 3  # frame minus 3 bytes
    assert [r.payload for r in wal.consumer("c").read()] == [b"kept"]
    # New appends follow the good data.
    wal.append(Signal.TRACES, "p", b"after").result()
    assert [r.payload for r in wal.consumer("d").read()] == [b"kept", b"after"]
    wal.close()


def test_garbage_tail_is_truncated(tmp_path):
    wal = _open(tmp_path)
    wal.append(Signal.TRACES, "p", b"kept").result()
    wal.close()
    with open(_segments(tmp_path)[-1], "ab") as fh:
        fh.write(os.urandom(100))
    wal = WriteAheadLog(tmp_path)
    assert wal.open().truncated_bytes == 100
    assert [r.payload for r in wal.consumer("c").read()] == [b"kept"]
    wal.close()


def test_a_segment_cut_short_while_open_is_read_up_to_the_cut_and_the_rest_reported(tmp_path):
    # Not the log's doing (a tool, a broken disk): the reader maps what is there and never reads
    # past the file's end, and the bytes that are gone count as skipped.
    wal = _open(tmp_path)
    offsets = [wal.append(Signal.TRACES, "p", f"record {i}".encode()).result() for i in range(3)]
    with open(_segments(tmp_path)[-1], "r+b") as fh:
        fh.truncate(offsets[1] + 5)  # into the second frame's header
    reader = wal.consumer("c")
    assert [r.payload for r in reader.read()] == [b"record 0"]
    assert reader.position == wal.durable_offset
    assert reader.skipped_bytes == wal.durable_offset - offsets[1]
    wal.close()


def test_damage_inside_a_segment_is_skipped_and_later_records_survive(tmp_path):
    wal = _open(tmp_path)
    offsets = [wal.append(Signal.TRACES, "p", f"record {i}".encode()).result() for i in range(3)]
    wal.close()
    segment = _segments(tmp_path)[-1]
    with open(segment, "r+b") as fh:  # flip a byte in the middle record's payload
        fh.seek(offsets[2] - 2)
        byte = fh.read(1)
        fh.seek(offsets[2] - 2)
        fh.write(bytes([byte[0] ^ 0xFF]))

    wal = WriteAheadLog(tmp_path)
    report = wal.open()
    assert report.truncated_bytes == 0
    assert report.damaged_regions == [(offsets[1], offsets[2])]
    reader = wal.consumer("c")
    assert [r.payload for r in reader.read()] == [b"record 0", b"record 2"]
    assert reader.skipped_bytes == offsets[2] - offsets[1]
    wal.close()


def test_backlog_over_the_bound_refuses_appends_until_consumed(tmp_path):
    wal = _open(tmp_path, max_backlog_bytes=4096)
    reader = wal.consumer("parquet")
    with pytest.raises(WalFull):
        for _ in range(100):
            wal.append(Signal.TRACES, "p", b"z" * 500).result()
    durable = wal.durable_offset
    assert 4096 - 600 < durable <= 4096
    reader.read()
    reader.commit()
    wal.append(Signal.TRACES, "p", b"z" * 500).result()  # room again
    wal.close()


def test_failed_write_fails_the_append_and_leaves_the_log_consistent(tmp_path, monkeypatch):
    wal = _open(tmp_path)
    wal.append(Signal.TRACES, "p", b"before").result()
    real_fdatasync = os.fdatasync
    calls = {"n": 0}

    def failing_fdatasync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", failing_fdatasync)
    with pytest.raises(WalWriteFailed, match="No space left"):
        wal.append(Signal.TRACES, "p", b"lost").result()
    wal.append(Signal.TRACES, "p", b"after").result()
    assert [r.payload for r in wal.consumer("c").read()] == [b"before", b"after"]
    wal.close()
    wal = _open(tmp_path)
    assert wal.recovery.truncated_bytes == 0
    assert [r.payload for r in wal.consumer("d").read()] == [b"before", b"after"]
    wal.close()


def test_consumer_offset_beyond_the_log_is_clamped(tmp_path):
    wal = _open(tmp_path)
    wal.append(Signal.TRACES, "p", b"one").result()
    wal.close()
    (tmp_path / "consumers" / "parquet.offset").write_text("999999")
    wal = _open(tmp_path)
    reader = wal.consumer("parquet")
    assert reader.position == wal.durable_offset
    wal.close()
