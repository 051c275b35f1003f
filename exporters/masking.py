"""Masking: a user function applied to prompt, completion and metadata attributes at export.

It runs in the processor's background thread on a copy of each span's attributes (a span's own
attributes are immutable once it ended, and other processors on the provider keep seeing the
original). The function receives each value as exported — usually a string, JSON text for
structured content — and returns the value to send. If it raises, the value is replaced by a
fixed placeholder: a broken mask must never leak the data it was meant to hide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

logger = logging.getLogger(__name__)

MaskFunction = Callable[[Any], Any]

FAILED_MASK_PLACEHOLDER = "<fully masked due to failed mask function>"

# Attributes that carry model input, output or user metadata, per dialect. Exact names ...
MASKED_KEYS: frozenset[str] = frozenset(
    {
        # Langfuse
        "langfuse.observation.input",
        "langfuse.observation.output",
        "langfuse.observation.metadata",
        "langfuse.trace.input",
        "langfuse.trace.output",
        "langfuse.trace.metadata",
        "langfuse.metadata",
        # OpenTelemetry GenAI (current and older spellings)
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.prompt",
        "gen_ai.completion",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        # OpenInference, OpenLLMetry, Vercel AI SDK, MLflow
        "input.value",
        "output.value",
        "traceloop.entity.input",
        "traceloop.entity.output",
        "ai.prompt",
        "ai.response.text",
        "ai.response.object",
        "ai.response.toolCalls",
        "ai.toolCall.args",
        "ai.toolCall.result",
        "mlflow.spanInputs",
        "mlflow.spanOutputs",
    }
)
# ... and name prefixes (flattened messages and per-key metadata).
MASKED_PREFIXES: tuple[str, ...] = (
    "langfuse.observation.metadata.",
    "langfuse.trace.metadata.",
    "langfuse.metadata.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts",
    "ai.prompt.",
)


def is_masked_key(key: str) -> bool:
    """Whether the attribute ``key`` holds content that ``mask`` applies to."""
    return key in MASKED_KEYS or key.startswith(MASKED_PREFIXES)


class Masker:
    """Applies one mask function to attribute mappings; logs a failing function once."""

    _MAX_KEYS = 8192  # attribute names repeat; the cache bound only guards against generated names

    def __init__(self, mask: MaskFunction) -> None:
        self._mask = mask
        self._keys: dict[str, bool] = {}
        self._warned = False
        self.failures = 0

    def _applies(self, key: str) -> bool:
        known = self._keys.get(key)
        if known is None:
            if len(self._keys) >= self._MAX_KEYS:
                self._keys.clear()
            known = self._keys[key] = is_masked_key(key)
        return known

    def attributes(self, attributes: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
        """A copy of ``attributes`` with every content value passed through the mask."""
        masked = dict(attributes)
        for key, value in attributes.items():
            if self._applies(key):
                masked[key] = self.value(value)
        return masked

    def touches(self, attributes: Mapping[str, AttributeValue] | None) -> bool:
        """Whether any attribute is subject to masking (so a copy is needed)."""
        return bool(attributes) and any(self._applies(key) for key in attributes)  # type: ignore[union-attr]

    def value(self, value: AttributeValue) -> AttributeValue:
        """One value through the mask; the placeholder if the mask fails or returns no attribute value."""
        try:
            result = self._mask(value)
        except Exception as error:
            self._failed(error)
            return FAILED_MASK_PLACEHOLDER
        if result is None or isinstance(result, str | bool | int | float):
            return result if result is not None else ""
        if isinstance(result, list | tuple) and all(isinstance(item, str | bool | int | float) for item in result):
            return tuple(result)
        # Not representable as an attribute: send text rather than drop the span.
        return str(result)

    def _failed(self, error: Exception) -> None:
        self.failures += 1
        if not self._warned:
            self._warned = True
            logger.error(
                "mask function raised %s: %s; masked values are replaced by %r (logged once)",
                type(error).__name__,
                error,
                FAILED_MASK_PLACEHOLDER,
            )
