"""An HTTP/2 front for the sandbox, over TLS, as api.github.com speaks it: one connection
carries many requests at once. Each request goes on to the sandbox over HTTP/1.1 (its latency,
faults and counts apply to each; a connection the sandbox cuts, the front cuts too, with every
stream on it); the front counts connections and streams in flight."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import queue
import ssl
import threading
from dataclasses import dataclass
from dataclasses import field
from typing import Any

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade"})


@dataclass
class FrontStats:
    connections: int = 0  #: client connections accepted
    protocols: list[str] = field(default_factory=list)  #: what ALPN chose on each
    streams: int = 0  #: requests received (counted before they are answered)
    in_flight: int = 0
    most_in_flight: int = 0
    writes_in_flight: int = 0
    most_writes_in_flight: int = 0


class H2Front:
    """``H2Front(port, certfile, keyfile).start()``: ``url`` is ``https://127.0.0.1:<port>``."""

    def __init__(self, backend_port: int, certfile: str, keyfile: str) -> None:
        self.backend_port = backend_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(certfile, keyfile)
        self.context.set_alpn_protocols(["h2"])
        self.stats = FrontStats()
        self._pool: queue.SimpleQueue[http.client.HTTPConnection] = queue.SimpleQueue()
        self._workers = concurrent.futures.ThreadPoolExecutor(max_workers=128)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> H2Front:
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._workers.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            self._server = await asyncio.start_server(
                self._connection, "127.0.0.1", 0, ssl=self.context
            )
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(serve())
        self._loop.run_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h2.config
        import h2.connection
        import h2.events

        ssl_object = writer.get_extra_info("ssl_object")
        protocol = (ssl_object.selected_alpn_protocol() if ssl_object else None) or "http/1.1"
        self.stats.connections += 1
        self.stats.protocols.append(protocol)
        if protocol != "h2":  # this front speaks HTTP/2 only, as its ALPN said
            writer.close()
            return
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
        windows: dict[int, asyncio.Event] = {}
        tasks: set[asyncio.Task[None]] = set()
        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        pairs = [(str(k), str(v)) for k, v in event.headers or ()]
                        streams[event.stream_id] = (pairs, bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][1].extend(event.data)
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id)
                        task = asyncio.ensure_future(
                            self._answer(
                                conn, writer, windows, event.stream_id, headers, bytes(body)
                            )
                        )
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    elif isinstance(event, h2.events.WindowUpdated):
                        for wait in windows.values():
                            wait.set()
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                writer.write(conn.data_to_send())
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            writer.close()

    async def _answer(
        self,
        conn: Any,
        writer: asyncio.StreamWriter,
        windows: dict[int, asyncio.Event],
        stream_id: int,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        stats = self.stats
        write = next((v for k, v in headers if k == ":method"), "GET") != "GET"
        stats.streams += 1
        stats.in_flight += 1
        stats.most_in_flight = max(stats.most_in_flight, stats.in_flight)
        stats.writes_in_flight += write
        stats.most_writes_in_flight = max(stats.most_writes_in_flight, stats.writes_in_flight)
        try:
            answered = await self._loop.run_in_executor(self._workers, self._forward, headers, body)
            if answered is None:  # the sandbox cut the connection (a "drop" fault): so do we,
                writer.transport.abort()  # and every stream on it is lost, as on GitHub
                return
            status, answer_headers, payload = answered
            conn.send_headers(
                stream_id,
                [(":status", str(status)), *answer_headers],
                end_stream=not payload,
            )
            writer.write(conn.data_to_send())
            view = memoryview(payload)
            while view:
                size = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                if size <= 0:  # the client's window is spent: wait for its WINDOW_UPDATE
                    windows[stream_id] = wait = asyncio.Event()
                    await wait.wait()
                    continue
                chunk, view = view[:size], view[size:]
                conn.send_data(stream_id, bytes(chunk), end_stream=not view)
                writer.write(conn.data_to_send())
        finally:
            windows.pop(stream_id, None)
            stats.in_flight -= 1
            stats.writes_in_flight -= write

    def _forward(
        self, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """One request to the sandbox over HTTP/1.1, on a kept-alive connection of the front's;
        None if the sandbox hung up without an answer."""
        pseudo = {k: v for k, v in headers if k.startswith(":")}
        plain = [(k, v) for k, v in headers if not k.startswith(":") and k not in HOP_BY_HOP]
        try:
            backend = self._pool.get_nowait()
        except queue.Empty:
            backend = http.client.HTTPConnection("127.0.0.1", self.backend_port, timeout=60)
        try:
            backend.putrequest(pseudo[":method"], pseudo[":path"], skip_accept_encoding=True)
            for key, value in plain:
                backend.putheader(key, value)
            if body or pseudo[":method"] in ("POST", "PUT", "PATCH"):
                backend.putheader("content-length", str(len(body)))
            backend.endheaders(body or None)
            response = backend.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            backend.close()
            return None
        answer = [
            (k.lower(), v)
            for k, v in response.getheaders()
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
        ]
        if response.will_close:
            backend.close()
        else:
            self._pool.put(backend)
        if payload:
            answer.append(("content-length", str(len(payload))))
        return response.status, answer, payload


def main(argv: list[str] | None = None) -> int:
    """``python -m promote_sandbox.h2front PORT PEM``: the front in its own process (its own
    GIL, as GitHub's servers are not the sandbox's); prints its URL, then serves until killed."""
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="python -m promote_sandbox.h2front")
    parser.add_argument("port", type=int, help="the sandbox's port on 127.0.0.1")
    parser.add_argument("pem", help="a key and certificate for 127.0.0.1")
    args = parser.parse_args(argv)
    try:
        front = H2Front(args.port, args.pem, args.pem).start()
    except (OSError, ValueError) as exc:
        print(f"h2front: {args.pem}: {exc}", file=sys.stderr)
        return 1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f"GITHUB_API_URL={front.url}", flush=True)
    done.wait()
    front.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
