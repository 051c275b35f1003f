"""Facts that depend only on a span's attribute *keys*, worked out once per distinct key set.

An instrumentation writes the same keys, in the same order, on every span of a kind, so the
key-only part of reading a span (its namespaces, which keys carry usage, which are model
parameters, which a dialect consumes) repeats from span to span. :func:`key_memo` remembers
such a fact per key tuple: hashing a tuple of keys is far cheaper than a Python pass over them.

Memoised results are shared between spans: they must be immutable (tuples, frozensets).
Memory stays bounded whatever clients send: each memo keeps at most :data:`MAX_KEY_SETS` key
entries of at most :data:`MAX_KEY_CHARS` characters of keys (about 4 MB), and starts over
when full.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

MAX_KEY_SETS = 1024  # per memo (key sets times arguments)
MAX_KEY_CHARS = 4096  # larger key sets (rare, possibly hostile) are computed each time, not kept
_MISSING: Any = object()


class KeyMemo(Generic[T]):
    """``compute(keys, *args)`` remembered per tuple of attribute keys and ``args`` (bounded).

    ``args`` (hashable, few distinct values — a dialect's prefix, say) select among facts of the
    same key set.
    """

    __slots__ = ("_compute", "_memo")

    def __init__(self, compute: Callable[..., T]) -> None:
        self._compute = compute
        self._memo: dict[tuple[Any, ...], T] = {}

    def __call__(self, attrs: Mapping[str, Any], *args: Any) -> T:
        keys = tuple(attrs)
        memo_key = (keys, *args) if args else keys
        found = self._memo.get(memo_key, _MISSING)
        if found is _MISSING:
            found = self._compute(keys, *args)
            if _chars(keys) <= MAX_KEY_CHARS:
                if len(self._memo) >= MAX_KEY_SETS:
                    self._memo.clear()
                self._memo[memo_key] = found
        return found


def _chars(keys: tuple[Any, ...]) -> int:
    """Total length of ``keys``; more than any bound when a key is not a string (never kept)."""
    try:
        return sum(map(len, keys))
    except TypeError:
        return MAX_KEY_CHARS + 1


def key_memo(compute: Callable[..., T]) -> KeyMemo[T]:
    """Decorator form of :class:`KeyMemo`."""
    return KeyMemo(compute)
