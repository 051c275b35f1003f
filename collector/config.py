"""Load and validate ``otel-config.yaml``.

The file follows the OpenTelemetry Collector's shape (``receivers``, ``processors``,
``exporters``, ``service.pipelines``) plus Spanfuse's own sections (``projects``, ``auth``,
``storage``). ``${env:NAME}`` and ``${env:NAME:-default}`` are substituted in every string
value after the YAML is parsed, so an error can name the key it happened in.

Every problem is reported as one :class:`ConfigError` whose message names the key, e.g.
``receivers.otlp.protocols.grpc.endpoint: expected host:port, got 'localhost'``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from collector.pricing.config import PricingEntry

DEV_PUBLIC_KEY = "pk-lf-local"
DEV_SECRET_KEY = "sk-lf-local"
MIB = 1024 * 1024

_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class ConfigError(Exception):
    """An invalid configuration; the message is one line naming the key and the problem."""


def _parse_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 1s or 500ms")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as 1s or 500ms, got {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


# A DNS name or an IP address (IPv6 with a zone): anything else, such as a space, is a typo.
_HOST = re.compile(r"[A-Za-z0-9._:%-]+")


def split_endpoint(value: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 as ``[::1]:4317``); port 0 asks the OS for a free port."""
    text = str(value).strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not _HOST.fullmatch(host) or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    return host, int(port)


def _check_endpoint(value: Any) -> str:
    split_endpoint(str(value))
    return str(value).strip()


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


Duration = Annotated[float, BeforeValidator(_parse_duration)]
Endpoint = Annotated[str, BeforeValidator(_check_endpoint)]


def _check_project_id(value: Any) -> str:
    if not isinstance(value, str) or not _PROJECT_ID.match(value):
        raise ValueError(
            f"{value!r} is not a valid project id: use up to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


ProjectId = Annotated[str, BeforeValidator(_check_project_id)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GrpcProtocol(_Strict):
    endpoint: Endpoint = "127.0.0.1:4317"
    max_recv_msg_size_mib: int = Field(16, gt=0, le=1024)


class HttpProtocol(_Strict):
    endpoint: Endpoint = "127.0.0.1:4318"
    max_request_body_size: int = Field(16 * MIB, gt=0, le=1024 * MIB)


class OtlpProtocols(_Strict):
    grpc: GrpcProtocol | None = None
    http: HttpProtocol | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_means_defaults(cls, data: Any) -> Any:
        # As in the OpenTelemetry Collector, a bare `http:` enables the protocol with defaults.
        if isinstance(data, dict):
            return {k: ({} if v is None and k in ("grpc", "http") else v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _one_protocol(self) -> OtlpProtocols:
        if self.grpc is None and self.http is None:
            raise ValueError("enable at least one of grpc, http")
        return self


class Admission(_Strict):
    # Bytes of requests all receivers may hold at once (collector.admission says how they count);
    # more are refused with a retryable answer. One request alone is always taken.
    request_limit_mib: int = Field(64, gt=0, le=64 * 1024)


class OtlpReceiver(_Strict):
    protocols: OtlpProtocols
    admission: Admission = Admission()


class Receivers(_Strict):
    otlp: OtlpReceiver


class ParquetExporter(_Strict):
    path: Path = Path("./data")
    flush_interval: Duration = 1.0
    retention_days: int = Field(0, ge=0)
    compaction_interval: Duration = 60.0
    workers: int = Field(2, ge=0, le=64)  # mapping processes; 0 maps inside the collector process


def _check_url(value: Any) -> str:
    text = str(value).strip()
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a port out of range
    except ValueError:
        port, parts = -1, urlsplit("")
    valid_host = _HOST.fullmatch(parts.hostname or "")
    if parts.scheme not in ("http", "https") or not valid_host or port == -1 or parts.query or parts.fragment:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return text


def _check_grpc_endpoint(value: Any) -> str:
    text = str(value).strip()
    # As in the OpenTelemetry Collector, an http:// or https:// prefix is allowed; https forces TLS.
    host_port = text.removeprefix("https://").removeprefix("http://").rstrip("/")
    try:
        split_endpoint(host_port)
    except ValueError:
        raise ValueError(f"expected host:port or https://host:port, got {value!r}") from None
    return text


def _check_file(value: Any) -> Path:
    path = Path(str(value))
    if not path.is_file():
        raise ValueError(f"no such file {str(value)!r}")
    return path


Url = Annotated[str, BeforeValidator(_check_url)]
GrpcEndpoint = Annotated[str, BeforeValidator(_check_grpc_endpoint)]
ExistingFile = Annotated[Path, BeforeValidator(_check_file)]


class ExporterTls(_Strict):
    """``tls`` as the OpenTelemetry Collector spells it for its exporters."""

    insecure: bool = False  # gRPC only: plaintext to the peer (HTTP exporters follow the URL's scheme)
    insecure_skip_verify: bool = False
    ca_file: ExistingFile | None = None
    cert_file: ExistingFile | None = None
    key_file: ExistingFile | None = None

    @model_validator(mode="after")
    def _cert_with_key(self) -> ExporterTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set both cert_file and key_file for a client certificate, or neither")
        return self


class RetryOnFailure(_Strict):
    """Backoff between attempts; with ``enabled: false`` a failed delivery is dropped, as in the Collector."""

    enabled: bool = True
    initial_interval: Duration = 0.5
    max_interval: Duration = 5.0

    @model_validator(mode="after")
    def _ordered(self) -> RetryOnFailure:
        if self.max_interval < self.initial_interval:
            raise ValueError("max_interval must not be shorter than initial_interval")
        return self


class Forwarder(_Strict):
    """Settings every forwarding exporter shares (``otlp/<name>``, ``otlphttp/<name>``, ``langfuse/<name>``)."""

    type: ClassVar[str]
    signals: ClassVar[tuple[str, ...]] = ("traces", "logs")
    endpoint: str
    headers: dict[str, str] = {}
    compression: Literal["gzip", "none"] = "gzip"
    timeout: Duration = 10.0
    tls: ExporterTls = ExporterTls()
    retry_on_failure: RetryOnFailure = RetryOnFailure()
    projects: list[ProjectId] | None = None  # forward only these projects' data; None forwards every project
    sending_queue: None = None  # accepted only to explain why it is not needed (see the validator)

    @field_validator("sending_queue", mode="before")
    @classmethod
    def _no_queue(cls, value: Any) -> None:
        if value is not None:
            raise ValueError("not needed: the write-ahead log is every forwarder's queue; remove it")
        return None


class OtlpGrpcForwarder(Forwarder):
    """``otlp/<name>``: OTLP over gRPC, like the Collector's ``otlp`` exporter."""

    type: ClassVar[str] = "otlp"
    endpoint: GrpcEndpoint

    @model_validator(mode="after")
    def _tls_supported(self) -> OtlpGrpcForwarder:
        if self.tls.insecure_skip_verify:
            raise ValueError("tls.insecure_skip_verify is not supported by the gRPC client; use tls.ca_file")
        return self

    @property
    def target(self) -> str:
        """The ``host:port`` to dial."""
        return self.endpoint.removeprefix("https://").removeprefix("http://").rstrip("/")

    @property
    def plaintext(self) -> bool:
        """True for ``tls.insecure`` (an ``https://`` endpoint always uses TLS, as in the Collector)."""
        return self.tls.insecure and not self.endpoint.startswith("https://")


class OtlpHttpForwarder(Forwarder):
    """``otlphttp/<name>``: OTLP/HTTP protobuf to ``{endpoint}/v1/traces`` and ``/v1/logs``."""

    type: ClassVar[str] = "otlphttp"
    endpoint: Url
    traces_endpoint: Url | None = None  # used as is, like the Collector's per-signal URLs
    logs_endpoint: Url | None = None

    def url_for(self, signal: str) -> str:
        explicit = self.traces_endpoint if signal == "traces" else self.logs_endpoint
        return explicit or f"{self.endpoint.rstrip('/')}/v1/{signal}"


class LangfuseForwarder(Forwarder):
    """``langfuse/<name>``: a Langfuse server's OTLP path with Basic auth from the project's keys."""

    type: ClassVar[str] = "langfuse"
    signals: ClassVar[tuple[str, ...]] = ("traces",)  # Langfuse has no OTLP logs endpoint
    endpoint: Url
    public_key: str = Field(min_length=1)
    secret_key: str = Field(min_length=1)

    @model_validator(mode="after")
    def _auth_from_keys(self) -> LangfuseForwarder:
        if any(name.lower() == "authorization" for name in self.headers):
            raise ValueError("headers.authorization: set public_key and secret_key instead")
        return self

    def url_for(self, signal: str) -> str:
        return f"{self.endpoint.rstrip('/')}/api/public/otel/v1/{signal}"


FORWARDER_TYPES: dict[str, type[Forwarder]] = {
    cls.type: cls for cls in (OtlpGrpcForwarder, OtlpHttpForwarder, LangfuseForwarder)
}
_EXPORTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _parse_forwarder(key: str, value: Any) -> Forwarder:
    kind, sep, name = key.partition("/")
    model = FORWARDER_TYPES.get(kind)
    if model is None:
        raise ValueError(f"exporters.{key}: unknown exporter type {kind!r}; use parquet, {', '.join(FORWARDER_TYPES)}")
    if sep and not _EXPORTER_NAME.match(name):
        raise ValueError(f"exporters.{key}: the name after '/' may use up to 64 letters, digits, '.', '_' or '-'")
    try:
        return model.model_validate({} if value is None else value)
    except ValidationError as exc:
        raise ValueError(_format_validation_error(exc, prefix=f"exporters.{key}")) from None


class Exporters(_Strict):
    """``parquet`` plus any number of forwarders, keyed ``type/name`` as in the Collector."""

    parquet: ParquetExporter
    forwarders: dict[str, Forwarder] = {}

    @model_validator(mode="before")
    @classmethod
    def _split_forwarders(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        built = data.get("forwarders")
        if isinstance(built, dict) and all(isinstance(v, Forwarder) for v in built.values()):
            return data  # already split (a model built in code)
        out = {"parquet": data["parquet"]} if "parquet" in data else {}
        out["forwarders"] = {str(k): _parse_forwarder(str(k), v) for k, v in data.items() if k != "parquet"}
        return out

    @property
    def names(self) -> set[str]:
        """Every exporter a pipeline may list."""
        return {"parquet", *self.forwarders}


class Pipeline(_Strict):
    receivers: list[str] = Field(min_length=1)
    processors: list[str] = []
    exporters: list[str] = Field(min_length=1)


class Service(_Strict):
    pipelines: dict[Literal["traces", "logs"], Pipeline] = Field(min_length=1)
    telemetry: dict[str, Any] = {}
    extensions: list[str] = []


class Project(_Strict):
    id: ProjectId
    name: str = Field(min_length=1)
    public_key: str = Field(min_length=1)
    secret_key: str = Field(min_length=1)

    @property
    def uses_development_keys(self) -> bool:
        return self.public_key == DEV_PUBLIC_KEY or self.secret_key == DEV_SECRET_KEY


class Auth(_Strict):
    anonymous_project: str | None = None


class WalSettings(_Strict):
    segment_size_mib: int = Field(64, gt=0, le=4096)
    max_backlog_mib: int = Field(1024, gt=0)
    fsync: bool = True


class Storage(_Strict):
    wal: WalSettings = WalSettings()


class Config(_Strict):
    receivers: Receivers
    processors: dict[str, Any] = {}
    exporters: Exporters
    extensions: dict[str, Any] = {}
    service: Service
    projects: list[Project] = Field(min_length=1)
    auth: Auth = Auth()
    storage: Storage = Storage()
    pricing: list[PricingEntry] = []  # custom model prices; they win over the genai-prices defaults

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        seen_ids: set[str] = set()
        seen_keys: set[str] = set()
        for project in self.projects:
            if project.id in seen_ids:
                raise ValueError(f"projects: duplicate project id {project.id!r}")
            if project.public_key in seen_keys:
                raise ValueError(f"projects: public key of {project.id!r} is used by another project")
            seen_ids.add(project.id)
            seen_keys.add(project.public_key)
        for index, entry in enumerate(self.pricing):
            unknown = sorted(set(entry.projects or ()) - seen_ids)
            if unknown:
                raise ValueError(f"pricing[{index}].projects: no project with id {unknown[0]!r}")
        for key, forwarder in self.exporters.forwarders.items():
            unknown = sorted(set(forwarder.projects or ()) - seen_ids)
            if unknown:
                raise ValueError(f"exporters.{key}.projects: no project with id {unknown[0]!r}")
        anonymous = self.auth.anonymous_project
        if anonymous is not None and anonymous not in seen_ids:
            raise ValueError(f"auth.anonymous_project: no project with id {anonymous!r}")
        for signal, pipeline in self.service.pipelines.items():
            for name in pipeline.receivers:
                if name != "otlp":
                    raise ValueError(f"service.pipelines.{signal}.receivers: unknown receiver {name!r}")
            for name in pipeline.exporters:
                if name not in self.exporters.names:
                    raise ValueError(f"service.pipelines.{signal}.exporters: unknown exporter {name!r}")
                forwarder = self.exporters.forwarders.get(name)
                if forwarder is not None and signal not in forwarder.signals:
                    raise ValueError(
                        f"service.pipelines.{signal}.exporters: {name} cannot export {signal}; "
                        f"{forwarder.type} exporters support {', '.join(forwarder.signals)} only"
                    )
            for name in pipeline.processors:
                if name not in self.processors:
                    raise ValueError(f"service.pipelines.{signal}.processors: unknown processor {name!r}")
        return self

    @property
    def data_dir(self) -> Path:
        return self.exporters.parquet.path

    def project(self, project_id: str) -> Project:
        return next(p for p in self.projects if p.id == project_id)


def _substitute(value: Any, path: str, environ: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, f"{path}.{k}" if path else str(k), environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, f"{path}[{i}]", environ) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ and environ[name] != "":
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: environment variable {name} is not set and has no default")

    return _ENV_REF.sub(replace, value)


def _format_location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith("function-"):
            out += f".{part}" if out else str(part)
    return out


def _format_validation_error(error: ValidationError, prefix: str = "") -> str:
    first = error.errors()[0]
    where = _format_location(tuple(first["loc"]))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "required key is missing"
    if prefix:  # errors of a model validated inside another one (the forwarders of `exporters`)
        return f"{prefix}.{where}: {message}" if where else f"{prefix}: {message}"
    if (where and message.startswith(where.split("[")[0] + ".")) or not where:
        return message
    return f"{where}: {message}"


def parse_config(text: str, environ: dict[str, str] | None = None) -> Config:
    """Parse YAML text into a validated :class:`Config`; raises :class:`ConfigError`."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}{problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError("the configuration must be a mapping with receivers, exporters, service, projects")
    raw = _substitute(raw, "", dict(os.environ) if environ is None else environ)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read and validate a configuration file; relative data paths stay relative to the CWD."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_config(text, environ)


def check_safe_to_listen(config: Config) -> None:
    """Refuse non-loopback listeners while development keys or anonymous ingest are configured."""
    protocols = config.receivers.otlp.protocols
    listeners = [
        ("receivers.otlp.protocols.grpc.endpoint", protocols.grpc.endpoint if protocols.grpc else None),
        ("receivers.otlp.protocols.http.endpoint", protocols.http.endpoint if protocols.http else None),
    ]
    for key, endpoint in listeners:
        if endpoint is None:
            continue
        host, _ = split_endpoint(endpoint)
        if is_loopback(host):
            continue
        if config.auth.anonymous_project is not None:
            raise ConfigError(
                f"{key}: {endpoint} is reachable from other machines while auth.anonymous_project "
                "accepts requests without credentials; remove auth.anonymous_project"
            )
        for index, project in enumerate(config.projects):
            if project.uses_development_keys:
                raise ConfigError(
                    f"{key}: {endpoint} is reachable from other machines while projects[{index}] uses the "
                    "development keys; set SPANFUSE_PUBLIC_KEY and SPANFUSE_SECRET_KEY"
                )
