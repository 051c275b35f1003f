"""Per-key-set memos (semconv.shapes) and decoded attribute keys (semconv.keyvalue): right answers, bounded memory."""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from semconv import keyvalue, shapes
from semconv.shapes import MAX_KEY_SETS, KeyMemo, key_set


def _memo_size(memo: KeyMemo) -> int:
    return len(memo._memo) + sum(len(facts) for facts in memo._by_arg.values())


def test_a_fact_is_worked_out_once_per_key_set_and_arg() -> None:
    calls: list[tuple] = []

    def compute(keys: tuple[str, ...], arg: str | None = None) -> tuple:
        calls.append((keys, arg))
        return (len(keys), arg)

    memo = KeyMemo(compute)
    spans = [{"a": 1, "b": 2}, {"a": 3, "b": 4}, {"b": 5, "a": 6}]  # the last: other keys (order counts)
    for attrs in spans * 3:
        assert memo.of(key_set(attrs)) == (2, None)
        assert memo.of(attrs, "x") == (2, "x")
        assert memo.of(attrs, "y") == (2, "y")
    assert sorted(calls, key=repr) == sorted(
        [(keys, arg) for keys in (("a", "b"), ("b", "a")) for arg in (None, "x", "y")], key=repr
    )


def test_memos_stay_bounded_whatever_keys_and_args_arrive() -> None:
    memo = KeyMemo(lambda keys, arg=None: (keys, arg))
    for n in range(3 * MAX_KEY_SETS):
        attrs = {f"k{n}": 1}
        assert memo.of(attrs, f"scope-{n % 7}") == ((f"k{n}",), f"scope-{n % 7}")
        assert memo.of(attrs) == ((f"k{n}",), None)
        assert _memo_size(memo) <= MAX_KEY_SETS
    assert len(shapes._KEY_SETS) <= MAX_KEY_SETS


def test_huge_key_sets_are_answered_but_not_kept() -> None:
    memo = KeyMemo(lambda keys: len(keys))
    attrs = {f"{'x' * 100}.{n}": n for n in range(100)}  # over MAX_KEY_CHARS of keys
    assert memo.of(attrs) == 100
    assert _memo_size(memo) == 0


def _read(key: str) -> str:
    raw = KeyValue(key=key, value=AnyValue(int_value=1)).SerializeToString()
    into: dict[str, object] = {}
    assert keyvalue.read_key_value(raw, 0, len(raw), into)
    ((read,),) = (tuple(into),)
    return read


def test_attribute_keys_are_decoded_once_and_shared() -> None:
    first, again = _read("gen_ai.request.model"), _read("gen_ai.request.model")
    assert first == "gen_ai.request.model" and first is again
    long_key = "k" * (keyvalue._MAX_KEY_BYTES + 1)
    assert _read(long_key) == long_key and long_key.encode() not in keyvalue._KEY_TEXT


def test_the_decoded_key_table_stays_bounded() -> None:
    for n in range(keyvalue._MAX_KEYS + 500):
        assert _read(f"attribute.{n}") == f"attribute.{n}"
        assert len(keyvalue._KEY_TEXT) <= keyvalue._MAX_KEYS
    assert _read("é.ü") == "é.ü"
