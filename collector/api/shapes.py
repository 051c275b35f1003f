"""JSON shapes shared by several routes (a score appears in score lists and inside a trace)."""

from __future__ import annotations

from typing import Any

from collector.api.common import iso, json_object

# Score data types whose Score/ScoreV1 objects carry a numeric ``value`` next to ``stringValue``.
_VALUE_AND_LABEL = ("CATEGORICAL", "BOOLEAN", "CORRECTION")
SCORE_V3_GROUPS = ("core", "details", "subject", "annotation")


def score(row: dict[str, Any]) -> dict[str, Any]:
    """A stored score as Langfuse's Score / ScoreV1 object (``dataType`` decides the value fields)."""
    data_type = row["data_type"]
    shaped: dict[str, Any] = {
        "id": row["id"],
        "projectId": row.get("project_id"),
        "traceId": row.get("trace_id"),
        "observationId": row.get("observation_id"),
        "sessionId": row.get("session_id"),
        "datasetRunId": row.get("dataset_run_id"),
        "name": row["name"],
        "source": row["source"],
        "dataType": data_type,
        "timestamp": iso(row["timestamp"]),
        "createdAt": iso(row["ingested_at"]),
        "updatedAt": iso(row["ingested_at"]),
        "authorUserId": row.get("author_user_id"),
        "comment": row.get("comment"),
        "metadata": json_object(row.get("metadata")),
        "configId": row.get("config_id"),
        "queueId": row.get("queue_id"),
        "environment": row.get("environment") or "default",
    }
    if data_type == "TEXT":
        shaped["stringValue"] = row.get("string_value")
    elif data_type in _VALUE_AND_LABEL:  # both; the clients' models need a number (Langfuse stores 0)
        value = row.get("value")
        shaped["value"] = value if value is not None else 0.0
        shaped["stringValue"] = row.get("string_value")
    else:  # NUMERIC
        shaped["value"] = row.get("value")
    return shaped


def score_v1(row: dict[str, Any]) -> dict[str, Any]:
    """ScoreV1 (``GET /scores``): a trace's score, without the session and dataset-run fields."""
    shaped = score(row)
    del shaped["sessionId"], shaped["datasetRunId"]
    return shaped


def score_trace(row: dict[str, Any], *, with_session: bool) -> dict[str, Any]:
    """The ``trace`` object of a score list item, from the ``trace_*`` columns of the read."""
    trace = {
        "userId": row.get("trace_user_id"),
        "tags": list(row.get("trace_tags") or []),
        "environment": row.get("trace_environment"),
    }
    if with_session:
        trace["sessionId"] = row.get("trace_session_id")
    return trace


def score_v3(row: dict[str, Any], groups: set[str] | frozenset[str]) -> dict[str, Any]:
    """ScoreV3 (``GET /v3/scores``): polymorphic ``value``; optional field groups.

    ``value`` is a float for NUMERIC, a bool for BOOLEAN and a string otherwise. ``details``
    adds comment, configId and metadata; ``annotation`` authorUserId and queueId; ``subject``
    the entity scored as ``{kind, id, traceId?}``.
    """
    data_type = row["data_type"]
    if data_type == "NUMERIC":
        value: Any = row.get("value")
    elif data_type == "BOOLEAN":
        value = row.get("value") == 1 if row.get("value") is not None else row.get("string_value") == "True"
    else:
        value = row.get("string_value") or ""
    shaped: dict[str, Any] = {
        "id": row["id"],
        "projectId": row.get("project_id"),
        "name": row["name"],
        "dataType": data_type,
        "value": value,
        "source": row["source"],
        "timestamp": iso(row["timestamp"]),
        "environment": row.get("environment") or "default",
        "createdAt": iso(row["ingested_at"]),
        "updatedAt": iso(row["ingested_at"]),
    }
    if "details" in groups:
        shaped["comment"] = row.get("comment")
        shaped["configId"] = row.get("config_id")
        shaped["metadata"] = json_object(row.get("metadata"))
    if "annotation" in groups:
        shaped["authorUserId"] = row.get("author_user_id")
        shaped["queueId"] = row.get("queue_id")
    if "subject" in groups:
        shaped["subject"] = score_subject(row)
    return shaped


def score_subject(row: dict[str, Any]) -> dict[str, Any] | None:
    """What a score is about: an observation (with its trace), a trace, a session or an experiment."""
    if row.get("observation_id") and row.get("trace_id"):
        return {"kind": "observation", "id": row["observation_id"], "traceId": row["trace_id"]}
    if row.get("trace_id"):
        return {"kind": "trace", "id": row["trace_id"]}
    if row.get("session_id"):
        return {"kind": "session", "id": row["session_id"]}
    if row.get("dataset_run_id"):
        return {"kind": "experiment", "id": row["dataset_run_id"]}
    return None
