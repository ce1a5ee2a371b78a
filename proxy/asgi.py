"""The few ASGI types and helpers the data path uses, without a framework."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ZERO_COPY = "http.response.zerocopysend"  # the ASGI extension (asgiref's specs/extensions)


async def respond(send: Send, status: int, headers: Headers, body: bytes = b"") -> None:
    """A complete response in two messages; Content-Length is the caller's to set."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def start(send: Send, status: int, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def chunk(send: Send, body: bytes | memoryview, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


def offers_zero_copy(scope: Scope) -> bool:
    """Whether the server takes bodies as spans of open files (the ASGI zero-copy extension)."""
    return ZERO_COPY in (scope.get("extensions") or ())


async def file_chunk(send: Send, file: Any, offset: int, count: int, more: bool = True) -> None:
    await send(
        {"type": ZERO_COPY, "file": file, "offset": offset, "count": count, "more_body": more}
    )


def header_map(scope_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Request headers by lower-case name; repeated ones joined with commas (RFC 9110 §5.3)."""
    out: dict[str, str] = {}
    for raw_name, raw_value in scope_headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]},{value}" if name in out else value
    return out
