"""Normalise chat content from every dialect into one shape.

A message is ``{"role": str, "content": str | list[part] | None}`` plus, when present,
``tool_calls`` (``[{"id", "type": "function", "function": {"name", "arguments"}}]``),
``tool_call_id`` (on ``tool`` messages), ``name``, ``reasoning`` and ``finish_reason``.
``content`` is a string when every part is text; otherwise a list keeping non-text parts
(images, audio, files) as they came. Values that are not chat-like (plain strings, arbitrary
JSON) are left as they are.

Content comes from JSON and OTLP attribute decoding, so a mapping here is always a dict: it is
tested as ``dict`` because ``isinstance`` against the ``Mapping`` ABC costs a Python-level call,
several times per message of every span.
"""

from __future__ import annotations

from typing import Any, Final

from semconv.attrs import is_blank
from semconv.values import to_json

Message = dict[str, Any]

_TEXT_TYPES: Final = frozenset({"text", "input_text", "output_text"})
_REASONING_TYPES: Final = frozenset({"reasoning", "thinking"})
# Message fields kept as they are (which also keeps normalising idempotent). Typed as a tuple of
# any length: the compiled build indexes it, where a loop over a literal tuple iterates generically.
_KEPT: Final[tuple[str, ...]] = ("name", "finish_reason", "reasoning", "tool_results")


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return to_json(value) or "null"


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": None if arguments is None else _json_text(arguments)},
    }


def _openai_tool_call(call: Any) -> dict[str, Any] | None:
    if not isinstance(call, dict):
        return None
    function = call.get("function")
    if isinstance(function, dict):
        return _tool_call(call.get("id"), function.get("name"), function.get("arguments"))
    if "name" in call:
        return _tool_call(call.get("id"), call.get("name"), call.get("arguments", call.get("args")))
    return None


def _tool_result(part: dict[str, Any]) -> tuple[Any, Any] | None:
    """(call id, result) of a tool-result part in any dialect's spelling, else None."""
    kind = part.get("type")
    if kind in ("tool_call_response", "tool_call_result"):
        return part.get("id"), part.get("response", part.get("result"))
    if kind == "tool-result":
        return part.get("toolCallId"), part.get("output", part.get("result"))
    if kind == "tool_result":
        return part.get("tool_use_id"), part.get("content")
    return None


def _call_part(part: dict[str, Any]) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind == "tool_call":
        return _tool_call(part.get("id"), part.get("name"), part.get("arguments"))
    if kind == "tool-call":
        return _tool_call(part.get("toolCallId"), part.get("toolName"), part.get("input", part.get("args")))
    if kind == "tool_use":
        return _tool_call(part.get("id"), part.get("name"), part.get("input"))
    if kind == "function" and isinstance(part.get("function"), dict):
        return _openai_tool_call(part)
    return None


def _from_parts(role: str, parts: list[Any], extra: dict[str, Any]) -> list[Message]:
    """One message (or several tool messages) from a list of content parts."""
    texts: list[str] = []
    kept: list[Any] = []  # every kept part in order; a text part as its str until _join needs a dict
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[tuple[Any, Any]] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            kept.append(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in _TEXT_TYPES:
            text = part.get("content", part.get("text"))
            text = text if isinstance(text, str) else _json_text(text)
            texts.append(text)
            kept.append(text)
        elif kind in _REASONING_TYPES:
            value = part.get("content", part.get("text", part.get("thinking")))
            if value is not None:
                reasoning.append(value if isinstance(value, str) else _json_text(value))
        elif (call := _call_part(part)) is not None:
            calls.append(call)
        elif (result := _tool_result(part)) is not None:
            results.append(result)
        else:
            kept.append(dict(part))
    messages: list[Message] = []
    if results and not texts and not calls and len(kept) == 0:
        for call_id, output in results:
            message: Message = {"role": "tool", "content": _content_text(output), "tool_call_id": call_id}
            messages.append(message)
        return messages
    message = {"role": role, "content": _join(texts, kept)}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning"] = "\n".join(reasoning)
    for call_id, output in results:  # results mixed into another message: keep them visible
        message.setdefault("tool_results", []).append({"tool_call_id": call_id, "content": _content_text(output)})
    message.update(extra)
    return [message]


def _content_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") in _TEXT_TYPES for p in value):
        return "".join(str(p.get("text", p.get("content", ""))) for p in value)
    return _json_text(value)


def _join(texts: list[str], kept: list[Any]) -> str | list[Any] | None:
    """One string when every part is text; else the parts, text parts as ``{"type": "text", "text"}``."""
    if not kept:
        return None
    if len(texts) == len(kept):
        return "".join(texts)
    return [{"type": "text", "text": part} if isinstance(part, str) else part for part in kept]


def normalize_message(raw: Any, default_role: str | None = None) -> list[Message]:
    """One chat-like dict in any dialect's spelling -> normalised message(s); [] if not chat-like."""
    if not isinstance(raw, dict):
        return []
    role = raw.get("role", default_role)
    if not isinstance(role, str):
        return []
    extra: dict[str, Any] = {}
    for key in _KEPT:
        value = raw.get(key)
        if value is not None:
            extra[key] = value
    tool_call_id = raw.get("tool_call_id")
    if tool_call_id is not None:
        extra["tool_call_id"] = tool_call_id
    elif role == "tool" and raw.get("id") is not None:  # a tool message's "id" names its call
        extra["tool_call_id"] = None if "tool_call_id" in raw else raw["id"]
    parts = raw.get("parts")
    if isinstance(parts, list):  # OTel GenAI >= 1.37
        return _from_parts(role, parts, extra)
    content = raw.get("content")
    if isinstance(content, list):  # OpenAI / Anthropic / Vercel content parts
        messages = _from_parts(role, content, extra)
    else:
        messages = [{"role": role, "content": _content_text(content) if content is not None else None, **extra}]
    tool_calls = raw.get("tool_calls")
    if tool_calls:
        calls = [call for call in map(_openai_tool_call, tool_calls) if call is not None]
        if calls and messages:
            messages[-1].setdefault("tool_calls", []).extend(calls)
    return messages


def normalize_messages(value: Any, default_role: str | None = None) -> Any:
    """A list (or single dict) of chat messages normalised; anything else returned unchanged.

    A list counts as chat only if every item is a message with a role (or ``default_role``).
    """
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else None
    if not items:
        return value
    out: list[Message] = []
    for item in items:
        messages = normalize_message(item, default_role)
        if not messages:
            return value
        out.extend(messages)
    return out


def system_message(instructions: Any) -> Message | None:
    """``gen_ai.system_instructions`` (parts list or string) as a system message."""
    if is_blank(instructions) or (isinstance(instructions, list) and not instructions):
        return None
    if isinstance(instructions, str):
        return {"role": "system", "content": instructions}
    if isinstance(instructions, list | dict):
        parts = instructions if isinstance(instructions, list) else [instructions]
        messages = _from_parts("system", parts, {})
        return messages[0] if messages else None
    return {"role": "system", "content": _json_text(instructions)}


def prepend_system(messages: Any, instructions: Any) -> Any:
    """Put system instructions first, unless the messages already start with a system message."""
    system = system_message(instructions)
    if system is None:
        return messages
    if messages is None:
        return [system]
    if isinstance(messages, list):
        if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system":
            return messages
        return [system, *messages]
    return [system, {"role": "user", "content": messages}]
