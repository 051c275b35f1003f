"""Resolve a request's credentials to exactly one project.

Credentials are HTTP Basic ``public_key:secret_key`` (the gRPC ``authorization`` metadata
carries the same value), as the Langfuse SDK sends them. Secrets are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

from collector.config import Config

INVALID_CREDENTIALS = "Invalid credentials. Confirm that you've configured the correct host."
MISSING_CREDENTIALS = "Missing credentials: send HTTP Basic auth with your project's public key and secret key."


class AuthError(Exception):
    """The request is not authenticated; the message is safe to return to the client."""


def _digest(secret: str) -> bytes:
    """A fixed-length digest of a secret: every comparison then costs the same whatever its length."""
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True)
class _Keys:
    project_id: str
    secret_digest: bytes


class Authenticator:
    """Maps ``Authorization`` header values to project ids (see :meth:`project_for`)."""

    def __init__(self, config: Config) -> None:
        self._by_public_key = {p.public_key: _Keys(p.id, _digest(p.secret_key)) for p in config.projects}
        self.anonymous_project = config.auth.anonymous_project
        # Compared against when the public key is unknown, so a known and an unknown public key
        # take the same path: whether a public key exists does not show in the time to answer.
        self._decoy = _digest(os.urandom(32).hex())

    def project_for(self, authorization: str | None) -> str:
        """The project id for an ``Authorization`` header value; raises :class:`AuthError`."""
        if not authorization:
            if self.anonymous_project is not None:
                return self.anonymous_project
            raise AuthError(MISSING_CREDENTIALS)
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            raise AuthError(INVALID_CREDENTIALS)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError(INVALID_CREDENTIALS) from None
        public_key, sep, secret = decoded.partition(":")
        keys = self._by_public_key.get(public_key)
        expected = keys.secret_digest if keys is not None else self._decoy
        matches = hmac.compare_digest(_digest(secret), expected)
        if not sep or keys is None or not matches:
            raise AuthError(INVALID_CREDENTIALS)
        return keys.project_id
