"""JSON shapes shared by several routes (a score appears in score lists and inside a trace)."""

from __future__ import annotations

from typing import Any

from collector.api.common import iso, json_object


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
    elif data_type == "NUMERIC":
        shaped["value"] = row.get("value")
    else:  # CATEGORICAL, BOOLEAN, CORRECTION carry both
        shaped["value"] = row.get("value")
        shaped["stringValue"] = row.get("string_value")
    return shaped
