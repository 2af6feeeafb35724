"""The simulator over HTTP/1.1 on loopback: an asyncio protocol speaking h11.

Routes: ``POST /v1/chat/completions`` and ``POST /v1/messages`` (also without
the ``/v1`` prefix) go to `SimulatedModel.handle`; ``GET /v1/models``,
``GET /health``, ``GET /stats``, ``GET /requests`` (the request log as JSON)
and ``DELETE /requests`` (clears the log and counters) are served here.
Connections are kept alive; streams go out with chunked transfer encoding.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import h11

from plait._checks import Checks
from plait.simulator.model import SimResponse, SimulatedModel
from plait.simulator.settings import SimulatorSettings
from plait.simulator.wire import error_body

_log = logging.getLogger(__name__)
_JSON = (b"content-type", b"application/json")
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_POST_ROUTES = frozenset({"/v1/chat/completions", "/chat/completions", "/v1/messages", "/messages"})
_GET_ROUTES = frozenset({"/health", "/stats", "/requests", "/v1/models", "/models"})


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class SimulatorServer:
    """Serves a `SimulatedModel` over HTTP; ``await start()`` returns the base URL.

    ``url`` has no path: OpenAI-style clients may use it or ``url + "/v1"``
    as their base URL, Anthropic-style clients use it as is.
    """

    def __init__(
        self,
        settings_or_model: SimulatorSettings | SimulatedModel | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        checks = Checks("SimulatorServer")
        checks.text("host", host)
        checks.number("port", port, low=0, high=65535, integer=True)
        checks.check(
            settings_or_model is None
            or isinstance(settings_or_model, SimulatorSettings | SimulatedModel),
            "settings_or_model",
            settings_or_model,
            "a SimulatorSettings, a SimulatedModel, or None",
        )
        checks.raise_any()
        if isinstance(settings_or_model, SimulatedModel):
            self.model = settings_or_model
        else:
            self.model = SimulatedModel(settings_or_model)
        self.host = host
        self.port = port
        self.connections_opened = 0
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()

    def __repr__(self) -> str:
        state = self.url if self._server is not None else "stopped"
        return f"SimulatorServer({state}, connections={len(self._connections)})"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> str:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        """Stop listening and drop every connection, cancelling requests in progress."""
        if self._server is None:
            return
        self._server.close()
        tasks = [c.abort() for c in tuple(self._connections)]
        await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _route(self, method: str, path: str, body: bytes) -> SimResponse:
        """The response to one HTTP request (the model's, or one of the utility routes)."""
        if method == "POST" and path in _POST_ROUTES:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = body.decode(errors="replace")  # logged, and refused with a 400
            return await self.model.handle(path, payload)
        if method == "GET" and path in _GET_ROUTES:
            return SimResponse(200, {}, json=self._utility(path))
        if method == "DELETE" and path == "/requests":
            cleared = len(self.model.requests)
            self.model.clear()
            return SimResponse(200, {}, json={"cleared": cleared})
        known = path in _POST_ROUTES or path in _GET_ROUTES
        status = 405 if known else 404
        message = f"{'method not allowed' if known else 'no route'}: {method} {path}"
        return SimResponse(status, {}, json=error_body("openai", status, message))

    def _utility(self, path: str) -> Any:
        if path == "/health":
            return {"status": "ok"}
        if path == "/stats":
            return self.model.stats.to_dict()
        if path == "/requests":
            return {"object": "list", "data": [r.to_dict() for r in self.model.requests]}
        models = [
            {"id": name, "object": "model", "created": 0, "owned_by": "plait"}
            for name in self.model.models
        ]
        return {"object": "list", "data": models}


class _Connection(asyncio.Protocol):
    """One client connection: h11 parses requests, one task answers each in turn."""

    def __init__(self, server: SimulatorServer):
        self._server = server
        self._h11 = h11.Connection(h11.SERVER)
        self._transport: asyncio.Transport  # set by connection_made, before any other call
        self._task: asyncio.Task[None] | None = None
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._writable = asyncio.Event()
        self._writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._server.connections_opened += 1
        self._server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._connections.discard(self)
        self._writable.set()
        if self._task is not None:
            self._task.cancel()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        self._h11.receive_data(data)
        if self._task is None:
            self._read_events()

    def eof_received(self) -> bool:
        # A half-closed client is gone for our purposes: close, cancelling its request.
        return False

    def abort(self) -> asyncio.Task[None] | None:
        task = self._task
        self._transport.abort()
        return task

    def _read_events(self) -> None:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._transport.write(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
                self._transport.close()
                _log.debug("closing a connection after a protocol error: %s", exc)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request = event
                self._body.clear()
                if self._h11.they_are_waiting_for_100_continue:
                    self._write(h11.InformationalResponse(status_code=100, headers=[]))
            elif isinstance(event, h11.Data):
                self._body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert self._request is not None  # h11 sends Request before EndOfMessage
                coro = self._answer(self._request, bytes(self._body))
                self._task = asyncio.get_running_loop().create_task(coro)
                return
            elif isinstance(event, h11.ConnectionClosed):
                self._transport.close()
                return

    def _write(self, *events: h11.Event) -> None:
        # One write per response part: fewer syscalls and TCP segments.
        self._transport.write(b"".join(self._h11.send(event) or b"" for event in events))

    async def _answer(self, request: h11.Request, body: bytes) -> None:
        method = request.method.decode()
        path = request.target.decode().partition("?")[0]
        try:
            response = await self._server._route(method, path, body)
            await self._send(response)
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("simulator failed on %s %s", method, path)
            if self._h11.our_state is h11.SEND_RESPONSE:
                message = "internal simulator error; see the server log"
                await self._send(SimResponse(500, {}, json=error_body("openai", 500, message)))
            else:
                self.abort()
        finally:
            self._task = None
        if self._transport.is_closing():
            return
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            self._read_events()
        else:
            self._transport.close()

    async def _send(self, response: SimResponse) -> None:
        if response.status is None:
            if response.fault == "connection_reset":
                self._reset()
            else:
                self._transport.close()
            return
        headers = [(k.encode(), v.encode()) for k, v in response.headers.items()]
        if response.stream is None:
            raw = response.raw if response.raw is not None else _dumps(response.json)
            headers += [_JSON, (b"content-length", str(len(raw)).encode())]
            head = h11.Response(status_code=response.status, headers=headers)
            self._write(head, h11.Data(data=raw), h11.EndOfMessage())
            return
        self._write(h11.Response(status_code=response.status, headers=headers + _SSE))
        try:
            async for event in response.stream:
                if self._transport.is_closing():
                    return
                self._write(h11.Data(data=event.encode()))
                await self._writable.wait()
        finally:
            await response.stream.aclose()
        if response.fault == "cut_stream":
            self._transport.close()
        else:
            self._write(h11.EndOfMessage())

    def _reset(self) -> None:
        """Drop the connection with a TCP reset, as a crashed server or proxy would."""
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._transport.abort()


@contextmanager
def serve_in_thread(
    settings_or_model: SimulatorSettings | SimulatedModel | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[SimulatorServer]:
    """Run a `SimulatorServer` on its own event loop in a daemon thread.

    For synchronous code (scripts, sync tests, notebooks): read ``server.url``
    and ``server.model`` from the caller's thread; the server stops on exit.
    """
    server = SimulatorServer(settings_or_model, host, port)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="plait-simulator", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result()
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
