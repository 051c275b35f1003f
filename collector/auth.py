"""Resolve a request's credentials to exactly one project.

Credentials are HTTP Basic ``public_key:secret_key`` (the gRPC ``authorization`` metadata
carries the same value), as the Langfuse SDK sends them. Secrets are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from collector.config import Config

INVALID_CREDENTIALS = "Invalid credentials. Confirm that you've configured the correct host."
MISSING_CREDENTIALS = "Missing credentials: send HTTP Basic auth with your project's public key and secret key."


class AuthError(Exception):
    """The request is not authenticated; the message is safe to return to the client."""


@dataclass(frozen=True)
class _Keys:
    project_id: str
    secret: bytes


class Authenticator:
    def __init__(self, config: Config) -> None:
        self._by_public_key = {p.public_key: _Keys(p.id, p.secret_key.encode()) for p in config.projects}
        self.anonymous_project = config.auth.anonymous_project
        # Compared against when the public key is unknown, so both paths cost the same.
        self._decoy = b"\0" * 32

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
        expected = keys.secret if keys is not None else self._decoy
        matches = hmac.compare_digest(secret.encode(), expected)
        if not sep or keys is None or not matches:
            raise AuthError(INVALID_CREDENTIALS)
        return keys.project_id
