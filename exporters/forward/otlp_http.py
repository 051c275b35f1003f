"""OTLP/HTTP protobuf sender (the Collector's ``otlphttp`` exporter; also Langfuse's OTLP path).

Status handling follows the OTLP/HTTP specification, leaning towards keeping data: 2xx is
delivered (``partial_success`` counted), 408, 429, every 5xx and transport errors are retried
(honouring ``Retry-After``), a redirect is retried too (a misconfigured endpoint should show up as
lag, not as lost data), and any other 4xx is a permanent rejection.
"""

from __future__ import annotations

import email.utils
import time
import warnings
from collections.abc import Mapping

import requests
import urllib3
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from exporters.compression import gzip_bytes
from exporters.forward.base import Outcome, Result, TlsOptions, partial_success

PROTOBUF = "application/x-protobuf"
_RETRYABLE_4XX = {408, 429}
_PAYLOAD_PROBLEMS = {400, 413, 422}


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error_text(response: requests.Response) -> str:
    """The downstream's explanation: a ``google.rpc.Status`` for protobuf bodies, else the text."""
    body = response.content[:4096]
    if response.headers.get("content-type", "").startswith(PROTOBUF):
        status = status_pb2.Status()
        try:
            status.ParseFromString(body)
            return status.message
        except DecodeError:
            pass
    return body.decode("utf-8", "replace").strip()[:300]


class OtlpHttpSender:
    """POSTs serialized export requests to one URL per signal."""

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        headers: Mapping[str, str] | None = None,
        compression: str = "gzip",
        timeout: float = 10.0,
        tls: TlsOptions | None = None,
        user_agent: str = "spanfuse",
    ) -> None:
        self.urls = dict(urls)
        self.compression = compression
        self.timeout = timeout
        tls = tls or TlsOptions()
        self._session = requests.Session()
        self._session.trust_env = False  # proxies and netrc from the environment would change where data goes
        self._session.headers.update({"user-agent": user_agent, "content-type": PROTOBUF})
        self._session.headers.update(dict(headers or {}))
        if compression == "gzip":
            self._session.headers["content-encoding"] = "gzip"
        self._session.verify = False if tls.insecure_skip_verify else (tls.ca_file or True)
        if tls.insecure_skip_verify:  # chosen in the config: do not warn on every request
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        if tls.cert_file and tls.key_file:
            self._session.cert = (tls.cert_file, tls.key_file)

    def send(self, signal: str, payload: bytes) -> Result:
        """One POST; see the module docstring for how each answer is classified."""
        body = gzip_bytes(payload) if self.compression == "gzip" else payload
        try:
            response = self._session.post(self.urls[signal], data=body, timeout=self.timeout, allow_redirects=False)
        except requests.Timeout as exc:
            return Result(Outcome.RETRY, "timeout", str(exc))
        except requests.RequestException as exc:  # refused, reset, DNS, TLS handshake…
            return Result(Outcome.RETRY, "connect_error", str(exc))
        status = response.status_code
        if 200 <= status < 300:
            rejected, message = partial_success(signal, response.content)
            return Result(Outcome.SENT, f"http_{status}", message, rejected_items=rejected)
        reason = f"http_{status}"
        message = f"HTTP {status}: {_error_text(response)}"
        if status >= 500 or status in _RETRYABLE_4XX:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return Result(Outcome.RETRY, reason, message, retry_after=retry_after)
        if 300 <= status < 400:
            location = response.headers.get("location", "?")
            return Result(Outcome.RETRY, reason, f"HTTP {status} redirect to {location}: fix the endpoint")
        return Result(Outcome.REJECTED, reason, message, payload_problem=status in _PAYLOAD_PROBLEMS)

    def interrupt(self) -> None:
        """requests cannot abort a call in progress; it ends within ``timeout``."""

    def close(self) -> None:
        self._session.close()
