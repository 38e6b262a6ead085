"""Collections with keys required, from real clients: only admin keys write; `rag docs` (the
real CLI) uploads, lists and removes against the server; the `openai` package chats with a
collection as a model and its citation links open that collection's document."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.api.test_auth import bearer, rag
from tests.api.test_http import assert_problem
from tests.servers import api_server

pytestmark = pytest.mark.api

GLACIER = (
    "# Glaciers\n\nThe Aletsch glacier is the largest glacier in the Alps, about 23 kilometres "
    "long, flowing from the Jungfrau region towards the Rhône valley.\n"
)


@pytest.fixture(scope="module")
def keyed(
    tmp_path_factory: pytest.TempPathFactory, indexed_docs: dict[str, str]
) -> Iterator[tuple[str, dict[str, str], str, str]]:
    """A server requiring keys; its URL, environment, an admin key and a query key."""
    root = tmp_path_factory.mktemp("keyed-collections")
    shutil.copytree(indexed_docs["RAG_DATA_DIR"], root / "data")
    env = {**indexed_docs, "RAG_DATA_DIR": str(root / "data"), "RAG_API__AUTH": "required"}
    admin = rag("keys", "create", "--name", "ops", "--scope", "admin", env=env).stdout.strip()
    query = rag("keys", "create", "--name", "reader", "--scope", "query", env=env).stdout.strip()
    with api_server(root, env) as url:
        yield url, env, admin, query


def test_only_admin_keys_write_and_no_key_reads(
    keyed: tuple[str, dict[str, str], str, str],
) -> None:
    url, _, admin, query = keyed
    assert_problem(httpx.get(f"{url}/v1/collections"), 401)
    assert httpx.get(f"{url}/v1/collections", headers=bearer(query)).status_code == 200
    assert_problem(httpx.put(f"{url}/v1/collections/ro", headers=bearer(query)), 403)
    assert httpx.put(f"{url}/v1/collections/ro", headers=bearer(admin)).status_code == 201
    base = f"{url}/v1/collections/ro/documents"
    assert_problem(httpx.put(f"{base}/a.md", content=b"# A\n\nx", headers=bearer(query)), 403)
    files = [("files", ("a.md", b"# A\n\nx"))]
    assert_problem(httpx.post(base, files=files, headers=bearer(query)), 403)
    assert_problem(httpx.delete(f"{url}/v1/collections/ro", headers=bearer(query)), 403)
    assert httpx.delete(f"{url}/v1/collections/ro", headers=bearer(admin)).status_code == 204


def test_rag_docs_and_an_openai_client_over_a_collection(
    keyed: tuple[str, dict[str, str], str, str], tmp_path: Path
) -> None:
    from openai import OpenAI

    url, env, admin, query = keyed
    cli = {**env, "RAG_URL": url, "RAG_API_KEY": admin}
    assert rag("docs", "create", "alps", env=cli).returncode == 0
    (tmp_path / "glacier.md").write_text(GLACIER, encoding="utf-8")
    added = rag("docs", "add", str(tmp_path / "glacier.md"), "-c", "alps", "--json", env=cli)
    assert added.returncode == 0, added.stderr
    job = json.loads(added.stdout)
    assert job["state"] == "done" and job["result"]["added"] == 1
    listed = rag("docs", "list", "-c", "alps", env=cli)
    assert "glacier.md" in listed.stdout
    # rag search goes to the server too, with the same key (a query key suffices), or none.
    found = rag("search", "Aletsch glacier", "-c", "alps", env={**cli, "RAG_API_KEY": query})
    assert found.returncode == 0 and "glacier.md" in found.stdout, found.stderr
    keyless = rag("search", "Aletsch glacier", "-c", "alps", env={**cli, "RAG_API_KEY": ""})
    assert keyless.returncode == 2 and "401" in keyless.stderr
    refused = rag("docs", "rm", "never.md", "-c", "alps", env=cli)
    assert refused.returncode == 2 and "404" in refused.stderr

    client = OpenAI(base_url=f"{url}/v1", api_key=query)
    assert {"rag", "rag/alps"} <= {m.id for m in client.models.list()}
    reply = client.chat.completions.create(
        model="rag/alps",
        messages=[{"role": "user", "content": "How long is the Aletsch glacier in the Alps?"}],
    )
    message = reply.choices[0].message
    assert "23" in (message.content or "")
    links = [a.url_citation.url for a in message.annotations or []]
    assert links, message
    link = links[0]
    assert parse_qs(urlparse(link).query)["collection"] == ["alps"]
    opened = httpx.get(link)  # no key: the link's signature is for this collection's document
    assert opened.status_code == 200 and "Aletsch" in opened.text
    # The same signature does not open the same path in another collection.
    other = link.replace("collection=alps", "collection=default")
    assert_problem(httpx.get(other), 403)

    removed = rag("docs", "rm", "glacier.md", "-c", "alps", "--json", env=cli)
    assert removed.returncode == 0 and json.loads(removed.stdout)["result"]["deleted"] == 1
    assert "glacier.md" not in rag("docs", "list", "-c", "alps", env=cli).stdout


def _link(url: str, key: str, model: str, question: str) -> str:
    """The first citation link of a chat answer: signed, as keys are required."""
    reply = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": question}]},
        headers=bearer(key),
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    annotations = reply.json()["choices"][0]["message"]["annotations"]
    return str(annotations[0]["url_citation"]["url"])


def test_a_signed_link_opens_its_own_collection_only(
    keyed: tuple[str, dict[str, str], str, str],
) -> None:
    """`guides/bm25.txt` in `default` and `bm25.txt` in `guides` are two documents: a link to
    either must not open the other (joined with a "/", they once signed the same message)."""
    url, _, admin, query = keyed
    assert httpx.put(f"{url}/v1/collections/guides", headers=bearer(admin)).status_code == 201
    secret = b"# Salaries\n\nThe saturation of the bonus pool for 2027 is four million euros.\n"
    put = httpx.put(
        f"{url}/v1/collections/guides/documents/bm25.txt", content=secret, headers=bearer(admin)
    )
    assert put.status_code == 202
    job, deadline = put.json(), time.monotonic() + 120
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        job = httpx.get(f"{url}/v1/jobs/{job['id']}", headers=bearer(admin)).json()
    assert job["state"] == "done", job

    public = _link(url, query, "rag", "What does the saturation parameter k1 do in BM25?")
    assert "/documents/guides/bm25.txt?" in public
    token = parse_qs(urlparse(public).query)["token"][0]
    assert httpx.get(public).status_code == 200
    into_guides = f"{url}/documents/bm25.txt?collection=guides&token={token}"
    assert_problem(httpx.get(into_guides), 403)

    private = _link(url, query, "rag/guides", "What is the saturation of the bonus pool for 2027?")
    assert "/documents/bm25.txt?" in private and "collection=guides" in private
    token = parse_qs(urlparse(private).query)["token"][0]
    assert "four million" in httpx.get(private).text
    assert_problem(httpx.get(f"{url}/documents/guides/bm25.txt?token={token}"), 403)


@pytest.mark.parametrize(
    "token", ["1.é", "²." + "0" * 64, "9" * 30 + "." + "0" * 64, "1." + "é" * 64, "x", "."]
)
def test_a_malformed_link_token_is_refused_not_an_error(
    keyed: tuple[str, dict[str, str], str, str], token: str
) -> None:
    url = keyed[0]
    assert_problem(httpx.get(f"{url}/documents/attention.md", params={"token": token}), 403)
