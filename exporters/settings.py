"""Constructor arguments of ``LangfuseSpanProcessor``, completed from ``LANGFUSE_*`` variables and checked.

An argument wins over its environment variable; a bad value raises ``ValueError`` naming where it
came from, at construction time rather than as a silent export failure later.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from urllib.parse import urlsplit

from exporters.transport import join_url

DEFAULT_BASE_URL = "http://127.0.0.1:4318"  # a local Spanfuse with the shipped configuration
TRACES_PATH = "/api/public/otel/v1/traces"
# Where CI systems and hosts put the commit; Langfuse uses the same list for its release default.
RELEASE_VARIABLES = (
    "LANGFUSE_RELEASE",
    "RENDER_GIT_COMMIT",
    "CI_COMMIT_SHA",
    "CIRCLE_SHA1",
    "SOURCE_VERSION",
    "TRAVIS_COMMIT",
    "GIT_COMMIT",
    "GITHUB_SHA",
    "BITBUCKET_COMMIT",
    "BUILD_SOURCEVERSION",
    "DRONE_COMMIT_SHA",
)


def _version() -> str:
    try:
        return metadata.version("spanfuse")
    except metadata.PackageNotFoundError:
        return "0.0.0"


SDK_NAME = "spanfuse"
SDK_VERSION = _version()


@dataclass(frozen=True)
class Settings:
    """Everything the processor needs, resolved and validated."""

    public_key: str
    endpoint: str
    headers: Mapping[str, str]
    timeout: float
    flush_at: int
    flush_interval: float
    max_queue_size: int
    sample_rate: float
    compression: str
    environment: str | None
    release: str | None


def _pick(value: object, *names: str, environ: Mapping[str, str]) -> tuple[object, str]:
    """The argument if given, else the first set variable; with a label for error messages."""
    if value is not None:
        return value, "argument"
    for name in names:
        raw = environ.get(name, "").strip()
        if raw:
            return raw, name
    return None, ""


def _number(value: object, source: str, label: str, kind: type, *, minimum: float, default: float) -> float:
    if value is None:
        return default
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{label} ({source}) must be a number, got {value!r}") from None
    if number < minimum or number != number:  # NaN compares unequal to itself
        raise ValueError(f"{label} ({source}) must be at least {minimum}, got {value!r}")
    return number


def resolve(
    *,
    public_key: str | None,
    secret_key: str | None,
    base_url: str | None,
    timeout: float | None,
    flush_at: int | None,
    flush_interval: float | None,
    max_queue_size: int,
    additional_headers: Mapping[str, str] | None,
    environment: str | None,
    release: str | None,
    sample_rate: float | None,
    compression: str | None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Complete the arguments from the environment and validate them."""
    env = os.environ if environ is None else environ
    pk, _ = _pick(public_key, "LANGFUSE_PUBLIC_KEY", environ=env)
    sk, _ = _pick(secret_key, "LANGFUSE_SECRET_KEY", environ=env)
    if not pk:
        raise ValueError("LangfuseSpanProcessor needs a public key: pass public_key= or set LANGFUSE_PUBLIC_KEY")
    if not sk:
        raise ValueError("LangfuseSpanProcessor needs a secret key: pass secret_key= or set LANGFUSE_SECRET_KEY")

    url, url_source = _pick(base_url, "LANGFUSE_BASE_URL", "LANGFUSE_HOST", environ=env)
    url = str(url or DEFAULT_BASE_URL)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url ({url_source}) must be an http(s) URL like http://127.0.0.1:4318, got {url!r}")
    path = env.get("LANGFUSE_OTEL_TRACES_EXPORT_PATH", "").strip() or TRACES_PATH
    endpoint = join_url(url, path)

    raw, source = _pick(timeout, "LANGFUSE_TIMEOUT", environ=env)
    timeout_s = _number(raw, source, "timeout", float, minimum=0.001, default=5.0)
    raw, source = _pick(flush_at, "LANGFUSE_FLUSH_AT", environ=env)
    flush_at_n = int(_number(raw, source, "flush_at", int, minimum=1, default=512))
    raw, source = _pick(flush_interval, "LANGFUSE_FLUSH_INTERVAL", environ=env)
    interval = _number(raw, source, "flush_interval", float, minimum=0.001, default=5.0)
    raw, source = _pick(sample_rate, "LANGFUSE_SAMPLE_RATE", environ=env)
    rate = _number(raw, source, "sample_rate", float, minimum=0.0, default=1.0)
    if rate > 1.0:
        raise ValueError(f"sample_rate ({source}) must be between 0 and 1, got {raw!r}")
    if max_queue_size < 1:
        raise ValueError(f"max_queue_size must be at least 1, got {max_queue_size!r}")

    raw, source = _pick(
        compression,
        "LANGFUSE_OTEL_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        environ=env,
    )
    codec = str(raw or "gzip").strip().lower()
    if codec not in ("gzip", "none"):
        raise ValueError(f"compression ({source}) must be 'gzip' or 'none', got {raw!r}")

    env_name, _ = _pick(environment, "LANGFUSE_TRACING_ENVIRONMENT", environ=env)
    release_name, _ = _pick(release, *RELEASE_VARIABLES, environ=env)

    token = base64.b64encode(f"{pk}:{sk}".encode()).decode("ascii")
    headers = {
        "authorization": f"Basic {token}",
        "x-langfuse-sdk-name": SDK_NAME,
        "x-langfuse-sdk-version": SDK_VERSION,
        "x-langfuse-public-key": str(pk),
        "user-agent": f"{SDK_NAME}-python/{SDK_VERSION}",
        # Explicit headers win: the user may need to override anything (a proxy's own auth, say).
        **{k.lower(): v for k, v in (additional_headers or {}).items()},
    }
    return Settings(
        public_key=str(pk),
        endpoint=endpoint,
        headers=headers,
        timeout=timeout_s,
        flush_at=flush_at_n,
        flush_interval=interval,
        max_queue_size=max_queue_size,
        sample_rate=rate,
        compression=codec,
        environment=str(env_name) if env_name else None,
        release=str(release_name) if release_name else None,
    )
