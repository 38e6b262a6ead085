"""The API key store: keys shown once, kept only as keyed digests, scoped, revocable, shared by
every process that reads the same data directory."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from rag_service.keys import PREFIX, KeyStore, KeyStoreError, grants

pytestmark = pytest.mark.unit


def test_a_created_key_verifies_with_its_scope_and_is_never_stored(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    query = store.create("reader", "query")
    admin = store.create("ops", "admin")
    assert query.startswith(PREFIX) and len(query) == len(PREFIX) + 43 and query != admin

    found = store.verify(query)
    assert found is not None and found.name == "reader" and found.scope == "query"
    assert grants(found.scope, "query") and not grants(found.scope, "admin")
    ops = store.verify(admin)
    assert ops is not None and grants(ops.scope, "admin") and grants(ops.scope, "query")

    on_disk = "".join(p.read_text() for p in tmp_path.iterdir() if p.is_file())
    assert query not in on_disk and admin not in on_disk
    assert query[len(PREFIX) :] not in on_disk
    for name in ("keys.json", "keys.secret"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "presented", ["", "rag_", "rag_" + "A" * 43, "Bearer rag_x", "not-a-key", "rag_\x00"]
)
def test_anything_but_a_created_key_is_refused(tmp_path: Path, presented: str) -> None:
    store = KeyStore(tmp_path)
    key = store.create("reader", "query")
    assert store.verify(presented) is None
    assert store.verify(key[:-1]) is None and store.verify(key + "x") is None


def test_a_store_with_no_keys_accepts_none(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "nothing-yet")
    assert not store.any() and store.verify(PREFIX + "A" * 43) is None and store.list_keys() == []


def test_revoking_reaches_another_process_reading_the_same_folder(tmp_path: Path) -> None:
    cli, replica = KeyStore(tmp_path), KeyStore(tmp_path)
    key = cli.create("reader", "query")
    assert replica.verify(key) is not None
    cli.revoke("reader")
    assert replica.verify(key) is None and not replica.any()
    with pytest.raises(KeyStoreError, match="no key named 'reader'"):
        cli.revoke("reader")


def test_list_tells_names_scopes_and_last_use_never_keys(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    key = store.create("reader", "query")
    store.create("ops", "admin")
    before = {info.name: info for info in store.list_keys()}
    assert before["reader"].last_used is None and before["ops"].scope == "admin"
    store.verify(key)
    after = {info.name: info for info in store.list_keys()}
    assert after["reader"].last_used is not None and after["ops"].last_used is None
    assert key not in json.dumps([vars(i) for i in store.list_keys()])


@pytest.mark.parametrize(("name", "scope"), [("", "query"), ("a b", "query"), ("x", "root")])
def test_bad_names_and_scopes_are_refused(tmp_path: Path, name: str, scope: str) -> None:
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path).create(name, scope)  # type: ignore[arg-type]


def test_names_are_unique(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.create("reader", "query")
    with pytest.raises(KeyStoreError, match="exists"):
        store.create("reader", "admin")
