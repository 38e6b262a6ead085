"""The widely copied LangChain recipe, as the ingest baseline: split with
RecursiveCharacterTextSplitter and Chroma.from_documents, with our embedder behind LangChain's
Embeddings interface so both sides embed with the same model (the one RAG_EMBEDDER__* selects,
as for `rag reindex`).

    python bench/langchain_ingest.py FOLDER PERSIST_DIR   -> prints {"chunks": N}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from evaluation.langchain_baseline import langchain_embeddings
from rag_service.embedders import build_embedder
from rag_service.settings import Settings


def main(folder: Path, persist_dir: Path) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    chunking = settings.chunking
    documents = [
        Document(page_content=path.read_text(encoding="utf-8"), metadata={"source": str(path)})
        for path in sorted(folder.rglob("*"))
        if path.suffix in {".md", ".txt"}
    ]
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunking.chunk_size, chunk_overlap=chunking.chunk_overlap
    )
    chunks = splitter.split_documents(documents)
    Chroma.from_documents(
        chunks,
        embedding=langchain_embeddings(build_embedder(settings.embedder)),
        persist_directory=str(persist_dir),
        collection_metadata={"hnsw:space": "cosine"},
    )
    print(json.dumps({"chunks": len(chunks)}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
