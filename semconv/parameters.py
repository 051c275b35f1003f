"""Names of model request parameters, for dialects that carry a whole request object
(Logfire ``request_data``, MLflow span inputs) and must tell parameters from content."""

from __future__ import annotations

from typing import Final

PARAMETER_NAMES: Final = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "n",
        "stop",
        "stop_sequences",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "service_tier",
        "stream",
        "thinking",
    }
)
