"""Collector-side senders: deliver OTLP export requests, as received, to another backend.

Each sender speaks one wire protocol (:mod:`.otlp_grpc`, :mod:`.otlp_http`) and answers every
attempt with a :class:`~exporters.forward.base.Result` saying whether the downstream took the
data, wants it again later, or refused it for good. Retrying, batching and committing progress
belong to the caller (the collector's WAL forwarder). This subpackage is never imported by
``exporters/__init__.py``: the gRPC sender needs grpcio, which the client side must not require.
"""

from exporters.forward.base import Backoff, Outcome, Result, Sender, TlsOptions

__all__ = ["Backoff", "Outcome", "Result", "Sender", "TlsOptions"]
