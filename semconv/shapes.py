"""Facts that depend only on a span's attribute *keys*, worked out once per distinct key set.

An instrumentation writes the same keys, in the same order, on every span of a kind, so the
key-only part of reading a span (its namespaces, which keys carry usage, which are model
parameters, which a dialect consumes) repeats from span to span. :func:`key_memo` remembers
such a fact per key tuple: hashing a tuple of keys is far cheaper than a Python pass over them.
A span's keys are interned once as a :class:`KeySet` (see :func:`key_set`); memos given that
object key on its identity, so the several memo lookups of one span neither rebuild nor rehash
the tuple.

Memoised results are shared between spans: they must be immutable (tuples, frozensets).
Memory stays bounded whatever clients send: each memo, and the table of interned key sets,
keeps at most :data:`MAX_KEY_SETS` entries of at most :data:`MAX_KEY_CHARS` characters of keys
(about 4 MB), and starts over when full.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K")

MAX_KEY_SETS: Final = 1024  # per memo (key sets times arguments)
MAX_KEY_CHARS: Final = 4096  # larger key sets (rare, possibly hostile) are computed each time, not kept
_MISSING: Final[Any] = object()  # Final: a constant in the compiled build, not a global looked up


class KeySet:
    """The attribute keys of a span, in order; spans with the same keys share one (see :func:`key_set`).

    Hashed and compared by identity, so a memo lookup costs the same for any number of keys.
    """

    __slots__ = ("kept", "keys")

    def __init__(self, keys: tuple[Any, ...], kept: bool) -> None:
        self.keys = keys
        self.kept = kept  # small enough to be remembered (interned and memoised)


_KEY_SETS: Final[dict[tuple[Any, ...], KeySet]] = {}


def key_set(attrs: Mapping[str, Any] | tuple[Any, ...]) -> KeySet:
    """The interned :class:`KeySet` of ``attrs``' keys (a fresh, unremembered one when too large)."""
    keys = tuple(attrs)
    found = _KEY_SETS.get(keys)
    if found is None:
        found = KeySet(keys, _chars(keys) <= MAX_KEY_CHARS)
        if found.kept:
            remember(_KEY_SETS, keys, found, MAX_KEY_SETS)
    return found


def remember(table: dict[K, T], key: K, value: T, limit: int) -> T:
    """``value``, kept under ``key`` in ``table``, a cache of results worked out once and shared.

    Whatever clients send, such a table holds at most ``limit`` entries: a full one starts over
    (the entries are worked out again as they come back).
    """
    if len(table) >= limit:
        table.clear()
    table[key] = value
    return value


class KeyMemo(Generic[T]):
    """``compute(keys)`` or ``compute(keys, arg)`` remembered per tuple of attribute keys and
    ``arg`` (bounded). Asked with :meth:`of`.

    Asked with a span's :class:`KeySet` (cheapest: see ``SpanView.keys``) or with the attributes
    themselves. ``arg`` (hashable, few distinct values — a dialect's prefix, say) selects among
    facts of the same key set.
    """

    __slots__ = ("_by_arg", "_compute", "_memo", "_size")

    def __init__(self, compute: Callable[..., T]) -> None:
        self._compute = compute
        # KeySet -> fact, and arg -> (KeySet -> fact): a lookup hashes a KeySet (by identity) and
        # the arg as they are, never a new (keys, arg) tuple.
        self._memo: dict[KeySet, T] = {}
        self._by_arg: dict[Any, dict[KeySet, T]] = {}
        self._size = 0  # facts kept in all: at most MAX_KEY_SETS

    def of(self, attrs: KeySet | Mapping[str, Any], arg: Any = None) -> T:
        """The fact for ``attrs``' keys (and ``arg``, when not None).

        A method rather than ``__call__``: the compiled build calls a method of a native class
        directly, but calling the object itself takes the generic call path (most of the cost
        of a lookup, and this runs several times per span).
        """
        keys = attrs if isinstance(attrs, KeySet) else key_set(attrs)
        memo = self._memo if arg is None else self._by_arg.get(arg)
        found = _MISSING if memo is None else memo.get(keys, _MISSING)
        if found is _MISSING:
            found = self._compute(keys.keys) if arg is None else self._compute(keys.keys, arg)
            if keys.kept:
                if self._size >= MAX_KEY_SETS:  # bounded in all, across the args
                    self._memo.clear()
                    self._by_arg.clear()
                    self._size = 0
                if arg is None:
                    self._memo[keys] = found
                else:
                    self._by_arg.setdefault(arg, {})[keys] = found
                self._size += 1
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


Plan = tuple[tuple[str, tuple[Any, ...]], ...]  # (field, its alias keys present, best first), ...


def ranked_present(keys: tuple[Any, ...], index: Mapping[Any, tuple[str, int]]) -> Plan:
    """For every field with an alias among ``keys`` — ``index`` maps an alias key to (field,
    rank) — the field and its aliases present, best rank first. Depends on the keys alone, so
    callers memoise it per key set (:func:`key_memo`)."""
    present: dict[str, list[tuple[int, Any]]] = {}
    for key in keys:
        alias = index.get(key)
        if alias is not None:
            present.setdefault(alias[0], []).append((alias[1], key))
    return tuple((field, tuple(key for _, key in sorted(aliases))) for field, aliases in present.items())
