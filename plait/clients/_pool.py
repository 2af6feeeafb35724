"""An httpx transport that hands each request a free HTTP/1.1 connection in O(1).

httpx's default transport (httpcore's ``AsyncConnectionPool``) rescans every
connection on each request and on each response close, with a nested scan per
idle connection, so its cost per request grows with the pool; and when several
requests arrive in one loop tick it assigns them all to the same idle
connection, so all but one fail with ``ConnectionNotAvailable`` and rescan
again. Measured at 64 connections, that pool work was most of a client's CPU
(bench/README.md).

`PooledTransport` keeps free connections on a stack: a request pops one (the
most recently used, whose socket is warm), or opens a new one while fewer than
``max_connections`` exist, or waits in line; the response's close pushes the
connection back and wakes the next in line. Connections are httpcore's own
``AsyncHTTP11Connection`` over httpcore's network backend, so HTTP parsing,
TLS and timeouts are exactly httpx's. Proxies configured in the environment
still go through httpx's own transports (httpx mounts them in front of this).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import httpx

# httpcore's exceptions, as httpx raises them (the same mapping httpx's own transport makes).
_EXCEPTIONS: dict[type[Exception], type[httpx.HTTPError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}


def _mapped(exc: Exception) -> Exception:
    """The httpx exception for an httpcore one (``exc`` itself when it is not httpcore's)."""
    for cls in type(exc).__mro__:
        target = _EXCEPTIONS.get(cls)
        if target is not None:
            return target(str(exc))
    return exc


class _Corked(httpcore.AsyncNetworkStream):
    """A socket stream that holds writes until the next read, so a request is one ``send``.

    httpcore writes a request's head and body separately: two system calls,
    and on loopback two wake-ups of the server, where one does.
    """

    __slots__ = ("_pending", "_stream", "_timeout")

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._pending: list[bytes] = []
        self._timeout: float | None = None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self._pending.append(buffer)
            self._timeout = timeout

    async def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            await self._stream.write(data, self._timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush()
        return await self._stream.read(max_bytes, timeout)

    async def aclose(self) -> None:
        self._pending.clear()
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        await self._flush()
        return _Corked(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _PooledStream(httpx.AsyncByteStream):
    """A response body that gives its connection back to the pool when closed."""

    __slots__ = ("_connection", "_parts", "_pool", "_stream")

    def __init__(
        self, stream: Any, pool: PooledTransport, connection: httpcore.AsyncHTTP11Connection
    ) -> None:
        self._stream = stream
        self._pool = pool
        self._connection: httpcore.AsyncHTTP11Connection | None = connection
        self._parts: Any = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._parts = self._stream.__aiter__()
        try:
            async for part in self._parts:
                yield part
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            # A body left half-read: close httpcore's generator here, in this task, rather
            # than leave it to the garbage collector.
            if self._parts is not None and hasattr(self._parts, "aclose"):
                await self._parts.aclose()
            await self._stream.aclose()
        finally:
            self._pool._release(connection)


class PooledTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 connections on a free stack, at most ``max_connections`` open at once."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry: float | None = 5.0,
        verify: bool | str | ssl.SSLContext = True,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._max = max(1, max_connections)
        self._expiry = keepalive_expiry
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._backend = network_backend or httpcore.AnyIOBackend()
        self._free: list[httpcore.AsyncHTTP11Connection] = []
        self._open = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def free_connections(self) -> int:
        return len(self._free)

    def __repr__(self) -> str:
        return (
            f"<PooledTransport open={self._open}/{self._max} free={len(self._free)} "
            f"waiting={len(self._waiters)}>"
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            connection = await self._acquire(core)
            try:
                response = await connection.handle_async_request(core)
            except BaseException:
                self._release(connection)
                raise
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_PooledStream(response.stream, self, connection),
            extensions=response.extensions,
        )

    async def _acquire(self, request: httpcore.Request) -> httpcore.AsyncHTTP11Connection:
        if self._closed:
            raise RuntimeError("the transport is closed; make a new client")
        origin = request.url.origin
        while True:
            while self._free:
                connection = self._free.pop()
                if connection.can_handle_request(origin) and not connection.has_expired():
                    return connection
                self._open -= 1
                await connection.aclose()
            if self._open < self._max:
                self._open += 1
                try:
                    return await self._connect(request)
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
            await self._wait(request)

    async def _wait(self, request: httpcore.Request) -> None:
        """Wait in line until a connection is released (only when all of them are busy)."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        timeout = request.extensions.get("timeout", {}).get("pool")
        try:
            async with asyncio.timeout(timeout):
                await future
        except BaseException as exc:
            if future.done() and not future.cancelled():
                self._wake()  # woken just as we gave up: pass the turn on
            else:
                future.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(future)
            if isinstance(exc, TimeoutError):
                raise httpcore.PoolTimeout(
                    f"no free connection within {timeout:g}s ({self._max} all busy)"
                ) from None
            raise

    async def _connect(self, request: httpcore.Request) -> httpcore.AsyncHTTP11Connection:
        url = request.url
        timeout = request.extensions.get("timeout", {}).get("connect")
        host = url.host.decode("ascii")
        stream = await self._backend.connect_tcp(host, url.port or _PORTS[url.scheme], timeout)
        if url.scheme == b"https":
            try:
                stream = await stream.start_tls(
                    self._ssl_context(), server_hostname=host, timeout=timeout
                )
            except BaseException:
                await stream.aclose()
                raise
        return httpcore.AsyncHTTP11Connection(
            url.origin, _Corked(stream), keepalive_expiry=self._expiry
        )

    def _ssl_context(self) -> ssl.SSLContext:
        # Built on first https use: it costs tens of milliseconds.
        if self._ssl is None:
            if isinstance(self._verify, ssl.SSLContext):
                self._ssl = self._verify
            else:
                self._ssl = httpx.create_ssl_context(verify=self._verify)
                self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    def _release(self, connection: httpcore.AsyncHTTP11Connection) -> None:
        if connection.is_available() and not self._closed:
            self._free.append(connection)
        else:
            # Closed by httpcore (an error, or the server asked), or we are shutting down.
            self._open -= 1
            if not connection.is_closed():
                task = asyncio.get_running_loop().create_task(connection.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        free, self._free = self._free, []
        self._open -= len(free)
        for connection in free:
            await connection.aclose()
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_exception(RuntimeError("the transport was closed"))


_PORTS = {b"http": 80, b"https": 443}
