"""Real servers on loopback, started and stopped by the tests: the API, Chroma's server,
llama.cpp's server, a private PostgreSQL and the misbehaving LLM stub."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

# Debian's Chromium as the page's test and benchmark start it: headless, as root, and without the
# background connections this machine's closed network would refuse.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def rag_reindex(env: dict[str, str], cwd: Path) -> None:
    """``rag reindex`` as its own process with these settings (RAG_* variables)."""
    subprocess.run(
        [sys.executable, "-m", "rag_cli", "reindex"],
        env={**os.environ, **env},
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def wait_for(
    check: Callable[[], object], what: str, timeout_s: float = 60, step_s: float = 0.1
) -> None:
    """Poll ``check`` until it answers truthily; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step_s)


def own_env(root: Path, name: str, shared: dict[str, str]) -> dict[str, str]:
    """A process's settings: the ``shared`` engines, and a data folder and HOME of its own
    under ``root/name``."""
    home = root / name / "home"
    home.mkdir(parents=True)
    return {**shared, "RAG_DATA_DIR": str(root / name / "data"), "HOME": str(home)}


def rag_cli(
    env: dict[str, str], *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``rag ARGS`` as its own process (after ``prefix``: another host's), started in its HOME."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "rag_cli", *args],
        env={**os.environ, **env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        cwd=env["HOME"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[str]:
    """``handler`` served on a free port of ``host`` in a thread of this process; its origin."""
    server = ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def running(
    argv: list[str],
    probe_url: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    wait_s: float = 90,
    log: Path | None = None,
    prefix: tuple[str, ...] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv``, wait until ``probe_url`` answers 200, stop it afterwards. Its stderr goes
    to ``log`` (default: a new file in ``cwd``)."""
    log = log or cwd / f"server-{Path(argv[-1]).name}-{time.monotonic_ns()}.log"
    proc = subprocess.Popen(
        [*prefix, *argv],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                if httpx.get(probe_url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{argv} did not start: {log.read_text()}"
            time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def api_process(
    root: Path, env: dict[str, str], log: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``rag serve`` on a free port with these settings (RAG_* variables); yields its URL and
    its process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "rag_cli", "serve", "--port", str(port)]
    with running(argv, f"{url}/healthz", root, env, log=log) as proc:
        yield url, proc


@contextmanager
def api_server(root: Path, env: dict[str, str], log: Path | None = None) -> Iterator[str]:
    """``rag serve`` on a free port with these settings (RAG_* variables); yields its URL."""
    with api_process(root, env, log) as (url, _):
        yield url


@contextmanager
def chroma_server(path: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Chroma's own server (the ``chroma`` command chromadb installs) keeping its data in
    ``path``; stopped by its PID on leaving, so it can be started again on the same data."""
    chroma = Path(sys.executable).parent / "chroma"
    argv = [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    probe = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    with running(argv, probe, path.parent, wait_s=30) as proc:
        yield proc


def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server programs (initdb, pg_ctl), if installed."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return Path(folders[-1]) if folders else None


class Postgres:
    """A private PostgreSQL cluster on a free loopback port: ``url`` to reach it, and ``stop``
    and ``start`` for the outage tests (same port, same data). Not ``durable``, it skips
    fsync: the tests need no crash safety; a benchmark comparing commits with files does."""

    def __init__(
        self,
        bin_dir: Path,
        folder: Path,
        port: int,
        host: str = "127.0.0.1",
        durable: bool = False,
    ) -> None:
        self.bin_dir, self.folder, self.port, self.host = bin_dir, folder, port, host
        self.durable = durable
        self.url = f"postgresql://rag@{host}:{port}/postgres"
        # PostgreSQL refuses to run as root: as root, its programs run as the postgres user.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *argv: str) -> None:
        subprocess.run(
            [*self._as, str(self.bin_dir / argv[0]), *argv[1:]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.folder / "data"), "-U", "rag", "-A", "trust",
            "-E", "UTF8", "--no-locale", "--no-sync",
        )  # fmt: skip

    def trust(self, network: str) -> None:
        """Let clients from ``network`` (CIDR) in without a password, as loopback is."""
        hba = self.folder / "data" / "pg_hba.conf"
        with hba.open("a", encoding="utf-8") as fh:
            fh.write(f"host all all {network} trust\n")

    def start(self) -> None:
        options = f"-c listen_addresses={self.host} -p {self.port} -k {self.folder}"
        if not self.durable:
            options += " -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.folder / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", mode, "-w", "stop")

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def postgres_server(
    host: str = "127.0.0.1", trust: str | None = None, durable: bool = False
) -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster (Debian's initdb and pg_ctl) listening on ``host`` and
    trusting loopback connections (and ``trust``'s network) as user ``rag``, removed afterwards;
    ``durable``: with fsync, as a production server runs.
    Its folder is outside pytest's (which only root may enter) so the postgres user can own
    it."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip(
            "no PostgreSQL server programs: `apt-get install postgresql` (make install-dev)"
        )
    folder = Path(tempfile.mkdtemp(prefix="rag-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    server = Postgres(bin_dir, folder, free_port(), host, durable)
    try:
        server.init()
        if trust is not None:
            server.trust(trust)
        server.start()
        yield server
    finally:
        # Stopped already (an outage test) or never started: nothing to stop.
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def shared_engines(root: Path) -> Iterator[tuple[Postgres, dict[str, str]]]:
    """What the PostgreSQL layout's processes share, on loopback: a private PostgreSQL and
    Chroma's own server (keeping its data in ``root/chroma``), and the settings (RAG_*) that
    point a process at both."""
    with postgres_server() as pg:
        chroma_port = free_port()
        settings = {
            "RAG_STATE__URL": pg.url,
            "RAG_STATE__CONNECT_TIMEOUT_S": "2",
            "RAG_STATE__RETRY_S": "1",
            "RAG_STORE__BACKEND": "chroma-http",
            "RAG_STORE__CHROMA_PORT": str(chroma_port),
            "RAG_LOG__FORMAT": "json",
        }
        with chroma_server(root / "chroma", chroma_port):
            yield pg, settings


class Hosts:
    """Processes on hosts of their own: each host a network namespace with its own loopback
    and one veth link to a bridge in this namespace, whose address (``gateway``) the engines
    listen on. Nothing is shared between hosts but what is reached through the bridge."""

    def __init__(self) -> None:
        tag = os.urandom(2).hex()
        self._bridge = f"rb{tag}"
        self._tag = tag
        # A /24 from 10.231.x.0 unlikely to be in use; the last octet numbers the hosts.
        self._net = f"10.231.{int(tag, 16) % 250 + 1}"
        self.gateway = f"{self._net}.1"
        self.network = f"{self._net}.0/24"
        self._namespaces: list[str] = []

    @staticmethod
    def available() -> str | None:
        """Why hosts cannot be made here, or None."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        if shutil.which("ip") is None:
            return "no `ip` command (iproute2)"
        return None

    def _ip(self, *args: str, namespace: str | None = None) -> None:
        inside = ("ip", "netns", "exec", namespace) if namespace else ()
        subprocess.run([*inside, "ip", *args], check=True, capture_output=True)

    def open(self) -> None:
        self._ip("link", "add", self._bridge, "type", "bridge")
        self._ip("addr", "add", f"{self.gateway}/24", "dev", self._bridge)
        self._ip("link", "set", self._bridge, "up")

    def add(self) -> tuple[tuple[str, ...], str]:
        """A new host: the command prefix that runs a program on it, and its address."""
        n = len(self._namespaces) + 1
        namespace, outside, inside = (
            f"rag-{self._tag}-{n}",
            f"rv{self._tag}{n}",
            f"ri{self._tag}{n}",
        )
        address = f"{self._net}.{10 + n}"
        self._ip("netns", "add", namespace)
        self._namespaces.append(namespace)
        self._ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        self._ip("link", "set", inside, "netns", namespace)
        self._ip("link", "set", outside, "master", self._bridge)
        self._ip("link", "set", outside, "up")
        self._ip("addr", "add", f"{address}/24", "dev", inside, namespace=namespace)
        self._ip("link", "set", inside, "up", namespace=namespace)
        self._ip("link", "set", "lo", "up", namespace=namespace)
        return ("ip", "netns", "exec", namespace), address

    def close(self) -> None:
        for namespace in self._namespaces:  # its end of each veth pair goes with it
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", self._bridge], capture_output=True)


@contextmanager
def hosts() -> Iterator[Hosts]:
    """``Hosts``, removed afterwards; the test is skipped, with the reason, where it cannot
    make them."""
    reason = Hosts.available()
    if reason is not None:
        pytest.skip(reason)
    made = Hosts()
    try:
        made.open()
        yield made
    finally:
        made.close()


@contextmanager
def llm_stub(root: Path) -> Iterator[str]:
    """The misbehaving OpenAI-compatible server of tests/llm_stub.py; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    repo = Path(__file__).resolve().parent.parent
    env = {"PYTHONPATH": str(repo)}
    argv = [sys.executable, "-m", "tests.llm_stub", "--port", str(port)]
    with running(argv, f"{url}/v1/models", root, env):
        yield url


def sse_events(response: httpx.Response) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a Server-Sent Events response, in order."""
    import json

    events, name = [], "message"
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line[5:])))
            name = "message"
    return events
