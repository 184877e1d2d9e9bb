"""The tool's own HTTP/2 connection (github/multiplex.py) against a real HTTP/2 server over TLS
whose every answer a test scripts: streams matched to answers, the server's limits (streams at
once, flow-control windows), and each way a connection goes wrong (GOAWAY, a reset stream, a
dropped connection, a stream never answered, a certificate not trusted, nobody listening)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
import trustme

from promote_tasks.errors import GitHubError
from promote_tasks.github import Connection
from promote_tasks.github import GitHub
from promote_tasks.github import UncertainWrite
from promote_tasks.github import client as transport
from promote_tasks.github import multiplex
from promote_tasks.github.client import POOL

TOKEN = "multiplex-secret-0123456789"  # must never appear in an error
#: (request number from 0, method, path, body) -> what the server does with it
Plan = Callable[[int, str, str, bytes], Any]


def echo(n: int, method: str, path: str, body: bytes) -> Any:
    return ("json", 200, {"n": n, "method": method, "path": path})


@dataclass
class Seen:
    method: str
    path: str
    body: bytes
    connection: int


@dataclass
class Scripted:
    """An HTTP/2 server over TLS on 127.0.0.1, in a thread of its own. ``plan`` says what it
    does with each request: ``("json", status, data)``, ``("bytes", status, body)``, ``"reset"``
    (REFUSED_STREAM), ``"goaway"`` (GOAWAY before this stream: not processed), ``"drop"`` (the
    connection cut) or ``"hang"`` (no answer)."""

    pem: Path
    plan: Plan = echo
    max_streams: int | None = None  #: SETTINGS_MAX_CONCURRENT_STREAMS
    window: int | None = None  #: SETTINGS_INITIAL_WINDOW_SIZE: what a request body may send
    alpn: tuple[str, ...] = ("h2",)
    linger: bool = False  #: when the client closes, answer nothing and keep the socket open
    refuse: bool = False  #: GOAWAY with the SETTINGS: the connection takes no request at all
    requests: list[Seen] = field(default_factory=list)
    resets: list[int] = field(default_factory=list)  #: streams the client reset
    connections: int = 0
    in_flight: int = 0
    most_in_flight: int = 0
    answering: set[asyncio.Future[None]] = field(default_factory=set)
    lingering: list[tuple[asyncio.Event, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(self.pem))
        self.context.set_alpn_protocols(list(self.alpn))
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def serve() -> None:
            self.server = await asyncio.start_server(
                self._connection, "127.0.0.1", 0, ssl=self.context
            )
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.loop.run_until_complete(serve())
        self.loop.run_forever()

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            for done, _ in self.lingering:
                done.set()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.connections
        self.connections += 1
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        settings = {}
        if self.max_streams is not None:
            settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = self.max_streams
        if self.window is not None:
            settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = self.window
        conn.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        conn.initiate_connection()
        if self.refuse:
            conn.close_connection(h2.errors.ErrorCodes.NO_ERROR, last_stream_id=0)
        writer.write(conn.data_to_send())
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        room: dict[int, asyncio.Event] = {}
        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = (dict(event.headers or ()), bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][1].extend(event.data)
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id)
                        seen = Seen(headers[":method"], headers[":path"], bytes(body), number)
                        self.requests.append(seen)
                        action = self.plan(
                            len(self.requests) - 1, seen.method, seen.path, seen.body
                        )
                        if not self._act(conn, writer, event.stream_id, action, room):
                            return
                    elif isinstance(event, h2.events.StreamReset):
                        self.resets.append(event.stream_id)
                    elif isinstance(event, h2.events.WindowUpdated):
                        for waiting in room.values():
                            waiting.set()
                writer.write(conn.data_to_send())
            if self.linger:  # no close_notify back, no close: until the server stops
                self.lingering.append((asyncio.Event(), asyncio.current_task()))
                await self.lingering[-1][0].wait()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def _act(
        self,
        conn: Any,
        writer: asyncio.StreamWriter,
        stream_id: int,
        action: Any,
        room: dict[int, asyncio.Event],
    ) -> bool:
        """Do what the plan says with one request; False: the connection is done."""
        if action == "drop":
            writer.transport.abort()
            return False
        if action == "goaway":
            last = max(0, stream_id - 2)  # this stream and any after it: not processed
            conn.close_connection(h2.errors.ErrorCodes.NO_ERROR, last_stream_id=last)
            writer.write(conn.data_to_send())
            return False
        if action == "reset":
            conn.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return True
        if action == "hang":
            return True
        kind, status, payload = action
        body = json.dumps(payload).encode() if kind in ("json", "gzip") else payload
        if kind == "gzip":  # as api.github.com answers a client that accepts it
            body = gzip.compress(body)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        answering = asyncio.ensure_future(self._answer(conn, writer, stream_id, status, body, room))
        self.answering.add(answering)
        answering.add_done_callback(self.answering.discard)
        return True

    async def _answer(
        self,
        conn: Any,
        writer: asyncio.StreamWriter,
        stream_id: int,
        status: int,
        body: bytes,
        room: dict[int, asyncio.Event],
    ) -> None:
        await asyncio.sleep(0.02)  # answers overlap: the streams are in flight together
        headers = [(":status", str(status)), ("content-type", "application/json")]
        if body[:2] == b"\x1f\x8b":
            headers.append(("content-encoding", "gzip"))
        conn.send_headers(stream_id, [*headers, ("content-length", str(len(body)))])
        view = memoryview(body)
        while True:
            size = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if size <= 0 and view:
                writer.write(conn.data_to_send())
                room[stream_id] = asyncio.Event()
                await room[stream_id].wait()
                continue
            chunk, view = view[:size], view[size:]
            conn.send_data(stream_id, bytes(chunk), end_stream=not view)
            if not view:
                break
        writer.write(conn.data_to_send())
        room.pop(stream_id, None)
        self.in_flight -= 1


@pytest.fixture
def pem(certificate: Path) -> Path:
    return certificate


@pytest.fixture
def serve(pem: Path) -> Iterator[Callable[..., Scripted]]:
    made: list[Scripted] = []

    def start(plan: Plan = echo, **options: Any) -> Scripted:
        made.append(Scripted(pem, plan, **options))
        return made[-1]

    yield start
    for server in made:
        server.stop()


async def no_wait(seconds: float) -> None:
    return None


def github(server: Scripted, **options: Any) -> GitHub:
    options = {"sleep": no_wait, "attempts": 3} | options
    return GitHub(Connection("acme/shop", TOKEN, server.url), **options)


def commits(client: GitHub, count: int) -> list[Any]:
    """``count`` different reads at once (a commit each), in one run."""

    async def wave() -> list[Any]:
        reads = (client._op("repos.get_commit", ref=f"{n:040x}") for n in range(count))
        return list(await asyncio.gather(*reads))

    return client.run(wave())


def test_a_wave_of_reads_is_one_connection_each_stream_its_own_answer(
    serve: Callable[..., Scripted], caplog: pytest.LogCaptureFixture
) -> None:
    server = serve()
    client = github(server)
    answers = commits(client, 40)
    assert [a["path"] for a in answers] == [f"/repos/acme/shop/commits/{n:040x}" for n in range(40)]
    assert server.connections == 1
    assert server.most_in_flight > POOL  # more at once than HTTP/1.1's pool could carry
    assert client._multiplexed  # the answers said HTTP/2
    # the run closed its connection cleanly: no task left behind, no error unretrieved
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_gzipped_answer_is_decoded(serve: Callable[..., Scripted]) -> None:
    server = serve(lambda n, method, path, body: ("gzip", 200, {"path": path}))
    client = github(server)
    assert client.run(client._op("repos.get")) == {"path": "/repos/acme/shop"}
    assert client.stats.received > 0


def test_the_servers_limit_on_streams_at_once_is_kept(serve: Callable[..., Scripted]) -> None:
    server = serve(max_streams=3)
    answers = commits(github(server), 20)
    assert len({a["path"] for a in answers}) == 20
    assert server.most_in_flight <= 3
    assert server.connections == 1


def test_a_body_larger_than_the_servers_window_waits_for_room(
    serve: Callable[..., Scripted],
) -> None:
    server = serve(window=1000)
    client = github(server)
    payload = {"blob": "x" * 20_000}
    client.run(client._op("repos.create_dispatch_event", event_type="big", client_payload=payload))
    (seen,) = server.requests
    assert seen.method == "POST"
    assert json.loads(seen.body)["client_payload"] == payload  # whole, in window-sized pieces


def test_answers_larger_than_the_connections_window_arrive_whole(
    serve: Callable[..., Scripted],
) -> None:
    """Two answers of 9 MiB at once outgrow the 16 MiB the connection first allows: the
    client must say it has taken what came, or the server waits for ever."""
    blob = "y" * (9 * 2**20)
    server = serve(lambda n, method, path, body: ("json", 200, {"n": n, "blob": blob}))
    answers = commits(github(server, timeout=20), 2)
    assert sorted(a["n"] for a in answers) == [0, 1]
    assert all(a["blob"] == blob for a in answers)


def test_after_a_goaway_a_request_it_refused_goes_on_a_new_connection(
    serve: Callable[..., Scripted],
) -> None:
    server = serve(lambda n, m, path, b: "goaway" if n == 1 else ("json", 200, {"path": path}))
    client = github(server)

    async def three() -> list[Any]:
        return [await client._op("repos.get_commit", ref=f"{n:040x}") for n in range(3)]

    answers = client.run(three())
    assert [a["path"] for a in answers] == [f"/repos/acme/shop/commits/{n:040x}" for n in range(3)]
    assert server.connections == 2
    assert [s.connection for s in server.requests] == [0, 0, 1, 1]  # the refused one again


def test_a_server_whose_every_connection_goes_away_is_a_one_line_error(
    serve: Callable[..., Scripted],
) -> None:
    server = serve(refuse=True)
    client = github(server, attempts=2)
    with pytest.raises(GitHubError) as raised:
        client.run(client._op("repos.get"))
    message = str(raised.value)
    assert message.startswith(f"cannot reach GitHub at {server.url} (RemoteProtocolError: ")
    assert "\n" not in message
    assert TOKEN not in message
    assert server.requests == []  # nothing was ever taken
    assert server.connections >= 2  # each try on new connections


def test_a_reset_stream_is_asked_again(serve: Callable[..., Scripted]) -> None:
    server = serve(lambda n, m, path, b: "reset" if n == 0 else ("json", 200, {"path": path}))
    client = github(server)
    assert client.run(client._op("repos.get"))["path"] == "/repos/acme/shop"
    assert len(server.requests) == 2
    assert server.connections == 1  # a stream refused, not the connection
    assert client.stats.retries == 1


def test_a_dropped_connection_is_a_read_retried_and_a_write_looked_for(
    serve: Callable[..., Scripted],
) -> None:
    server = serve(lambda n, m, path, b: "drop" if n in (0, 2) else ("json", 201, {"n": n}))
    client = github(server)
    assert client.run(client._op("repos.get"))["n"] == 1  # on a second connection
    with pytest.raises(UncertainWrite, match="may have been applied") as raised:
        client.run(
            client._op(
                "repos.create_commit_status",
                idempotent=False,
                sha="a" * 40,
                state="success",
                context="promote/dev",
            )
        )
    assert [s.method for s in server.requests] == ["GET", "GET", "POST"]  # never sent twice
    assert "ReadError" in str(raised.value)
    assert TOKEN not in str(raised.value)


def test_a_stream_never_answered_is_given_up_and_the_connection_serves_on(
    serve: Callable[..., Scripted],
) -> None:
    server = serve(lambda n, m, path, b: "hang" if n == 0 else ("json", 200, {"n": n}))
    client = github(server, attempts=1, timeout=0.5)

    async def both() -> tuple[str, Any]:
        try:
            await client._op("repos.get")
        except GitHubError as e:
            failed = str(e)
        return failed, await client._op("repos.get")

    failed, answer = client.run(both())
    assert failed.startswith(f"GitHub at {server.url} did not answer within 0.5 s")
    assert answer == {"n": 1}
    assert server.resets == [1]  # the client said it gave the stream up (RST_STREAM)
    assert server.connections == 1


def test_a_connection_slow_to_close_is_cut(
    serve: Callable[..., Scripted],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that never answers TLS's close_notify is not waited for past CLOSING (here
    none at all): the connection is cut, nothing is raised or left behind, and the next run
    opens another."""
    monkeypatch.setattr(multiplex, "CLOSING", 0)
    server = serve(linger=True)
    client = github(server)
    assert client.run(client._op("repos.get"))["n"] == 0
    assert client.run(client._op("repos.get"))["n"] == 1
    assert server.connections == 2
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_untrusted_certificate_is_a_one_line_error(
    serve: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = serve()
    other = trustme.CA()  # the client trusts another authority only
    other.cert_pem.write_to_path(str(tmp_path / "other.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "other.pem"))
    client = github(server, attempts=1)
    with pytest.raises(GitHubError) as raised:
        client.run(client._op("repos.get"))
    message = str(raised.value)
    assert message.startswith(f"cannot reach GitHub at {server.url} (ConnectError: ")
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert "\n" not in message
    assert TOKEN not in message
    assert server.requests == []


def test_nobody_listening_is_a_one_line_error(pem: Path) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    client = GitHub(
        Connection("acme/shop", TOKEN, f"https://127.0.0.1:{port}"), attempts=2, sleep=no_wait
    )
    with pytest.raises(GitHubError) as raised:
        client.run(client._op("repos.get"))
    message = str(raised.value)
    assert message.startswith(f"cannot reach GitHub at https://127.0.0.1:{port} (ConnectError: ")
    assert "\n" not in message
    assert client.stats.retries == 1  # never sent: tried again


@pytest.mark.parametrize(
    ("environment", "proxied"),
    [
        ({}, False),
        ({"HTTPS_PROXY": "http://proxy.internal:3128"}, True),
        ({"all_proxy": "http://proxy.internal:3128"}, True),
        ({"HTTPS_PROXY": "http://proxy.internal:3128", "NO_PROXY": "api.github.com"}, False),
        ({"HTTP_PROXY": "http://proxy.internal:3128"}, False),  # not for https://
    ],
)
def test_a_proxy_in_the_environment_gets_httpx2s_own_transports(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], proxied: bool
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert transport._proxied("https://api.github.com") is proxied
