"""API credentials as Smooch accepts them: Basic (key id, secret) or a Bearer HS256 JWT signed with the secret.

Only app-scope keys exist here, so a JWT must carry `scope: "app"`; Smooch's "account" and "appUser" scopes are
refused (there is no account level and users never call the API directly).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable

import jwt

JWT_ALGORITHM = "HS256"
JWT_SCOPE = "app"
MAX_HEADER_LENGTH = 8192


class AuthError(Exception):
    """Missing or wrong credentials: the caller answers 401 {"error": {"code": "unauthorized", "description"}}.

    The description never says which part was wrong (key id, secret, signature, claim).
    """

    code = "unauthorized"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


MISSING = "Authorization is required"
INVALID = "Invalid credentials"


def _basic(credentials: str, secret_for: Callable[[str], str | None]) -> str:
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise AuthError(INVALID) from None
    key_id, separator, secret = decoded.partition(":")
    if not separator or not key_id or not secret:
        raise AuthError(INVALID)
    expected = secret_for(key_id)
    # Compare even when the key is unknown, so timing does not tell unknown keys from wrong secrets.
    matches = hmac.compare_digest(secret.encode(), (expected or "\0" + secret).encode())
    if expected is None or not matches:
        raise AuthError(INVALID)
    return key_id


def _bearer(token: str, secret_for: Callable[[str], str | None]) -> str:
    token = token.strip()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError(INVALID) from None
    key_id = header.get("kid")
    if not isinstance(key_id, str) or not key_id or header.get("alg") != JWT_ALGORITHM:
        raise AuthError(INVALID)
    secret = secret_for(key_id)
    if secret is None:
        raise AuthError(INVALID)
    try:
        claims = jwt.decode(
            token, secret, algorithms=[JWT_ALGORITHM], options={"verify_aud": False, "require": ["scope"]}
        )
    except jwt.PyJWTError:
        raise AuthError(INVALID) from None
    if claims.get("scope") != JWT_SCOPE:
        raise AuthError(INVALID)
    return key_id


def authenticate(authorization: str | None, secret_for: Callable[[str], str | None]) -> str:
    """Check an Authorization header and return the API key id it proves; AuthError otherwise.

    `secret_for(key_id)` gives the secret of an active key, or None (unknown or revoked). JWTs: HS256 only,
    `kid` header = key id, `scope: "app"`; `exp` is honoured when present (Smooch's app JWTs need not expire).
    """
    if not authorization or not authorization.strip():
        raise AuthError(MISSING)
    if len(authorization) > MAX_HEADER_LENGTH:
        raise AuthError(INVALID)
    scheme, _, credentials = authorization.strip().partition(" ")
    if not credentials.strip():
        raise AuthError(INVALID)
    if scheme.lower() == "basic":
        return _basic(credentials, secret_for)
    if scheme.lower() == "bearer":
        return _bearer(credentials, secret_for)
    raise AuthError(INVALID)


def make_jwt(key_id: str, secret: str, *, expires_in: float | None = None) -> str:
    """An app-scope JWT for `key_id`, as a Smooch client builds one (header kid, HS256, claim scope "app")."""
    claims: dict[str, object] = {"scope": JWT_SCOPE}
    if expires_in is not None:
        claims["exp"] = int(time.time() + expires_in)
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM, headers={"kid": key_id})


def basic_header(key_id: str, secret: str) -> str:
    """The Authorization header value for Basic auth with an API key."""
    return "Basic " + base64.b64encode(f"{key_id}:{secret}".encode()).decode("ascii")
