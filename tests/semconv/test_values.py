"""semconv.values.to_json: the JSON text of every column that holds JSON, whatever the value."""

from __future__ import annotations

import math

import orjson
import pytest

from semconv.values import MAX_JSON_DEPTH, to_json


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ([{"role": "user", "content": "hi"}], '[{"role":"user","content":"hi"}]'),
        ({"n": 1, "x": 1.5, "ok": True, "none": None}, '{"n":1,"x":1.5,"ok":true,"none":null}'),
        ({"nan": math.nan, "inf": math.inf}, '{"nan":null,"inf":null}'),
        ("plain text", '"plain text"'),
        # Not what spans carry, so not the first try: each takes the slower path and still succeeds.
        ({1: "a", 2.5: "b"}, '{"1":"a","2.5":"b"}'),  # keys that are not strings
        ({"when": {1, 2}}, '{"when":"{1, 2}"}'),  # a type JSON has none for: its str()
        ({"n": 2**70, "m": -(2**64)}, f'{{"n":"{2**70}","m":"{-(2**64)}"}}'),  # ints beyond 64 bits: their digits
        ({2**70: 1}, f'{{"{2**70}":1}}'),
    ],
)
def test_to_json(value: object, expected: str | None) -> None:
    assert to_json(value) == expected


def test_to_json_keeps_too_deep_parts_as_their_json_text() -> None:
    deep: list = []
    for _ in range(MAX_JSON_DEPTH + 100):
        deep = [deep]
    decoded = orjson.loads(to_json({"deep": deep}))
    node = decoded["deep"]
    depth = 1
    while isinstance(node, list):
        (node,) = node
        depth += 1
    assert isinstance(node, str) and node.startswith("[[")  # the rest, as text
    assert depth <= MAX_JSON_DEPTH + 1
