"""``observe``: the Langfuse SDK's ``@observe()`` decorator, without the Langfuse SDK.

Each call of a decorated function is a span (scope ``spanfuse.observe``) carrying Langfuse's
attributes: ``langfuse.observation.type``, ``langfuse.observation.input`` (``{"args": […],
"kwargs": {…}}`` as JSON, ``self``/``cls`` left out) and ``langfuse.observation.output`` (a string
as is, anything else as JSON). Generators and async generators are observed until exhausted, and
their output is the items they yielded (joined when all are strings). An exception is recorded
on the span, which gets status ERROR and level ERROR, and is re-raised unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import functools
import inspect
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal, TypeVar, overload

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer, TracerProvider

from exporters import attributes as attr
from exporters.filtering import OBSERVE_SCOPE
from exporters.settings import SDK_VERSION

F = TypeVar("F", bound=Callable[..., Any])
ObservationType = Literal[
    "span", "generation", "event", "agent", "tool", "chain", "retriever", "evaluator", "embedding", "guardrail"
]
OBSERVATION_TYPES: frozenset[str] = frozenset(ObservationType.__args__)  # type: ignore[attr-defined]
_CAPTURE_ENV = "LANGFUSE_OBSERVE_DECORATOR_IO_CAPTURE_ENABLED"


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    model_dump = getattr(value, "model_dump", None)  # pydantic v2 models
    if callable(model_dump):
        try:
            return model_dump(mode="json")
        except Exception:
            pass
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return str(value)


def serialize(value: Any) -> str:
    """A value as Langfuse's input/output attributes carry it: strings as is, the rest as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError):  # circular references
        return str(value)


def _generator_output(items: list[Any]) -> Any:
    return "".join(items) if items and all(isinstance(item, str) for item in items) else items


@overload
def observe(func: F) -> F: ...


@overload
def observe(
    func: None = None,
    *,
    name: str | None = None,
    as_type: ObservationType = "span",
    capture_input: bool | None = None,
    capture_output: bool | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Callable[[F], F]: ...


def observe(
    func: F | None = None,
    *,
    name: str | None = None,
    as_type: ObservationType = "span",
    capture_input: bool | None = None,
    capture_output: bool | None = None,
    tracer_provider: TracerProvider | None = None,
) -> F | Callable[[F], F]:
    """Trace each call of the decorated function as a Langfuse observation.

    Usable as ``@observe`` or ``@observe(name="retrieve", as_type="retriever")`` on functions,
    coroutines, generators and async generators. Spans go to ``tracer_provider``, or to the global
    provider at call time. Input and output capture default to
    ``LANGFUSE_OBSERVE_DECORATOR_IO_CAPTURE_ENABLED`` (true).
    """
    if as_type not in OBSERVATION_TYPES:
        raise ValueError(f"as_type must be one of {sorted(OBSERVATION_TYPES)}, got {as_type!r}")
    default_capture = os.environ.get(_CAPTURE_ENV, "true").strip().lower() not in ("false", "0", "no")
    options = _Options(
        as_type=as_type,
        capture_input=default_capture if capture_input is None else capture_input,
        capture_output=default_capture if capture_output is None else capture_output,
        tracer_provider=tracer_provider,
    )
    if func is None:
        return lambda f: _decorate(f, name, options)
    return _decorate(func, name, options)


@dataclasses.dataclass
class _Options:
    as_type: str
    capture_input: bool
    capture_output: bool
    tracer_provider: TracerProvider | None
    tracer: Tracer | None = None

    def get_tracer(self) -> Tracer:
        # Resolved on first call: the global provider may be set after the module was imported
        # (trace.get_tracer hands out a proxy that follows it).
        if self.tracer is None:
            provider = self.tracer_provider
            self.tracer = (
                provider.get_tracer(OBSERVE_SCOPE, SDK_VERSION)
                if provider is not None
                else trace.get_tracer(OBSERVE_SCOPE, SDK_VERSION)
            )
        return self.tracer


def _decorate(func: F, name: str | None, options: _Options) -> F:
    span_name = name or getattr(func, "__name__", "observation")
    try:
        parameters = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        parameters = []
    is_method = bool(parameters) and parameters[0] in ("self", "cls")

    def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Span:
        attributes: dict[str, Any] = {attr.OBSERVATION_TYPE: options.as_type}
        if options.capture_input:
            attributes[attr.OBSERVATION_INPUT] = serialize(
                {"args": list(args[1:] if is_method else args), "kwargs": kwargs}
            )
        return options.get_tracer().start_span(span_name, attributes=attributes)

    def finish(span: Span, output: Any) -> None:
        if options.capture_output and output is not None:
            span.set_attribute(attr.OBSERVATION_OUTPUT, serialize(output))
        span.end()

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            span = start(args, kwargs)
            return _observed_async_generator(span, func(*args, **kwargs), finish)

        return async_gen_wrapper  # type: ignore[return-value]

    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            span = start(args, kwargs)
            return _observed_generator(span, func(*args, **kwargs), finish)

        return gen_wrapper  # type: ignore[return-value]

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            span = start(args, kwargs)
            with _current(span):
                result = await func(*args, **kwargs)
            finish(span, result)
            return result

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        span = start(args, kwargs)
        with _current(span):
            result = func(*args, **kwargs)
        finish(span, result)
        return result

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _current(span: Span) -> Iterator[None]:
    """Make ``span`` current for the block; an exception leaving the block ends it as failed."""
    with trace.use_span(span, end_on_exit=False):
        try:
            yield
        except BaseException as error:
            _failed(span, error)
            raise


def _failed(span: Span, error: BaseException) -> None:
    if isinstance(error, GeneratorExit):  # the consumer stopped early: not an error
        span.end()
        return
    message = f"{type(error).__name__}: {error}"
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, message))
    span.set_attributes({attr.OBSERVATION_LEVEL: "ERROR", attr.OBSERVATION_STATUS_MESSAGE: message})
    span.end()


def _observed_generator(span: Span, generator: Iterator[Any], finish: Callable[[Span, Any], None]) -> Iterator[Any]:
    items: list[Any] = []
    while True:
        # The span is current only while the generator body runs, not while the consumer does.
        with _current(span):
            try:
                item = next(generator)
            except StopIteration:
                break
        items.append(item)
        try:
            yield item
        except GeneratorExit:
            generator.close()
            finish(span, _generator_output(items))
            raise
        except BaseException as error:  # thrown in by the consumer
            _failed(span, error)
            raise
    finish(span, _generator_output(items))


async def _observed_async_generator(
    span: Span, generator: AsyncIterator[Any], finish: Callable[[Span, Any], None]
) -> AsyncIterator[Any]:
    items: list[Any] = []
    while True:
        with _current(span):
            try:
                item = await generator.__anext__()
            except StopAsyncIteration:
                break
        items.append(item)
        try:
            yield item
        except GeneratorExit:
            await generator.aclose()  # type: ignore[attr-defined]
            finish(span, _generator_output(items))
            raise
        except BaseException as error:  # thrown in by the consumer
            _failed(span, error)
            raise
    finish(span, _generator_output(items))
