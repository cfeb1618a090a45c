"""API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>` on every /v1 request."""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping

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


def presented_key(headers: Headers) -> str | None:
    """The key a request carries (Bearer token first, then X-API-Key), or None."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


def route_path(scope: Scope) -> str:
    """The request path below the app's route prefix (Serve mounts each app at its prefix)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class ApiKeyAuth:
    """ASGI middleware: 401 without a key, 403 with a wrong one; paths outside /v1 stay open.

    /healthz, /docs and /openapi.json need no key, so probes and API readers work.
    """

    def __init__(self, app: ASGIApp, keys: frozenset[str]) -> None:
        self.app = app
        self._keys = [key.encode() for key in sorted(keys)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._keys:
            await self.app(scope, receive, send)
            return
        if not route_path(scope).startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        key = presented_key(Headers(scope=scope))
        if key is None:
            response = JSONResponse(
                {"detail": "an API key is required: 'Authorization: Bearer <key>' or 'X-API-Key'"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        elif not self._known(key):
            response = JSONResponse({"detail": "this API key is not valid"}, status_code=403)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    def _known(self, key: str) -> bool:
        given = key.encode()
        # Constant-time comparisons, and no early exit: timing says nothing about the keys.
        found = False
        for known in self._keys:
            found |= hmac.compare_digest(given, known)
        return found
