"""Request body size limit: 413 with a JSON body for bodies over the configured bytes.

Not FastAPI's own `max_body_size`: its 413 for a declared Content-Length is plain
text, sent past the app's exception handlers, unlike every other error of this API.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large(limit: int) -> str:
    """The 413 detail."""
    return f"request body over {limit} bytes"


class BodyLimit:
    """ASGI middleware: refuses a declared Content-Length over `limit` before reading anything,
    and stops reading a body without one (chunked) as soon as it passes `limit`."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"detail": too_large(self.limit)}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # FastAPI re-raises HTTPExceptions met while reading a body: a 413 answer.
                    raise HTTPException(413, too_large(self.limit))
            return message

        await self.app(scope, counted_receive, send)
