"""HTTP/2 under httpx2 (and so under ghapi) to GitHub: one TLS connection, each request a stream.

httpcore2's HTTP/2 connection costs about 0.6 ms of CPU a request in locks, cancel scopes and
async-library lookups (anyio), which at 30 environments is most of a read's time past its two
rounds on the wire. Here one task reads the connection and hands each stream its answer; a
request is headers, a body, and a wait. ghapi builds the requests and httpx2 follows redirects,
decodes bodies and keeps cookies, as before; only the connection is ours.

A server whose ALPN chooses HTTP/1.1, and any other origin, get the ``fallback`` transport
(httpcore2's pool). Transport failures are httpx2's exceptions (``ConnectError``, ``ReadError``,
``RemoteProtocolError``), so the client's retries treat them as they treat httpcore2's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import httpx2

CLOSING = 0.25  #: seconds a closed connection's TLS shutdown may take before it is cut
WINDOW = 2**24  #: bytes a stream (and the connection) may receive before we say "more"
#: Headers that belong to one HTTP/1.1 connection: HTTP/2 forbids them (RFC 9113 §8.2.2).
CONNECTION_HEADERS = frozenset(
    {b"host", b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


class Multiplexed(httpx2.AsyncBaseTransport):
    """Requests to ``origin`` (``https://host[:port]``) as streams of one HTTP/2 connection,
    opened on first use and again after it is lost; anything else goes to ``fallback``."""

    def __init__(
        self, origin: httpx2.URL, context: ssl.SSLContext, fallback: httpx2.AsyncBaseTransport
    ) -> None:
        self.origin = (origin.scheme, origin.host, origin.port or 443)
        self.context = context
        self.fallback = fallback
        self.http1 = False  # the server's ALPN chose HTTP/1.1: everything to the fallback
        self._connection: _Connection | None = None
        self._earlier: list[_Connection] = []  # ones that went away, closed with the rest
        self._opening = asyncio.Lock()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if self.http1 or (url.scheme, url.host, url.port or 443) != self.origin:
            return await self.fallback.handle_async_request(request)
        for _ in range(3):
            connection = await self._connect()
            if connection is None:
                return await self.fallback.handle_async_request(request)
            try:
                return await connection.request(request)
            except _Gone:  # not sent: on a new connection
                continue
        raise httpx2.RemoteProtocolError("GitHub closed each new connection before a request")

    async def _connect(self) -> _Connection | None:
        async with self._opening:  # a wave's requests share the one connection being opened
            if self._connection is not None and self._connection.usable:
                return self._connection
            if self.http1:
                return None
            if self._connection is not None:
                self._earlier.append(self._connection)
                self._connection = None
            _, host, port = self.origin
            self.context.set_alpn_protocols(["h2", "http/1.1"])
            try:
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=self.context, server_hostname=host
                )
            except (OSError, ssl.SSLError) as e:  # refused, unreachable, a certificate refused
                raise httpx2.ConnectError(str(e) or type(e).__name__) from None
            tls = writer.get_extra_info("ssl_object")
            if tls is None or tls.selected_alpn_protocol() != "h2":
                self.http1 = True
                writer.close()
                return None
            self._connection = _Connection(reader, writer)
            return self._connection

    async def aclose(self) -> None:
        for connection in [*self._earlier, *([self._connection] if self._connection else [])]:
            await connection.close()
        self._connection, self._earlier = None, []
        await self.fallback.aclose()


class _Stream:
    __slots__ = ("answered", "body", "headers", "status", "window")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.answered: asyncio.Future[None] = loop.create_future()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.window = asyncio.Event()  # set when the server lets more of our body through

    def fail(self, error: Exception) -> None:
        if not self.answered.done():
            self.answered.set_exception(error)
            self.answered.exception()  # raised to the request waiting, if one still is
        self.window.set()


class _Gone(Exception):
    """The connection took no new stream (GOAWAY, or lost): the request was not sent."""


class _Connection:
    """One HTTP/2 connection: ``request`` sends a stream and waits; one task reads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # httpx2 has checked the headers we send; h2's checks of each header, both ways, cost
        # more than the rest of a request's handling here
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
            },
        )
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(WINDOW - 65535)  # the connection's own window
        self.writer = writer
        self.streams: dict[int, _Stream] = {}
        self.lost: Exception | None = None  # why the connection is gone (then: not usable)
        self.going_away = False  # GOAWAY: no new streams on this connection
        self.room = asyncio.Event()  # set when a stream closes: another may start
        # the server's SETTINGS (its limit on streams at once) come with the handshake's last
        # flight; until they are in, the limit is unknown (RFC 9113 §6.5.2: unlimited)
        self.settled = asyncio.Event()
        writer.write(self.h2.data_to_send())
        self.reading = asyncio.ensure_future(self._read(reader))

    @property
    def usable(self) -> bool:
        return self.lost is None and not self.going_away

    async def request(self, request: httpx2.Request) -> httpx2.Response:
        if not self.settled.is_set():
            await self.settled.wait()
        # our streams in flight (h2's own count walks every stream: a wave's worth each time)
        while self.usable and len(self.streams) >= self.h2.remote_settings.max_concurrent_streams:
            self.room.clear()
            await self.room.wait()  # the server's limit on streams at once
        if not self.usable:
            raise _Gone
        stream_id = self.h2.get_next_available_stream_id()
        stream = self.streams[stream_id] = _Stream(asyncio.get_running_loop())
        url = request.url
        headers = [
            (b":method", request.method.encode("ascii")),
            (b":authority", url.netloc),
            (b":scheme", url.scheme.encode("ascii")),
            (b":path", url.raw_path),
        ]
        headers += [
            (k.lower(), v) for k, v in request.headers.raw if k.lower() not in CONNECTION_HEADERS
        ]
        body = request.content
        try:
            self.h2.send_headers(stream_id, headers, end_stream=not body)
        except h2.exceptions.ProtocolError:  # the connection closed as we began
            self.streams.pop(stream_id, None)
            raise _Gone from None
        try:
            self._flush()
            await self._send_body(stream_id, stream, body)
            await stream.answered
        except BaseException:
            self._abandon(stream_id)
            raise
        finally:
            self.streams.pop(stream_id, None)
        return httpx2.Response(
            stream.status,
            headers=stream.headers,
            stream=httpx2.ByteStream(b"".join(stream.body)),
            extensions={"http_version": b"HTTP/2"},
            request=request,
        )

    async def _send_body(self, stream_id: int, stream: _Stream, body: bytes) -> None:
        view = memoryview(body)
        while view:
            if stream.answered.done():  # answered (or reset) before it had all of the body
                return
            size = min(
                self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size
            )
            if size <= 0:  # the server's window for us is spent: wait for its WINDOW_UPDATE
                stream.window.clear()
                await stream.window.wait()
                if self.lost is not None:
                    return  # waiting for the answer says why
                continue
            chunk, view = view[:size], view[size:]
            self.h2.send_data(stream_id, bytes(chunk), end_stream=not view)
            self._flush()

    def _abandon(self, stream_id: int) -> None:
        """A stream given up (timed out, cancelled, failed): tell the server, if it can hear."""
        if self.lost is not None:
            return
        with contextlib.suppress(h2.exceptions.H2Error):
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            self._flush()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.lost is None:
            self.writer.write(data)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(65536):
                self._received(self.h2.receive_data(data))
                self._flush()
            self._lose(httpx2.ReadError("GitHub closed the connection"))
        except asyncio.CancelledError:
            self._lose(httpx2.ReadError("the connection was closed"))
            raise
        except h2.exceptions.ProtocolError as e:
            self._lose(httpx2.RemoteProtocolError(f"HTTP/2: {e}"))
        except (OSError, ssl.SSLError) as e:
            self._lose(httpx2.ReadError(str(e) or type(e).__name__))
        except Exception as e:  # a fault of ours must not leave every stream waiting
            self._lose(httpx2.RemoteProtocolError(f"HTTP/2: {type(e).__name__}: {e}"))

    def _received(self, events: list[Any]) -> None:
        for event in events:
            kind = type(event)
            stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
            if kind is h2.events.DataReceived:
                if stream is not None:
                    stream.body.append(event.data)
                # what we took is room for more (h2 says so once enough is taken)
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif kind is h2.events.ResponseReceived and stream is not None:
                for name, value in event.headers:
                    if name == b":status":
                        stream.status = int(value)
                    elif not name.startswith(b":"):
                        stream.headers.append((name, value))
            elif kind is h2.events.StreamEnded:
                if stream is not None and not stream.answered.done():
                    stream.answered.set_result(None)
                self.room.set()
            elif kind is h2.events.StreamReset:
                if stream is not None:
                    code = _code(event.error_code)
                    stream.fail(httpx2.RemoteProtocolError(f"GitHub reset the stream ({code})"))
                self.room.set()
            elif kind is h2.events.WindowUpdated:
                for waiting in [stream] if stream is not None else self.streams.values():
                    waiting.window.set()
            elif kind is h2.events.RemoteSettingsChanged:
                self.settled.set()
                self.room.set()
                for waiting in self.streams.values():
                    waiting.window.set()  # a new initial window may have opened room
            elif kind is h2.events.ConnectionTerminated:
                self._going_away(event)

    def _going_away(self, event: h2.events.ConnectionTerminated) -> None:
        """GOAWAY: streams after ``last_stream_id`` were not processed and fail (to be tried
        again on a new connection); those before it are still answered, unless it was an error."""
        self.going_away = True
        code = event.error_code or 0
        last = event.last_stream_id if event.last_stream_id is not None else 0
        error = httpx2.RemoteProtocolError(f"GitHub closed the connection (GOAWAY {_code(code)})")
        for stream_id, stream in list(self.streams.items()):
            if stream_id > last or code != h2.errors.ErrorCodes.NO_ERROR:
                stream.fail(error)
        self.room.set()
        if code != h2.errors.ErrorCodes.NO_ERROR:
            self.lost = error

    def _lose(self, error: Exception) -> None:
        if self.lost is None:
            self.lost = error
        for stream in self.streams.values():
            stream.fail(self.lost)
        self.room.set()
        self.settled.set()

    async def close(self) -> None:
        if self.lost is None:
            with contextlib.suppress(h2.exceptions.H2Error):
                self.h2.close_connection()
                self._flush()
        self.reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reading
        self.writer.close()  # TLS's close_notify; a server slow to answer it is not waited for
        try:
            async with asyncio.timeout(CLOSING):
                await self.writer.wait_closed()
        except OSError:  # TimeoutError and ssl.SSLError among them
            self.writer.transport.abort()


def _code(code: int | None) -> str:
    """An HTTP/2 error code's name (``REFUSED_STREAM``), or its number if it has none."""
    try:
        return h2.errors.ErrorCodes(code or 0).name
    except ValueError:
        return str(code)
