"""deploy/nginx.conf, run by a real nginx in front of a real `rag serve`: uploads of documents
pass its larger body limit and reach the API streamed, other bodies stop at 2 MiB, and its
per-client rate limit answers 429 as problem+json. Only the upstream address and the port are
rewritten (compose's service name and Docker's DNS do not exist here). Skipped, with the
reason, where no nginx is installed (`make install-dev` installs it where it can)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import api_server, free_port

pytestmark = pytest.mark.api

REPO = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, indexed_docs: dict[str, str]) -> Iterator[str]:
    if not Path(NGINX).exists():
        pytest.skip("no nginx: `apt-get install nginx-light` (make install-dev)")
    with api_server(tmp_path_factory.mktemp("nginx-api"), indexed_docs) as url:
        yield url


@pytest.fixture
def proxy(api: str, tmp_path: Path) -> Iterator[str]:
    """An nginx of its own per test: its rate-limit state must not carry over to the next."""
    port = free_port()
    site = (REPO / "deploy" / "nginx.conf").read_text()
    site = site.replace("http://api:8000", api).replace("listen 8080;", f"listen {port};")
    site = "\n".join(line for line in site.splitlines() if "resolver" not in line)
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n client_body_temp_path {tmp_path}/body;\n proxy_temp_path {tmp_path}/proxy;\n"
        f" access_log off;\n include {tmp_path}/site.conf;\n}}\n"
    )
    proc = subprocess.Popen([NGINX, "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "error.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "error.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_uploads_pass_the_proxy_and_other_large_bodies_do_not(proxy: str) -> None:
    assert httpx.put(f"{proxy}/v1/collections/big").status_code in (200, 201)
    body = ("# Large\n\n" + "A line about harbours and ships.\n" * 100_000).encode()
    assert len(body) > 3 * 2**20
    job = httpx.put(f"{proxy}/v1/collections/big/documents/large.md", content=body, timeout=60)
    assert job.status_code == 202, job.text
    search = httpx.post(f"{proxy}/v1/search", content=b"{" + b" " * (3 * 2**20) + b"}")
    assert search.status_code == 413  # nginx's 2 MiB, before the API


def test_the_proxy_rate_limits_a_client_with_a_problem_body(proxy: str) -> None:
    with httpx.Client() as client:
        responses = [client.get(f"{proxy}/healthz") for _ in range(120)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited and {r.status_code for r in responses} == {200, 429}
    assert limited[0].headers["content-type"] == "application/problem+json"
    assert limited[0].headers["retry-after"] == "1" and limited[0].json()["status"] == 429
