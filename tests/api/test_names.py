"""Names as people type them, over a real server: collections named in any script, document
paths in either Unicode form, names that differ only in case or hide characters; paths too
long for a filesystem; and a collection deleted while it is being searched."""

from __future__ import annotations

import json
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.api.test_auth import rag
from tests.api.test_collections import accepted, sources, wait_job
from tests.api.test_http import assert_problem
from tests.servers import api_server

pytestmark = pytest.mark.api

HANDBOOK = "# 年假\n\n员工每年享有十五天带薪年假，入职满一年后开始计算。\n"
CAFE_NFC = unicodedata.normalize("NFC", "café")
CAFE_NFD = unicodedata.normalize("NFD", "café")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, indexed_docs: dict[str, str]) -> Iterator[str]:
    root = tmp_path_factory.mktemp("names")
    env = {**indexed_docs, "RAG_DATA_DIR": str(root / "data")}
    with api_server(root, env) as url:
        yield url


def _put(url: str, collection: str, path: str, text: str) -> httpx.Response:
    return httpx.put(
        f"{url}/v1/collections/{quote(collection)}/documents/{quote(path)}", content=text.encode()
    )


def _paths(url: str, collection: str) -> list[str]:
    listed = httpx.get(f"{url}/v1/collections/{quote(collection)}/documents").json()
    return [d["path"] for d in listed["documents"]]


def test_a_collection_named_in_chinese_lives_its_whole_life(server: str) -> None:
    url, name = server, "员工手册"
    created = httpx.put(f"{url}/v1/collections/{quote(name)}")
    assert created.status_code == 201 and created.json()["name"] == name
    assert wait_job(url, accepted(_put(url, name, "年假.md", HANDBOOK)))["state"] == "done"
    assert sources(url, "员工有多少天年假", name) == ["年假.md"]
    assert name in [c["name"] for c in httpx.get(f"{url}/v1/collections").json()["collections"]]
    assert f"rag/{name}" in {m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]}
    chat = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": f"rag/{name}",
            "messages": [{"role": "user", "content": "员工每年享有几天带薪年假？"}],
        },
        timeout=60,
    )
    assert chat.status_code == 200 and "十五天" in chat.json()["choices"][0]["message"]["content"]
    assert httpx.delete(f"{url}/v1/collections/{quote(name)}").status_code == 204
    assert_problem(httpx.post(f"{url}/v1/search", json={"query": "年假", "collection": name}), 404)


def test_collection_names_are_nfc_and_one_name_whatever_the_case(server: str) -> None:
    url = server
    assert httpx.put(f"{url}/v1/collections/{quote(CAFE_NFD)}").status_code == 201
    again = httpx.put(f"{url}/v1/collections/{quote(CAFE_NFC)}")
    assert again.status_code == 200 and again.json()["name"] == CAFE_NFC
    names = [c["name"] for c in httpx.get(f"{url}/v1/collections").json()["collections"]]
    assert names.count(CAFE_NFC) == 1 and CAFE_NFD not in names

    assert httpx.put(f"{url}/v1/collections/Handbook").status_code == 201
    taken = assert_problem(httpx.put(f"{url}/v1/collections/handbook"), 409)
    assert "'Handbook' exists" in taken["detail"] and "only in case" in taken["detail"]
    assert_problem(httpx.put(f"{url}/v1/collections/DEFAULT"), 409)
    for hostile in ("evil\u202egnp", "zero\u200bwidth", ".hidden", " padded", "名" * 67):
        refused = assert_problem(httpx.put(f"{url}/v1/collections/{quote(hostile)}"), 422)
        assert "cannot name a collection" in refused["detail"]
        search = httpx.post(f"{url}/v1/search", json={"query": "x", "collection": hostile})
        assert_problem(search, 422)
    chat = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "rag/evil\u202egnp", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 404


def test_document_paths_are_nfc_and_one_path_whatever_the_case(server: str) -> None:
    url = server
    httpx.put(f"{url}/v1/collections/paths")
    first = wait_job(url, accepted(_put(url, "paths", f"{CAFE_NFD}.md", "# Café\n\nespresso")))
    assert first["state"] == "done" and first["writes"][0]["path"] == f"{CAFE_NFC}.md"
    second = wait_job(url, accepted(_put(url, "paths", f"{CAFE_NFC}.md", "# Café\n\nlatte")))
    assert second["result"]["updated"] == 1
    assert _paths(url, "paths") == [f"{CAFE_NFC}.md"]
    nfd = httpx.get(f"{url}/v1/collections/paths/documents/{quote(CAFE_NFD)}.md")
    assert nfd.status_code == 200 and "latte" in nfd.json()["text"]

    assert wait_job(url, accepted(_put(url, "paths", "Normal.md", "# N\n\none")))["state"] == "done"
    clash = assert_problem(_put(url, "paths", "normal.md", "# n\n\ntwo"), 409)
    assert "'Normal.md'" in clash["detail"] and "only in case" in clash["detail"]
    files = [("files", ("NORMAL.md", b"# N\n\nthree"))]
    assert_problem(httpx.post(f"{url}/v1/collections/paths/documents", files=files), 409)
    both = [("files", ("a.md", b"# a\n\none")), ("files", ("A.md", b"# A\n\ntwo"))]
    assert_problem(httpx.post(f"{url}/v1/collections/paths/documents", files=both), 400)
    for hidden in ("evil\u202edm.exe.md", "a\u200d.md", "notes\u2028/a.md"):
        refused = assert_problem(_put(url, "paths", hidden, "# x\n\ny"), 400)
        assert "control or format character" in refused["detail"]
    assert sorted(_paths(url, "paths")) == sorted([f"{CAFE_NFC}.md", "Normal.md"])

    nfd_url = f"{url}/v1/collections/paths/documents/{quote(CAFE_NFD)}.md"
    gone = wait_job(url, accepted(httpx.delete(nfd_url)))
    assert gone["result"]["deleted"] == 1 and _paths(url, "paths") == ["Normal.md"]
    assert_problem(httpx.delete(f"{url}/v1/collections/paths/documents/normal.md"), 404)


def test_paths_too_long_for_a_filesystem_are_refused_up_front(server: str) -> None:
    url = server
    httpx.put(f"{url}/v1/collections/long")
    base = f"{url}/v1/collections/long/documents"
    for path in ("x" * 256 + ".md", "名" * 85 + ".md", "/".join(["d" * 200] * 16) + ".md"):
        assert_problem(httpx.put(f"{base}/{quote(path)}", content=b"# x\n\ny"), 400)
        assert_problem(httpx.delete(f"{base}/{quote(path)}"), 400)
        assert_problem(httpx.get(f"{base}/{quote(path)}"), 400)
        assert_problem(httpx.get(f"{url}/documents/{quote(path)}"), 400)
    longest = "x" * 252 + ".md"  # 255 bytes: a file name, as long as it can be
    job = wait_job(url, accepted(httpx.put(f"{base}/{longest}", content=b"# x\n\nlong names")))
    assert job["state"] == "done", job
    assert _paths(url, "long") == [longest]


def test_the_cli_takes_the_same_names(
    tmp_path: Path, indexed_docs: dict[str, str], server: str
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "年假.md").write_text(HANDBOOK, encoding="utf-8")
    env = {**indexed_docs, "RAG_DATA_DIR": str(tmp_path / "data")}
    indexed = rag("reindex", str(notes), "--collection", "人事 制度", "--json", env=env)
    assert indexed.returncode == 0, indexed.stderr
    assert json.loads(indexed.stdout)["added"] == 1
    refused = rag("reindex", str(notes), "--collection", "bad\u202ename", env=env)
    assert refused.returncode != 0 and "cannot name a collection" in refused.stderr

    cli = {**indexed_docs, "RAG_URL": server}
    assert rag("docs", "create", "规章", env=cli).returncode == 0
    added = rag("docs", "add", str(notes / "年假.md"), "-c", "规章", env=cli)
    assert added.returncode == 0, added.stderr
    assert "年假.md" in rag("docs", "list", "-c", "规章", env=cli).stdout


def _wait_for(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_collection_deleted_while_it_is_searched_answers_200_or_404(server: str) -> None:
    url = server
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def hammer(route: str, body: dict[str, str]) -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post(f"{url}{route}", json=body)
                except httpx.TransportError as exc:
                    failures.append(f"{route}: {exc!r}")
                    continue
                statuses[response.status_code] += 1
                if response.status_code != 200 and (
                    response.headers.get("content-type") != "application/problem+json"
                    or response.status_code != 404
                ):
                    failures.append(f"{route}: {response.status_code} {response.text[:200]}")

    for round_ in range(4):
        httpx.put(f"{url}/v1/collections/race")
        text = f"# Race {round_}\n\nThe tortoise wins the race against the hare in round {round_}."
        assert wait_job(url, accepted(_put(url, "race", "race.md", text)))["state"] == "done"
        stop.clear()
        threads = [
            threading.Thread(target=hammer, args=(route, body))
            for route, body in (
                ("/v1/search", {"query": "tortoise", "collection": "race"}),
                ("/v1/search", {"query": "hare race", "collection": "race"}),
                ("/v1/ask", {"question": "Who wins the race?", "collection": "race"}),
            )
        ]
        for thread in threads:
            thread.start()
        enough = 3 * (round_ + 1)
        _wait_for(lambda n=enough: statuses[200] >= n)  # searches are under way
        assert httpx.delete(f"{url}/v1/collections/race").status_code == 204
        _wait_for(lambda n=enough: statuses[404] >= n)
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures, "\n".join(failures[:8])
    assert set(statuses) == {200, 404}
