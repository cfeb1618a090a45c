"""API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>` on every /v1 request.

`KeyCheck` decides; the HTTP middleware below and the gRPC API (serve/grpc_api.py, where
the two are metadata) answer its refusals, so both refuse the same keys with the same words.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

API_KEYS_ENV = "PINSTREAM_API_KEYS"
PROTECTED_PREFIX = "/v1/"


def api_keys(configured: Iterable[str], environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The configured keys plus those in $PINSTREAM_API_KEYS (comma-separated); empty = no auth."""
    environ = os.environ if environ is None else environ
    from_env = (key.strip() for key in environ.get(API_KEYS_ENV, "").split(","))
    return frozenset(configured) | frozenset(key for key in from_env if key)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries (Bearer token first, then X-API-Key), or None; `headers`
    has lower-case names (HTTP headers, gRPC metadata)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


def route_path(scope: Scope) -> str:
    """The request path below the app's route prefix (Serve mounts each app at its prefix)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: 401 without a key, 403 with a wrong one."""

    status: Literal[401, 403]
    detail: str


NO_KEY = Refusal(401, "an API key is required: 'Authorization: Bearer <key>' or 'X-API-Key'")
WRONG_KEY = Refusal(403, "this API key is not valid")


class KeyCheck:
    """Whether a request carries one of the keys; with no keys every request passes."""

    def __init__(self, keys: frozenset[str]) -> None:
        self._keys = [key.encode() for key in sorted(keys)]

    def refusal(self, headers: Mapping[str, str]) -> Refusal | None:
        """None when the request may pass, else why it may not."""
        if not self._keys:
            return None
        key = presented_key(headers)
        if key is None:
            return NO_KEY
        return None if self._known(key) else WRONG_KEY

    def _known(self, key: str) -> bool:
        given = key.encode()
        # Constant-time comparisons, and no early exit: timing says nothing about the keys.
        found = False
        for known in self._keys:
            found |= hmac.compare_digest(given, known)
        return found


class ApiKeyAuth:
    """ASGI middleware: 401 without a key, 403 with a wrong one; paths outside /v1 stay open.

    /healthz, /docs and /openapi.json need no key, so probes and API readers work.
    """

    def __init__(self, app: ASGIApp, keys: frozenset[str]) -> None:
        self.app = app
        self._check = KeyCheck(keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        open_path = scope["type"] != "http" or not route_path(scope).startswith(PROTECTED_PREFIX)
        refusal = None if open_path else self._check.refusal(Headers(scope=scope))
        if refusal is None:
            await self.app(scope, receive, send)
            return
        challenge = {"WWW-Authenticate": "Bearer"} if refusal is NO_KEY else None
        response = JSONResponse(
            {"detail": refusal.detail}, status_code=refusal.status, headers=challenge
        )
        await response(scope, receive, send)
