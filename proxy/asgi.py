"""The few ASGI types and helpers the data path uses, without a framework."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


async def respond(send: Send, status: int, headers: Headers, body: bytes = b"") -> None:
    """A complete response in two messages; Content-Length is the caller's to set."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def start(send: Send, status: int, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def chunk(send: Send, body: bytes | memoryview, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})
