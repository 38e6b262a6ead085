"""Loaders facing hostile or unusual files: encrypted PDFs and a loader that raises anything."""

from __future__ import annotations

import io

import pytest

from ingest import load
from ingest.load import load_document
from rag_service.errors import DocumentUnreadable
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.unit


def encrypted_pdf(text: str, password: str, algorithm: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([text], "Locked"))))
    writer.encrypt(user_password=password, owner_password="owner-secret", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize("algorithm", ["AES-128", "AES-256", "RC4-128"])
def test_an_encrypted_pdf_with_an_empty_password_is_read(algorithm: str) -> None:
    data = encrypted_pdf("Readable without a password", "", algorithm)
    assert b"Readable" not in data  # really encrypted
    doc = load_document("open.pdf", data)
    assert "Readable without a password" in doc.text and doc.title == "Locked"


@pytest.mark.parametrize("algorithm", ["AES-128", "AES-256", "RC4-128"])
def test_a_password_protected_pdf_is_reported_as_encrypted(algorithm: str) -> None:
    with pytest.raises(DocumentUnreadable) as info:
        load_document("locked.pdf", encrypted_pdf("Secret text", "hunter2", algorithm))
    assert info.value.reason == "encrypted PDF (needs a password)"


def test_any_exception_from_a_loader_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(source: str, data: bytes) -> load.LoadedDocument:
        raise RuntimeError("the parser fell over " + "x" * 1000)

    monkeypatch.setitem(load.LOADERS, ".txt", explode)
    with pytest.raises(DocumentUnreadable) as info:
        load_document("notes/a.txt", b"some text")
    assert info.value.reason.startswith("cannot load .txt: RuntimeError: the parser fell over")
    assert len(info.value.reason) < 300  # a reason, not a dump
