# The C span reader `spanfuse build-mapper` builds from _encoded_span.c (see semconv/encoded_span.py).
from collections.abc import Callable, Iterable
from typing import Any

def read_span(
    data: bytes, read_key_value: Callable[[bytes, int, int, dict[str, Any]], bool], /
) -> tuple[bytes, bytes, bytes, str, int, int, int, dict[str, Any], int, str | None] | None: ...
def span_problems(spans: Iterable[bytes], /) -> list[tuple[int, int]]: ...
