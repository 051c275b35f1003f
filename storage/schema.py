"""The on-disk tables (Langfuse's data model) as Arrow schemas, with their dedup keys.

Rows are plain dicts keyed by column name; timestamps are integers in microseconds since the
epoch, UTC. ``project_id`` and ``date`` are Hive partition directories, not file columns.
Every table has ``ingested_at`` and ``ingest_seq``: among rows with the same key, the one
ingested last wins, on read and in compaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TS = pa.timestamp("us")
JSON = pa.string()  # JSON text; DuckDB's json functions read it


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    time_column: str  # its UTC date names the partition
    key: tuple[str, ...]  # rows with the same key are one record; the latest ingest wins
    sort_by: str  # clustering column inside compacted files
    bloom_columns: tuple[str, ...] = ()


_INGEST = [pa.field("ingested_at", TS, nullable=False), pa.field("ingest_seq", pa.int64(), nullable=False)]

OBSERVATIONS = TableSpec(
    name="observations",
    schema=pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("trace_id", pa.string(), nullable=False),
            pa.field("parent_observation_id", pa.string()),
            pa.field("type", pa.string(), nullable=False),
            pa.field("name", pa.string()),
            pa.field("start_time", TS, nullable=False),
            pa.field("end_time", TS),
            pa.field("completion_start_time", TS),
            pa.field("level", pa.string(), nullable=False),
            pa.field("status_message", pa.string()),
            pa.field("version", pa.string()),
            pa.field("environment", pa.string()),
            pa.field("model", pa.string()),
            pa.field("provider", pa.string()),
            pa.field("model_parameters", JSON),
            pa.field("input", JSON),
            pa.field("output", JSON),
            pa.field("metadata", JSON),
            pa.field("usage_details", pa.map_(pa.string(), pa.int64())),
            pa.field("cost_details", pa.map_(pa.string(), pa.float64())),
            pa.field("total_cost", pa.float64()),
            pa.field("cost_source", pa.string()),
            pa.field("matched_model", pa.string()),
            pa.field("prompt_name", pa.string()),
            pa.field("prompt_version", pa.int64()),
            pa.field("service_name", pa.string()),
            pa.field("scope_name", pa.string()),
            pa.field("scope_version", pa.string()),
            pa.field("span_kind", pa.string()),
            pa.field("attributes", JSON),
            pa.field("resource_attributes", JSON),
            pa.field("events", JSON),
            pa.field("links", JSON),
            *_INGEST,
        ]
    ),
    time_column="start_time",
    key=("trace_id", "id"),
    sort_by="trace_id",
    # ``id`` too: a lookup by observation id skips the row groups whose filter rules it out
    # (measured 319 -> 214 ms at 10M observations, for 1.3 % more bytes).
    bloom_columns=("trace_id", "id"),
)

TRACES = TableSpec(
    name="traces",
    schema=pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            # The span this fact came from; "folded-…" for a request's facts of the trace in one row.
            pa.field("observation_id", pa.string()),
            pa.field("timestamp", TS, nullable=False),
            pa.field("name", pa.string()),
            pa.field("user_id", pa.string()),
            pa.field("session_id", pa.string()),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("input", JSON),
            pa.field("output", JSON),
            pa.field("metadata", JSON),
            pa.field("release", pa.string()),
            pa.field("version", pa.string()),
            pa.field("environment", pa.string()),
            pa.field("public", pa.bool_()),
            *_INGEST,
        ]
    ),
    time_column="timestamp",
    key=("id", "observation_id"),
    sort_by="id",
    bloom_columns=("id",),
)

SCORES = TableSpec(
    name="scores",
    schema=pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("trace_id", pa.string()),
            pa.field("observation_id", pa.string()),
            pa.field("session_id", pa.string()),
            pa.field("dataset_run_id", pa.string()),
            pa.field("name", pa.string(), nullable=False),
            pa.field("data_type", pa.string(), nullable=False),
            pa.field("value", pa.float64()),
            pa.field("string_value", pa.string()),
            pa.field("source", pa.string(), nullable=False),
            pa.field("comment", pa.string()),
            pa.field("config_id", pa.string()),
            pa.field("queue_id", pa.string()),
            pa.field("author_user_id", pa.string()),
            pa.field("metadata", JSON),
            pa.field("environment", pa.string()),
            pa.field("timestamp", TS, nullable=False),
            *_INGEST,
        ]
    ),
    time_column="timestamp",
    key=("id",),
    sort_by="trace_id",
    bloom_columns=("trace_id",),
)

LOGS = TableSpec(
    name="logs",
    schema=pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),  # digest of the record: a resend is one row
            pa.field("trace_id", pa.string()),
            pa.field("span_id", pa.string()),
            pa.field("timestamp", TS, nullable=False),
            pa.field("observed_timestamp", TS),
            pa.field("event_name", pa.string()),
            pa.field("severity_number", pa.int32()),
            pa.field("severity_text", pa.string()),
            pa.field("body", JSON),
            # GenAI content carried by this record, as normalised chat messages (JSON lists), joined on
            # read to the input / output of the span (trace_id, span_id) whichever arrived first.
            pa.field("input_messages", JSON),
            pa.field("output_messages", JSON),
            pa.field("attributes", JSON),
            pa.field("resource_attributes", JSON),
            pa.field("service_name", pa.string()),
            pa.field("scope_name", pa.string()),
            *_INGEST,
        ]
    ),
    time_column="timestamp",
    key=("id",),
    sort_by="trace_id",
    bloom_columns=("trace_id",),
)

DELETIONS = TableSpec(
    name="deletions",
    schema=pa.schema(
        [
            pa.field("kind", pa.string(), nullable=False),  # "trace" or "score"
            pa.field("id", pa.string(), nullable=False),
            pa.field("deleted_at", TS, nullable=False),
            *_INGEST,
        ]
    ),
    time_column="deleted_at",
    key=("kind", "id"),
    sort_by="id",
)

TABLES: dict[str, TableSpec] = {spec.name: spec for spec in (OBSERVATIONS, TRACES, SCORES, LOGS, DELETIONS)}

# Which column of each table names the trace a row belongs to (deleting a trace hides these rows).
TRACE_COLUMN = {"observations": "trace_id", "traces": "id", "scores": "trace_id", "logs": "trace_id"}


def hidden_by_deletion(table: str) -> str:
    """SQL, true when tombstone ``d`` (a ``deletions`` row) hides row ``t`` of ``table``: a row of
    a deleted trace (or a deleted score) received before the deletion. What arrives later (the
    rest of a trace still running, a score written again) is new data, as in Langfuse."""
    kinds = [f"d.kind = 'trace' AND d.id = t.{TRACE_COLUMN[table]}"]
    if table == "scores":
        kinds.append("d.kind = 'score' AND d.id = t.id")
    return f"({' OR '.join(f'({kind})' for kind in kinds)}) AND t.ingested_at <= d.deleted_at"
