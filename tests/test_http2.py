"""HTTP/2 where GitHub speaks it: over TLS the client offers h2 (ALPN) and sends a whole wave
of requests on one connection; a server that chooses HTTP/1.1 gets the pool of 8."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest

from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_sandbox import testing
from promote_sandbox.h2front import H2Front
from promote_tasks.github.client import POOL
from promote_tasks.github.client import STREAMS
from promote_tasks.session import Run
from tests.test_cost import open_feature_prs

make_sandbox = testing.make_sandbox

ENVS = ("dev", *(f"stage{i}" for i in range(1, 9)), "main")  # the sandbox seeds these


@pytest.fixture
def ten(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A sandbox with 10 environments, and the clone's settings for them."""
    sandbox = make_sandbox(scenario=Scenario(environments=ENVS))
    tables = "".join(
        f'[[environments]]\nname = "{n}"\nvalidators = ["health", "smoke"]\n' for n in ENVS
    )
    clone = Path(sandbox.env()["PROMOTE_CLONE"])
    (clone / "promote.toml").write_text(f'reviewers = ["rita"]\n{tables}', encoding="utf-8")
    return sandbox


def port_of(sandbox: Sandbox) -> int:
    return int(sandbox.api_url.rsplit(":", 1)[1])


@pytest.fixture
def front(ten: Sandbox, certificate: Path) -> Iterator[H2Front]:
    served = H2Front(port_of(ten), str(certificate), str(certificate)).start()
    yield served
    served.stop()


def read(sandbox: Sandbox, api_url: str | None = None) -> Run:
    env = sandbox.env() | ({"GITHUB_API_URL": api_url} if api_url else {})
    run = Run.load(Path(env["PROMOTE_CLONE"]), environ=env)
    run.facts()
    return run


def test_a_read_over_http2_is_one_connection_carrying_a_whole_wave(
    ten: Sandbox, front: H2Front
) -> None:
    run = read(ten, front.url)
    assert front.stats.protocols == ["h2"]  # one connection, and ALPN chose HTTP/2
    assert front.stats.streams == run.github.stats.requests
    # the first wave (10 branches' commits, the deployments, the open PRs, the plan tree)
    # went at once: more than a pool of HTTP/1.1 connections could carry, fewer than GitHub's
    # 100 concurrent requests
    assert POOL < front.stats.most_in_flight <= STREAMS
    plain = Run.load(Path(ten.env()["PROMOTE_CLONE"]), environ=ten.env()).facts()
    assert run.facts().environments == plain.environments  # the same facts either way


def test_a_second_read_in_the_process_is_conditional_over_http2(
    ten: Sandbox, front: H2Front
) -> None:
    run = read(ten, front.url)
    made = run.github.stats.requests
    run.facts()
    assert run.github.stats.requests - made == run.github.stats.not_modified > 0
    assert len(front.stats.protocols) == 2  # a connection a GitHub.run, as over HTTP/1.1


def test_gate_writes_over_http2_go_a_pool_at_a_time(
    make_sandbox: Callable[..., Sandbox], certificate: Path
) -> None:
    """Reads go a wave at a time; writes (the gates of 30 open PRs) no more than POOL at once:
    GitHub asks that content is created one request after another."""
    sandbox = make_sandbox()
    open_feature_prs(sandbox, 30)
    served = H2Front(port_of(sandbox), str(certificate), str(certificate)).start()
    try:
        env = sandbox.env() | {"GITHUB_API_URL": served.url}
        run = Run.load(Path(env["PROMOTE_CLONE"]), environ=env)
        written = run.gate(run.facts())
    finally:
        served.stop()
    assert len(written) == 31
    assert all(changed for _, changed in written)
    assert set(served.stats.protocols) == {"h2"}
    assert 1 < served.stats.most_writes_in_flight <= POOL < served.stats.most_in_flight


class Http1OverTls:
    """TLS whose ALPN offers only http/1.1, in front of the sandbox: bytes passed through.
    Counts the connections open at once."""

    def __init__(self, backend: int, certificate: Path) -> None:
        self.backend = backend
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(certificate))
        self.context.set_alpn_protocols(["http/1.1"])
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open = self.most_open = self.accepted = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(raw,), daemon=True).start()

    def serve(self, raw: socket.socket) -> None:
        with self.lock:
            self.accepted += 1
            self.open += 1
            self.most_open = max(self.most_open, self.open)
        try:
            with self.context.wrap_socket(raw, server_side=True) as client:
                backend = socket.create_connection(("127.0.0.1", self.backend))
                threading.Thread(target=pump, args=(backend, client), daemon=True).start()
                pump(client, backend)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with self.lock:
                self.open -= 1

    def stop(self) -> None:
        self.listener.close()


def pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        sink.close()


def test_a_server_that_chooses_http1_gets_the_pool(ten: Sandbox, certificate: Path) -> None:
    server = Http1OverTls(port_of(ten), certificate)
    try:
        run = read(ten, server.url)
        first = server.accepted
        again = run.facts()
        second = server.accepted - first
    finally:
        server.stop()
    assert not run.github._multiplexed  # the first answer said HTTP/1.1
    assert run.github._http1  # and the second read offered no HTTP/2: the process knows
    assert (first, second) == (POOL + 1, POOL), "the first read probed for HTTP/2 once"
    assert server.most_open <= POOL
    plain = Run.load(Path(ten.env()["PROMOTE_CLONE"]), environ=ten.env()).facts()
    assert again.environments == plain.environments


def test_plain_http_offers_no_http2(ten: Sandbox) -> None:
    """Over http:// there is no ALPN to choose with: a proxy there must get HTTP/1.1."""
    run = read(ten)
    assert not run.github._multiplexed


def test_serve_names_a_certificate_it_cannot_use(tmp_path: Path) -> None:
    bad = tmp_path / "front.pem"
    bad.write_text("not a certificate\n", encoding="utf-8")
    command = [sys.executable, "-m", "promote_sandbox", "serve", "--dir", str(tmp_path / "box")]
    done = subprocess.run(
        [*command, "--http2-cert", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"promote sandbox: --http2-cert {bad}: ")
    assert len(done.stderr.splitlines()) == 1


def test_the_front_on_its_own_names_a_certificate_it_cannot_use(tmp_path: Path) -> None:
    bad = tmp_path / "front.pem"
    bad.write_text("not a certificate\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "promote_sandbox.h2front", "1", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"h2front: {bad}: ")
    assert len(done.stderr.splitlines()) == 1
