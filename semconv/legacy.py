"""Langfuse's REST writes — score bodies and the legacy ingestion batch — as table rows.

Pure functions, no I/O. Two halves (../shared/reference/langfuse-server.md §3 "Scores", §4):

* **Validation**, on the request path: :func:`validate_score` turns one score body into a
  score row (or raises :class:`InvalidBody`); :func:`validate_batch` checks every envelope of a
  ``POST /api/public/ingestion`` batch and normalises the good ones into *events* — JSON-ready
  dicts ``{"id", "type", "ts", "entity", "update", "fields"}`` where ``fields`` is already in
  table-column form (times in µs, JSON columns as text, usage in disjoint buckets). Events come
  back in Langfuse's order: every non-update event first, then the ``*-update`` events, each
  group by envelope timestamp. They are what the WAL stores.
* **Mapping**, in the worker: :func:`map_events` folds the events of one request into rows.
  Observations are stored as whole rows (the latest ingest wins on read), so a ``*-update``
  event is *merged* into the record it updates: the caller passes the stored rows of the
  observations concerned as ``bases``; create and update events of one id in one request are
  folded together.

Merge rules (Langfuse's ``overwriteObject``): later non-null values win; ``metadata`` is deep
merged; ``id``, ``trace_id``, ``start_time``, ``environment`` and ``type`` keep their first value;
usage and cost objects are replaced as a whole; an end time before the start is clamped.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import orjson

from semconv.dialects.langfuse import usage_from_details
from semconv.messages import normalize_messages
from semconv.timeparse import iso_to_micros
from semconv.values import to_json

# ---------------------------------------------------------------------------------------------
# tables of facts

DATA_TYPES = ("NUMERIC", "CATEGORICAL", "BOOLEAN", "TEXT", "CORRECTION")
SOURCES = ("API", "EVAL", "ANNOTATION")
PUBLIC_SOURCES = ("API", "ANNOTATION")  # EVAL is reserved for Langfuse's own evaluators
LEVELS = ("DEBUG", "DEFAULT", "WARNING", "ERROR")
TEXT_MAX_LENGTH = 500
CORRECTION_NAME = "output"
ID_MAX_LENGTH = 800
_ENVIRONMENT = re.compile(r"^(?!langfuse)[a-z0-9_-]{1,40}$")

# event type -> (entity, observation type, body kind, is update)
_BODY_KIND_OF_TYPE = {"EVENT": "event", "SPAN": "span"}  # everything else has the generation body
EVENT_TYPES: dict[str, tuple[str, str | None, bool]] = {
    "trace-create": ("trace", None, False),
    "score-create": ("score", None, False),
    "event-create": ("observation", "EVENT", False),
    "span-create": ("observation", "SPAN", False),
    "span-update": ("observation", "SPAN", True),
    "generation-create": ("observation", "GENERATION", False),
    "generation-update": ("observation", "GENERATION", True),
    "agent-create": ("observation", "AGENT", False),
    "tool-create": ("observation", "TOOL", False),
    "chain-create": ("observation", "CHAIN", False),
    "retriever-create": ("observation", "RETRIEVER", False),
    "evaluator-create": ("observation", "EVALUATOR", False),
    "embedding-create": ("observation", "EMBEDDING", False),
    "guardrail-create": ("observation", "GUARDRAIL", False),
    "observation-create": ("observation", None, False),  # legacy: the type is in the body
    "observation-update": ("observation", None, True),
    "sdk-log": ("log", None, False),
}
LEGACY_OBSERVATION_TYPES = ("GENERATION", "SPAN", "EVENT")
SCORE_EVENT = "score-create"

# Observation columns that keep the value of the first write (Langfuse's immutable keys).
IMMUTABLE = frozenset({"id", "trace_id", "start_time", "environment", "type"})
TRACE_IMMUTABLE = frozenset({"id", "timestamp", "environment"})
SCORE_IMMUTABLE = frozenset({"id", "timestamp", "trace_id", "environment"})

# The fields each body kind reads (Langfuse's zod objects drop the others).
_EVENT_FIELDS = (
    "traceId",
    "environment",
    "name",
    "startTime",
    "metadata",
    "input",
    "output",
    "level",
    "statusMessage",
    "parentObservationId",
    "version",
)
_GENERATION_FIELDS = (
    "completionStartTime",
    "model",
    "modelParameters",
    "usage",
    "usageDetails",
    "costDetails",
    "promptName",
    "promptVersion",
)


class InvalidBody(ValueError):
    """A body fails validation; the message says which field and why."""


# ---------------------------------------------------------------------------------------------
# small validators


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _optional_str(body: Mapping[str, Any], key: str, *, max_length: int | None = None) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidBody(f"{key}: expected a string, got {_kind(value)}")
    if max_length is not None and len(value) > max_length:
        raise InvalidBody(f"{key}: at most {max_length} characters")
    return value


def _id(value: Any, key: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise InvalidBody(f"{key}: required")
        return None
    if not isinstance(value, str) or not value:
        raise InvalidBody(f"{key}: expected a non-empty string")
    if len(value) > ID_MAX_LENGTH:
        raise InvalidBody(f"{key}: at most {ID_MAX_LENGTH} characters")
    if "\r" in value:
        raise InvalidBody(f"{key}: cannot contain carriage return characters")
    return value


def _time(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    micros = iso_to_micros(value) if isinstance(value, str) else None
    if micros is None:
        raise InvalidBody(f"{key}: expected an ISO-8601 datetime, got {value!r}")
    return micros


def _environment(body: Mapping[str, Any]) -> str | None:
    value = body.get("environment")
    if value is None:
        return None
    if not isinstance(value, str) or not _ENVIRONMENT.match(value):
        raise InvalidBody(
            "environment: only lower case letters, digits, '-' and '_' (at most 40), not starting with 'langfuse'"
        )
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _object(body: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidBody(f"{key}: expected an object, got {_kind(value)}")
    return value


def _metadata_json(value: Any) -> str | None:
    """Metadata as stored: an object stays one, any other JSON value is kept under ``metadata``."""
    if value is None:
        return None
    return to_json(value if isinstance(value, dict) else {"metadata": value})


def _content_json(value: Any) -> str | None:
    return None if value is None else to_json(normalize_messages(value))


# ---------------------------------------------------------------------------------------------
# scores


def validate_score(
    body: Any,
    *,
    default_timestamp: int,
    public_api: bool,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> dict[str, Any]:
    """A score body (``POST /scores`` or a ``score-create`` event) as a ``scores`` row.

    Rules: exactly one of traceId (optionally with observationId), sessionId or datasetRunId;
    a non-empty name; ``dataType`` inferred from the value (number → NUMERIC, string →
    CATEGORICAL) or checked against it (BOOLEAN is 0 or 1 and reads "True"/"False", TEXT is
    1 to 500 characters, CORRECTION is text named "output" without a config); ``source`` API or
    ANNOTATION (EVAL too outside the public endpoint), ANNOTATION needs a configId;
    ``environment`` defaults to "default"; a missing id is generated (a UUID, as Langfuse does).
    """
    if not isinstance(body, dict):
        raise InvalidBody(f"score: expected an object, got {_kind(body)}")
    score_id = _id(body.get("id"), "id", required=False) or new_id()
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidBody("name: required, a non-empty string")
    trace_id = _optional_str(body, "traceId") or None
    observation_id = _optional_str(body, "observationId") or None
    session_id = _optional_str(body, "sessionId") or None
    dataset_run_id = _optional_str(body, "datasetRunId") or None
    subjects = [s for s in (trace_id, session_id, dataset_run_id) if s]
    if len(subjects) != 1 or (observation_id and not trace_id):
        raise InvalidBody(
            "Provide exactly one of the following: traceId (with optional observationId), sessionId or "
            "datasetRunId. ObservationId requires traceId."
        )
    allowed_sources = PUBLIC_SOURCES if public_api else SOURCES
    source = body.get("source")
    source = "API" if source is None else source
    if source not in allowed_sources:
        raise InvalidBody(f"source: expected one of {', '.join(allowed_sources)}, got {source!r}")
    config_id = _optional_str(body, "configId") or None
    data_type, value, string_value, name = _score_value(body, name, config_id)
    if source == "ANNOTATION" and not config_id and data_type != "CORRECTION":
        raise InvalidBody("configId is required when source is ANNOTATION (except for CORRECTION scores).")
    timestamp = _time(body, "timestamp")
    metadata = body.get("metadata")
    return {
        "id": score_id,
        "trace_id": trace_id,
        "observation_id": observation_id,
        "session_id": session_id,
        "dataset_run_id": dataset_run_id,
        "name": name,
        "data_type": data_type,
        "value": value,
        "string_value": string_value,
        "source": source,
        "comment": _optional_str(body, "comment"),
        "config_id": config_id,
        "queue_id": _optional_str(body, "queueId") or None,
        "author_user_id": None,
        "metadata": None if metadata is None else to_json(metadata),
        "environment": _environment(body) or "default",
        "timestamp": timestamp if timestamp is not None else default_timestamp,
    }


def _score_value(
    body: Mapping[str, Any], name: str, config_id: str | None
) -> tuple[str, float | None, str | None, str]:
    """(data type, numeric value, string value, name) from ``value`` and ``dataType``."""
    value = body.get("value")
    data_type = body.get("dataType")
    if data_type is None:
        if _is_number(value):
            data_type = "NUMERIC"
        elif isinstance(value, str):
            data_type = "CATEGORICAL"
        else:
            raise InvalidBody(f"value: expected a number or a string, got {_kind(value)}")
    if data_type not in DATA_TYPES:
        raise InvalidBody(f"dataType: expected one of {', '.join(DATA_TYPES)}, got {data_type!r}")
    if data_type == "NUMERIC":
        if not _is_number(value):
            raise InvalidBody(f"value: a NUMERIC score needs a number, got {_kind(value)}")
        return data_type, float(value), None, name
    if data_type == "BOOLEAN":
        if not _is_number(value) or value not in (0, 1):
            raise InvalidBody("Value must be a number equal to either 0 or 1 for data type BOOLEAN")
        return data_type, float(value), "True" if value == 1 else "False", name
    if not isinstance(value, str):
        raise InvalidBody(f"value: a {data_type} score needs a string, got {_kind(value)}")
    if data_type == "TEXT":
        if not 1 <= len(value) <= TEXT_MAX_LENGTH:
            raise InvalidBody(f"value: a TEXT score is 1 to {TEXT_MAX_LENGTH} characters")
        return data_type, None, value, name
    if data_type == "CORRECTION":
        if config_id:
            raise InvalidBody("configId: a CORRECTION score cannot reference a score config")
        return data_type, None, value, CORRECTION_NAME
    return data_type, None, value, name  # CATEGORICAL


def fold_scores(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scores of one request with the same id folded into one (later non-null values win)."""
    folded: dict[str, dict[str, Any]] = {}
    for row in rows:
        current = folded.get(row["id"])
        if current is None:
            folded[row["id"]] = row
        else:  # the value fields belong together: the later score's replace the earlier's
            merged = _overwrite(current, row, SCORE_IMMUTABLE)
            merged.update(value=row["value"], string_value=row["string_value"])
            folded[row["id"]] = merged
    return list(folded.values())


# ---------------------------------------------------------------------------------------------
# ingestion batch: validation


@dataclass
class ValidatedBatch:
    """Normalised events (Langfuse's order) plus the per-envelope answer of the 207 response."""

    events: list[dict[str, Any]] = field(default_factory=list)
    successes: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def validate_batch(batch: list[Any], *, scores_only: bool = False) -> ValidatedBatch:
    """Validate every envelope of an ingestion batch.

    ``scores_only`` is the scores access level (a Bearer public key): every event but
    ``score-create`` and ``sdk-log`` is refused with 401. ``sdk-log`` events are validated and
    dropped: they appear in neither list.
    """
    result = ValidatedBatch()
    accepted: list[dict[str, Any]] = []
    for envelope in batch:
        envelope_id = envelope.get("id") if isinstance(envelope, dict) else None
        shown_id = envelope_id if isinstance(envelope_id, str) else "unknown"
        try:
            event = validate_event(envelope)
        except InvalidBody as exc:
            result.errors.append({"id": shown_id, "status": 400, "message": "Invalid request data", "error": str(exc)})
            continue
        if scores_only and event["type"] not in (SCORE_EVENT, "sdk-log"):
            result.errors.append(
                {"id": shown_id, "status": 401, "message": "Authentication error", "error": "Access Scope Denied"}
            )
            continue
        if event["entity"] != "log":
            accepted.append(event)
    creates = sorted((e for e in accepted if not e["update"]), key=lambda e: e["ts"])
    updates = sorted((e for e in accepted if e["update"]), key=lambda e: e["ts"])
    result.events = creates + updates
    result.successes = [{"id": e["id"], "status": 201} for e in result.events]
    return result


def validate_event(envelope: Any) -> dict[str, Any]:
    """One ingestion envelope ``{id, timestamp, type, body, metadata?}`` as a normalised event."""
    if not isinstance(envelope, dict):
        raise InvalidBody(f"event: expected an object, got {_kind(envelope)}")
    envelope_id = _id(envelope.get("id"), "id", required=True)
    stamp = envelope.get("timestamp")
    ts = iso_to_micros(stamp) if isinstance(stamp, str) else None
    if ts is None:
        raise InvalidBody(f"timestamp: required, an ISO-8601 datetime, got {stamp!r}")
    event_type = envelope.get("type")
    if event_type not in EVENT_TYPES:
        raise InvalidBody(f"type: unknown event type {event_type!r}; expected one of {', '.join(EVENT_TYPES)}")
    body = envelope.get("body")
    if not isinstance(body, dict):
        raise InvalidBody(f"body: expected an object, got {_kind(body)}")
    entity, observation_type, update = EVENT_TYPES[event_type]
    try:
        if entity == "trace":
            fields = _trace_fields(body, ts)
        elif entity == "score":
            fields = validate_score(body, default_timestamp=ts, public_api=False)
        elif entity == "observation":
            fields = _observation_fields(body, ts, observation_type, update)
        else:
            if "log" not in body:
                raise InvalidBody("log: required")
            fields = {}
    except InvalidBody as exc:
        raise InvalidBody(f"body.{exc}") from None
    return {"id": envelope_id, "type": event_type, "ts": ts, "entity": entity, "update": update, "fields": fields}


def _trace_fields(body: Mapping[str, Any], ts: int) -> dict[str, Any]:
    tags = body.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise InvalidBody("tags: expected an array of strings")
    public = body.get("public")
    if public is not None and not isinstance(public, bool):
        raise InvalidBody(f"public: expected a boolean, got {_kind(public)}")
    timestamp = _time(body, "timestamp")
    _optional_str(body, "externalId")
    return {
        "id": _id(body.get("id"), "id", required=False) or str(uuid.uuid4()),
        "timestamp": timestamp if timestamp is not None else ts,
        "name": _optional_str(body, "name", max_length=1000),
        "user_id": _optional_str(body, "userId"),
        "session_id": _optional_str(body, "sessionId"),
        "tags": sorted(set(tags)) if tags is not None else None,
        "input": _content_json(body.get("input")),
        "output": _content_json(body.get("output")),
        "metadata": _metadata_json(body.get("metadata")),
        "release": _optional_str(body, "release"),
        "version": _optional_str(body, "version"),
        # Only what the event says: a later tags-only event must not reset the environment.
        "environment": _environment(body),
        "public": public,
    }


def _observation_fields(body: Mapping[str, Any], ts: int, observation_type: str | None, update: bool) -> dict[str, Any]:
    if observation_type is None:  # legacy observation-create / -update
        observation_type = body.get("type")
        if observation_type not in LEGACY_OBSERVATION_TYPES:
            raise InvalidBody(f"type: expected one of {', '.join(LEGACY_OBSERVATION_TYPES)}, got {observation_type!r}")
        legacy = True
    else:
        legacy = False
    kind = _BODY_KIND_OF_TYPE.get(observation_type, "generation")
    obs_id = _id(body.get("id"), "id", required=not legacy) or str(uuid.uuid4())
    level = body.get("level")
    if level is not None and level not in LEVELS:
        raise InvalidBody(f"level: expected one of {', '.join(LEVELS)}, got {level!r}")
    start = _time(body, "startTime")
    fields: dict[str, Any] = {
        "id": obs_id,
        "trace_id": _id(body.get("traceId"), "traceId", required=False),
        "type": observation_type,
        "name": _optional_str(body, "name"),
        "start_time": start if start is not None else ts,
        "level": level,
        "status_message": _optional_str(body, "statusMessage"),
        "parent_observation_id": _optional_str(body, "parentObservationId") or None,
        "version": _optional_str(body, "version"),
        # Immutable once set: a create pins it (default "default"); an update only fills it in.
        "environment": _environment(body) or (None if update else "default"),
        "input": _content_json(body.get("input")),
        "output": _content_json(body.get("output")),
        "metadata": _metadata_json(body.get("metadata")),
    }
    if kind != "event" or legacy:
        fields["end_time"] = _time(body, "endTime")
    if kind == "generation" or legacy:
        fields.update(_generation_fields(body, legacy))
    return {k: v for k, v in fields.items() if v is not None}


def _generation_fields(body: Mapping[str, Any], legacy: bool) -> dict[str, Any]:
    parameters = _object(body, "modelParameters")
    prompt_name = None if legacy else _optional_str(body, "promptName")
    prompt_version = None if legacy else body.get("promptVersion")
    if prompt_version is not None and (not isinstance(prompt_version, int) or isinstance(prompt_version, bool)):
        raise InvalidBody(f"promptVersion: expected an integer, got {_kind(prompt_version)}")
    if bool(prompt_name) != (prompt_version is not None):
        raise InvalidBody("promptName and promptVersion: set both or neither")
    usage, cost = usage_and_cost(body.get("usage"), body.get("usageDetails"), body.get("costDetails"))
    fields: dict[str, Any] = {
        "completion_start_time": _time(body, "completionStartTime"),
        "model": _optional_str(body, "model"),
        "model_parameters": None if parameters is None else to_json(parameters),
        "usage_details": usage,
        "prompt_name": prompt_name,
        "prompt_version": prompt_version,
    }
    if cost:
        fields.update(cost_details=cost, total_cost=cost.get("total"), cost_source="provided")
    return fields


# ---------------------------------------------------------------------------------------------
# usage and cost


def _count(value: Any) -> int | None:
    """A usage count: a non-negative integer (integral floats and integer strings too)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value >= 0 and value.is_integer() else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _amount(value: Any) -> float | None:
    return float(value) if _is_number(value) and value >= 0 else None


# OpenAI usage objects: (input, output, total, input details, output details) key names
_OPENAI_CHAT = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_tokens_details",
    "completion_tokens_details",
)
_OPENAI_RESPONSES = ("input_tokens", "output_tokens", "total_tokens", "input_tokens_details", "output_tokens_details")


def _openai_usage(details: Mapping[str, Any], names: tuple[str, str, str, str, str]) -> dict[str, int]:
    """OpenAI usage → Langfuse keys: ``input``/``output`` without their details, ``input_<k>``…"""
    prompt, completion, total, prompt_details, completion_details = names
    out: dict[str, int] = {}
    for key, name in (("input", prompt), ("output", completion), ("total", total)):
        number = _count(details.get(name))
        if number is not None:
            out[key] = number
    for prefix, name in (("input", prompt_details), ("output", completion_details)):
        parts = details.get(name)
        if not isinstance(parts, dict):
            continue
        for part, value in parts.items():
            number = _count(value)
            if number is None:
                continue
            out[f"{prefix}_{part}"] = number
            if prefix in out:
                out[prefix] = max(out[prefix] - number, 0)
    return out


def provided_usage(usage: Any, usage_details: Any) -> dict[str, int]:
    """Langfuse's ``provided_usage_details``: legacy ``usage`` counts, then ``usageDetails`` keys.

    ``usage`` is ``{input, output, total, unit, inputCost…}`` or OpenAI's camelCase
    ``{promptTokens, completionTokens, totalTokens}``; ``total`` defaults to input + output only
    when no ``usageDetails`` are given. ``usageDetails`` is OpenAI Chat or Responses usage
    (details subtracted from input/output and kept as ``input_<k>`` / ``output_<k>``) or any
    ``{key: count}``; counts that are not non-negative integers are dropped.
    """
    if usage is not None and not isinstance(usage, dict):
        raise InvalidBody(f"usage: expected an object, got {_kind(usage)}")
    if usage_details is not None and not isinstance(usage_details, dict):
        raise InvalidBody(f"usageDetails: expected an object, got {_kind(usage_details)}")
    provided: dict[str, int] = {}
    if usage:
        if {"promptTokens", "completionTokens", "totalTokens"} & usage.keys():
            counts = (usage.get("promptTokens"), usage.get("completionTokens"), usage.get("totalTokens"))
        else:
            counts = (usage.get("input"), usage.get("output"), usage.get("total"))
        number_in, number_out, number_total = (_count(c) for c in counts)
        if number_total is None and not usage_details and (number_in is not None or number_out is not None):
            number_total = (number_in or 0) + (number_out or 0)
        for key, number in (("input", number_in), ("output", number_out), ("total", number_total)):
            if number is not None:
                provided[key] = number
    if usage_details:
        keys = usage_details.keys()
        if keys <= set(_OPENAI_CHAT) and {"prompt_tokens", "completion_tokens"} & keys:
            details = _openai_usage(usage_details, _OPENAI_CHAT)
        elif keys <= set(_OPENAI_RESPONSES) and (
            "input_tokens_details" in keys
            or "output_tokens_details" in keys
            or ("total_tokens" in keys and {"input_tokens", "output_tokens"} <= keys)
        ):
            details = _openai_usage(usage_details, _OPENAI_RESPONSES)
        else:  # any {key: count}; Anthropic-style objects are told apart by usage_from_details
            details = {k: n for k, n in ((k, _count(v)) for k, v in usage_details.items()) if n is not None}
        provided.update(details)
    return provided


def usage_and_cost(usage: Any, usage_details: Any, cost_details: Any) -> tuple[dict[str, int] | None, dict[str, float]]:
    """Disjoint usage buckets (see :mod:`semconv.usage`) and the provided cost (USD by key).

    Costs come from ``usage.inputCost/outputCost/totalCost`` and ``costDetails`` (which wins per
    key); ``total`` is their sum when not given.
    """
    provided = provided_usage(usage, usage_details)
    buckets = usage_from_details(provided) if provided else None
    if cost_details is not None and not isinstance(cost_details, dict):
        raise InvalidBody(f"costDetails: expected an object, got {_kind(cost_details)}")
    cost: dict[str, float] = {}
    if isinstance(usage, dict):
        for key, name in (("input", "inputCost"), ("output", "outputCost"), ("total", "totalCost")):
            amount = _amount(usage.get(name))
            if amount is not None:
                cost[key] = amount
    for key, value in (cost_details or {}).items():
        amount = _amount(value)
        if amount is not None:
            cost[key] = amount
    if cost and "total" not in cost:
        cost["total"] = sum(cost.values())
    return buckets, cost


# ---------------------------------------------------------------------------------------------
# mapping (worker side)


@dataclass
class LegacyRows:
    observations: list[dict[str, Any]] = field(default_factory=list)
    traces: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)


def observation_keys(events: list[dict[str, Any]]) -> dict[str, str | None]:
    """Observation ids the events touch → the trace id they name (first one seen), for look-ups."""
    keys: dict[str, str | None] = {}
    for event in events:
        if event["entity"] == "observation":
            fields = event["fields"]
            if keys.get(fields["id"]) is None:
                keys[fields["id"]] = fields.get("trace_id")
    return keys


def map_events(events: list[dict[str, Any]], bases: Mapping[str, dict[str, Any]] | None = None) -> LegacyRows:
    """Rows for the normalised events of one request (in the order :func:`validate_batch` gave).

    ``bases`` maps an observation id to its stored row (the record an update applies to); events
    of one id are folded onto it in order, so the row written is the union of everything known.
    """
    bases = bases or {}
    out = LegacyRows()
    traces: dict[str, tuple[str, dict[str, Any]]] = {}
    observations: dict[str, dict[str, Any]] = {}
    scores: list[dict[str, Any]] = []
    for event in events:
        entity, fields = event["entity"], event["fields"]
        if entity == "trace":
            known = traces.get(fields["id"])
            if known is None:
                traces[fields["id"]] = (event["id"], dict(fields))
            else:
                traces[fields["id"]] = (known[0], _overwrite(known[1], fields, TRACE_IMMUTABLE))
        elif entity == "observation":
            current = observations.get(fields["id"])
            if current is None:
                base = bases.get(fields["id"])
                current = dict(base) if base is not None else {}
            observations[fields["id"]] = _overwrite(current, fields, IMMUTABLE)
        elif entity == "score":
            scores.append(fields)
    for envelope_id, row in traces.values():
        # Each trace-create is one fact about the trace; facts are merged on read.
        out.traces.append({**row, "observation_id": f"ingestion:{envelope_id}"})
    for row in observations.values():
        observation, wrapper = finalize_observation(row)
        out.observations.append(observation)
        if wrapper is not None:
            out.traces.append(wrapper)
    out.scores = fold_scores(scores)
    return out


def finalize_observation(row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Defaults after merging: level, end ≥ start, and a trace for an observation without one.

    Like Langfuse (SDKs before 2.0 sent observations without a trace id), such an observation
    becomes its own trace: trace id = observation id, with a trace row of its own.
    """
    row = dict(row)
    row["level"] = row.get("level") or "DEFAULT"
    row["type"] = row.get("type") or "SPAN"
    row["environment"] = row.get("environment") or "default"
    end = row.get("end_time")
    if end is not None and end < row["start_time"]:
        row["end_time"] = row["start_time"]
    wrapper = None
    if not row.get("trace_id"):
        row["trace_id"] = row["id"]
        wrapper = {
            "id": row["id"],
            "observation_id": row["id"],
            "timestamp": row["start_time"],
            "environment": row.get("environment"),
        }
    return row, wrapper


def _overwrite(base: dict[str, Any], patch: Mapping[str, Any], immutable: frozenset[str]) -> dict[str, Any]:
    """``patch`` applied to ``base``: non-null values win, except immutable keys already set;
    ``metadata`` (JSON text) is deep merged and ``tags`` are unioned."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            continue
        if key in immutable and merged.get(key) is not None:
            continue
        if key == "metadata" and merged.get("metadata"):
            merged["metadata"] = to_json(_deep_merge(_json_dict(merged["metadata"]), _json_dict(value)))
        elif key == "tags" and merged.get("tags"):
            merged["tags"] = sorted(set(merged["tags"]) | set(value))
        else:
            merged[key] = value
    return merged


def _json_dict(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        value = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return {"metadata": text}
    return value if isinstance(value, dict) else {"metadata": value}


def _deep_merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        elif value is not None:
            out[key] = value
    return out
