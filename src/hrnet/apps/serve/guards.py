"""What keeps slow, stalled and vanishing clients of ``hrnet serve`` from holding its resources.

- ``RequestGuard`` (ASGI middleware, in every app): a body over the size limit is answered 413, one not whole
  within ``body_timeout_s`` of the head 408 (connection closed), a client gone mid-body is one INFO line. Bodies
  still arriving hold no pose slot (``/healthz`` counts them), so clients that stall cannot lock others out.
- ``header_deadline_protocol`` (the server, ``hrnet serve``): a deadline for each request's head, which no public
  setting of uvicorn gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class _BodyTooLargeError(Exception):
    pass


class _BodyLateError(Exception):
    """The body's deadline passed; ``args[0]``: the bytes of it that came."""


class _ClientGoneError(Exception):
    """The client went away while sending; ``args[0]``: the bytes of its body that came."""


@dataclass
class RequestCounters:
    """What ``RequestGuard`` saw: bodies arriving now, and requests cut off or abandoned since the start."""

    receiving: int = 0
    timed_out: int = 0
    disconnected: int = 0


class RequestGuard:
    """ASGI middleware: the body limit, the body deadline and quiet disconnects (module doc); ``counters`` is
    shared with the app, which reports it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, body_timeout_s: float, counters: RequestCounters):
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout_s = body_timeout_s
        self.counters = counters

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _answer(send, 413, self._too_large())
            return
        body = _Body(receive, self, has_body=declared not in (None, b"0") or b"transfer-encoding" in headers)
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        client = "{}:{}".format(*scope["client"]) if scope.get("client") else "a client"
        try:
            await self.app(scope, body.receive, tracked_send)
        except _BodyTooLargeError:
            if not started:
                await _answer(send, 413, self._too_large())
        except _BodyLateError as late:
            self.counters.timed_out += 1
            log.info(
                "%s: the request body had not arrived within %g s (%d bytes came): answered 408, connection closed",
                client,
                self.body_timeout_s,
                late.args[0],
            )
            if not started:
                await _answer(send, 408, f"the request body did not arrive within {self.body_timeout_s:g} s")
        except _ClientGoneError as gone:
            self.counters.disconnected += 1
            log.info("%s went away while sending its request (%d bytes of its body came)", client, gone.args[0])
        finally:
            body.finish()

    def _too_large(self) -> str:
        return f"the request body is over this server's limit of {self.max_bytes:,} bytes: send a smaller image"


class _Body:
    """The ``receive`` of one request, with the guard's size limit, deadline and disconnect handling."""

    def __init__(self, receive: Receive, guard: RequestGuard, has_body: bool):
        self._receive = receive
        self._guard = guard
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + guard.body_timeout_s
        self.received = 0
        self.done = not has_body
        if has_body:
            guard.counters.receiving += 1

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self._guard.counters.receiving -= 1

    async def receive(self) -> Message:
        if self.done:  # after the body the app only listens for a disconnect: no deadline
            return await self._receive()
        try:
            message = await asyncio.wait_for(self._receive(), max(0.0, self._deadline - self._loop.time()))
        except TimeoutError:
            raise _BodyLateError(self.received) from None
        if message["type"] == "http.disconnect":
            raise _ClientGoneError(self.received)
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self._guard.max_bytes:
                raise _BodyTooLargeError
            if not message.get("more_body", False):
                self.finish()
        return message


async def _answer(send: Send, status: int, detail: str) -> None:
    """A JSON error response that closes the connection (the rest of the body, if any, is never read)."""
    from starlette.responses import JSONResponse

    response = JSONResponse({"detail": detail}, status, {"connection": "close"})
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Nagle's algorithm off, so an answer's body (its second write) does not wait for the client's delayed
    acknowledgement of the head; asyncio does this only on sockets it made for TCP itself."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def header_deadline_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol (h11) with a deadline for each request head, for ``uvicorn.Config(http=...)``.

    A connection whose next request head has not arrived whole ``header_timeout_s`` after it opened, or after its
    previous response, is closed as uvicorn closes an idle one (``shutdown``). uvicorn has no such setting: its
    ``timeout_keep_alive`` starts only after a response and restarts at every byte, so a client that sends nothing
    or trickles its head holds the connection for ever, and ASGI middleware sees a request only once its head is
    whole. The subclass therefore touches uvicorn's private surface as little as it can: the ``on_response_complete``
    hook and the ``cycle`` of the request in progress (a new one for each head).

    Args:
        header_timeout_s: seconds a connection may take to send a whole request head.

    Returns:
        The protocol class.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadlineProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            _no_delay(transport)
            super().connection_made(transport)
            self._expect_head(None)

        def on_response_complete(self) -> None:
            answered = self.cycle  # before a pipelined request's head, parsed by the call below, replaces it
            super().on_response_complete()
            self._expect_head(answered)

        def _expect_head(self, last: object) -> None:
            def close_if_no_head() -> None:
                if self.cycle is last and not self.transport.is_closing():
                    log.debug("closed a connection that sent no whole request head within %g s", header_timeout_s)
                    self.shutdown()

            asyncio.get_running_loop().call_later(header_timeout_s, close_if_no_head)

    return HeaderDeadlineProtocol
