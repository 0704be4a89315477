"""What keeps slow, stalled and vanishing clients of ``hrnet serve`` from holding its resources.

- ``RequestGuard`` (ASGI middleware, in every app): a body over the size limit is answered 413, one not whole
  within ``body_timeout_s`` of the head 408 (connection closed), a client gone mid-body is one INFO line, and a
  request the server stops without finishing 503. Bodies still arriving hold no pose slot (``/healthz`` counts
  them), so clients that stall cannot lock others out.
- ``connection_protocol`` (the server, ``hrnet serve``): a deadline for each request's head, an answer for a
  client that half-closes, keep-alive after an early answer, and no connection held by an answer nobody takes,
  which no setting of uvicorn gives.
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
    """ASGI middleware: the body limit, the body deadline, quiet disconnects and a 503 for the requests a forced
    stop cancels (module doc); ``counters`` is shared with the app, which reports it."""

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
        except asyncio.CancelledError:
            # uvicorn cancels the requests in progress only when it stops without waiting for them (a second
            # Ctrl-C, which ``run_beside`` logs once): each is told so, where uvicorn would log it as a crash.
            if not started:
                await _answer(send, 503, "the server stopped before this request was answered: send it again")
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


def connection_protocol(header_timeout_s: float, answer_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol (h11) with what its settings do not give, for ``uvicorn.Config(http=...)``:

    - a deadline for each request head: a connection whose next head has not arrived whole ``header_timeout_s``
      after it opened, or after its previous response, is closed as uvicorn closes an idle one (``shutdown``).
      uvicorn's ``timeout_keep_alive`` starts only after a response and stops at the first byte, so a client that
      sends nothing or trickles its head would hold the connection for ever;
    - a client that half-closes after its request (``shutdown(SHUT_WR)``, as ``nc -N`` and some proxies do) gets
      its answer, then the connection closes. uvicorn takes the end of the client's stream for a lost connection
      and drops the answer;
    - after an answer sent before its request's body was read (415, 404, 422), the rest of that body ends the
      keep-alive wait, which uvicorn does not start again: the connection is idle from the body's last byte, and
      closed ``timeout_keep_alive`` seconds later, as after any answer;
    - an answer the client stops taking (it reads nothing, and the rest waits in this process) is dropped once
      ``answer_timeout_s`` pass with none of it taken, connection and all: closing it waits until it is sent.

    The subclass touches uvicorn's private surface as little as it can: the ``on_response_complete`` hook, the
    ``cycle`` of the request in progress (a new one for each head: its ``response_complete`` and ``keep_alive``),
    and h11's connection state.

    Args:
        header_timeout_s: seconds a connection may take to send a whole request head.
        answer_timeout_s: seconds a client may take no byte of the rest of an answer.

    Returns:
        The protocol class.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class ConnectionProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            _no_delay(transport)
            super().connection_made(transport)
            self._close_unless_head(None, header_timeout_s)

        def data_received(self, data: bytes) -> None:
            answered = self.cycle if self.cycle is not None and self.cycle.response_complete else None
            super().data_received(data)
            if answered is not None and self.cycle is answered and self._idle():
                self._close_unless_head(answered, self.config.timeout_keep_alive, idle=True)

        def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio's: True keeps it open
            if self.cycle is not None and not self.cycle.response_complete and self.conn.their_state is h11.DONE:
                self.cycle.keep_alive = False  # answered, then closed (the client sends nothing more)
                return True  # keep the transport open for the answer
            return None  # no whole request in progress: closed, as uvicorn does

        def on_response_complete(self) -> None:
            answered = self.cycle  # before a pipelined request's head, parsed by the call below, replaces it
            super().on_response_complete()
            self._close_unless_head(answered, header_timeout_s)
            if self.transport.get_write_buffer_size():
                self._drop_unless_taken(self.transport.get_write_buffer_size())

        def _idle(self) -> bool:
            """No request in progress and no byte of the next one here."""
            return self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]

        def _close_unless_head(self, last: object, after_s: float, idle: bool = False) -> None:
            """Close the connection ``after_s`` from now unless a new request head has come whole (``idle``:
            unless a byte of one has come)."""

            def close() -> None:
                if self.cycle is last and not self.transport.is_closing() and (not idle or self._idle()):
                    why = "was idle for" if idle else "sent no whole request head within"
                    log.debug("closed a connection that %s %g s", why, after_s)
                    self.shutdown()

            asyncio.get_running_loop().call_later(after_s, close)

        def _drop_unless_taken(self, left: int) -> None:
            def check() -> None:
                now = self.transport.get_write_buffer_size()  # 0 once sent, or once the connection is gone
                if now and now >= left:
                    log.info(
                        "%s took none of the rest of its answer (%d bytes) for %g s: connection dropped",
                        "{}:{}".format(*self.client) if self.client else "a client",
                        now,
                        answer_timeout_s,
                    )
                    self.transport.abort()
                elif now:
                    self._drop_unless_taken(now)

            asyncio.get_running_loop().call_later(answer_timeout_s, check)

    return ConnectionProtocol
