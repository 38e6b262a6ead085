"""The ``rag`` command: reindex a folder, search the index, answer, evaluate, serve the API,
manage API keys.

It sits above the packages it wires together (the service, ingest, evaluation), so each command
imports only what it runs, and none of them imports this.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rag_cli import docs, remote
from rag_service.errors import RagError
from rag_service.keys import KeyStoreError
from rag_service.logs import configure_logging
from rag_service.settings import Settings

if TYPE_CHECKING:
    from rag_service.protocols import ApiKeys

app = typer.Typer(help="Retrieval-augmented question answering over your own documents.")


def _settings(verbose: bool) -> Settings:
    """The settings, with logging set up by them (quiet unless ``verbose``)."""
    settings = Settings()
    configure_logging(settings, level=None if verbose else "WARNING")
    return settings


def _fail(exc: RagError | KeyStoreError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


CollectionOption = Annotated[
    str, typer.Option("--collection", "-c", help="The collection (default: default).")
]


@app.command()
def reindex(
    path: Annotated[
        Path | None, typer.Argument(help="Folder to index (default: RAG_CORPUS_DIR).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; write nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 if any file could not be indexed.")
    ] = False,
    collection: CollectionOption = "default",
) -> None:
    """Bring the index in line with a folder: embed new and changed files, drop removed ones.

    A named collection is made on first use, mirroring PATH; a managed one (made over the API)
    is reindexed from its own folder, without PATH."""
    from ingest.reindex import reindex as run_reindex

    interactive = sys.stderr.isatty() and not as_json
    settings = _settings(verbose=not interactive)
    try:
        if interactive:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("embedding", total=None)
                report = run_reindex(
                    settings,
                    path,
                    collection=collection,
                    dry_run=dry_run,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
        else:
            report = run_reindex(settings, path, collection=collection, dry_run=dry_run)
    except RagError as exc:
        raise _fail(exc) from exc

    if as_json:
        typer.echo(json.dumps(report.summary(), ensure_ascii=False))
    else:
        verb = "would be" if dry_run else "were"
        for label, items in (
            ("added", report.added),
            ("updated", report.updated),
            ("deleted", report.deleted),
        ):
            for item in items:
                typer.echo(f"{label:>9}  {item}")
        for failure in report.failed:
            typer.echo(f"{'failed':>9}  {failure.path}: {failure.error}")
        for skipped in report.skipped:
            typer.echo(f"{'skipped':>9}  {skipped.path}: {skipped.reason}")
        typer.echo(
            f"{len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.deleted)} deleted, {len(report.unchanged)} unchanged, "
            f"{len(report.failed)} failed; {report.chunks_embedded} chunks {verb} embedded, "
            f"{report.chunks_retired} retired; {report.chunks_total} chunks in the index"
            + (" (full rebuild)" if report.full_rebuild else "")
        )
    if strict and report.failed:
        raise typer.Exit(1)


LocalOption = Annotated[
    bool,
    typer.Option(
        "--local",
        help="Load the model here even if a server answers (RAG_URL, or RAG_API__HOST:PORT).",
    ),
]


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100)] = 5,
    collection: CollectionOption = "default",
    local: LocalOption = False,
) -> None:
    """Print the passages that best match a query: from the running server when one answers
    (RAG_URL, or the configured port), else from the data directory."""
    settings = _settings(verbose=False)
    url = None if local else remote.answering_server(settings.api)
    if url is not None:
        body = {"query": query, "top_k": top_k, "collection": collection}
        with remote.session(url) as client:
            passages = remote.checked(client.post("/v1/search", json=body))["passages"]
    else:
        passages = _search_here(settings, query, top_k, collection)
    for rank, hit in enumerate(passages, start=1):
        where = " > ".join(hit["headings"]) or hit["title"]
        typer.echo(f"{rank}. [{hit['score']:.4f}] {hit['source']} ({where})")
        typer.echo("   " + hit["text"][:300].replace("\n", " "))


# Both paths print the API's JSON shapes (rag_service.api.schemas): the server's answer as it
# came, and the in-process one built by the same models. The remote path imports neither the
# models nor what they import (Chroma, FastAPI: seconds of a short command).
def _search_here(
    settings: Settings, query: str, top_k: int, collection: str
) -> list[dict[str, Any]]:
    from rag_service.api.schemas import Passage
    from rag_service.embedders import build_embedder
    from rag_service.rerankers import build_reranker
    from rag_service.serving import Library

    try:
        embedder = build_embedder(settings.embedder)
        reranker = build_reranker(settings, embedder)
        result = Library(settings, embedder, reranker).search(collection).search(query, top_k)
    except RagError as exc:
        raise _fail(exc) from exc
    return [Passage.of(hit).model_dump(mode="json") for hit in result.passages]


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    top_k: Annotated[
        int | None, typer.Option("--top-k", "-k", min=1, max=20, help="Passages in the prompt.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    collection: CollectionOption = "default",
    local: LocalOption = False,
) -> None:
    """Answer a question from the indexed documents, with its sources: by the running server
    when one answers (RAG_URL, or the configured port), else here."""
    settings = _settings(verbose=False)
    url = None if local else remote.answering_server(settings.api)
    if url is not None:
        body: dict[str, Any] = {"question": question, "collection": collection}
        if top_k is not None:
            body["top_k"] = top_k
        with remote.session(url) as client:
            reply = remote.checked(client.post("/v1/ask", json=body, timeout=ASK_TIMEOUT_S))
    else:
        reply = _ask_here(settings, question, top_k, collection)
    if as_json:
        typer.echo(json.dumps(reply, ensure_ascii=False))
        return
    typer.echo(reply["answer"])
    if reply["citations"]:
        typer.echo("\nSources:")
    for c in reply["citations"]:
        typer.echo(f"[{c['n']}] {c['source']} ({c['title']}), characters {c['start']}-{c['end']}")
        typer.echo(f"    {c['quote'][:300]}")


# An answer from a local LLM on a CPU can take minutes; the server bounds it itself
# (RAG_API__REQUEST_TIMEOUT_S, 504 past it), so the client only waits a little longer.
ASK_TIMEOUT_S = 600.0


def _ask_here(
    settings: Settings, question: str, top_k: int | None, collection: str
) -> dict[str, Any]:
    from rag_service.answering import Question, build_answer_service
    from rag_service.api.schemas import AskResponse
    from rag_service.embedders import build_embedder
    from rag_service.rerankers import build_reranker
    from rag_service.serving import Library

    params = settings.llm.generation_params()
    try:
        embedder = build_embedder(settings.embedder)
        library = Library(settings, embedder, build_reranker(settings, embedder))
        search_service = library.search(collection)
        answer = build_answer_service(settings, search_service).ask(
            Question(question, params, top_k)
        )
    except RagError as exc:
        raise _fail(exc) from exc
    return AskResponse.of(answer, include_prompt=False).model_dump(mode="json")


# Shared by the two evaluation commands.
DatasetArg = Annotated[
    Path,
    typer.Argument(help="A folder with corpus.jsonl + questions.jsonl, or with QUESTIONS.jsonl."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the results as JSON.")]
LimitOption = Annotated[int | None, typer.Option(help="Only the first N questions.")]
CacheOption = Annotated[Path, typer.Option(help="Embedding cache, shared by runs and systems.")]
EVAL_CACHE = Path("data/eval-cache/embeddings.sqlite")


@app.command(name="eval")
def evaluate(
    dataset: DatasetArg,
    baselines: Annotated[
        bool,
        typer.Option("--baselines", help="Also run BM25 only, dense only and LangChain's recipe."),
    ] = False,
    as_json: JsonOption = False,
    limit: LimitOption = None,
    cache: CacheOption = EVAL_CACHE,
) -> None:
    """Retrieval quality (Recall@1/5/10, MRR@10, nDCG@10) and latency on a question set."""
    from evaluation.runner import evaluate as run_evaluation

    settings = _settings(verbose=not as_json)
    try:
        result = run_evaluation(
            dataset, settings, baselines=baselines, cache_path=cache, limit=limit
        )
    except RagError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    typer.echo(f"{result['dataset']}: {result['questions']} questions, {result['chunks']} chunks")
    keys = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "p50_ms", "p95_ms"]
    typer.echo(f"{'system':<20}" + "".join(f"{k:>11}" for k in keys))
    for name, metrics in result["systems"].items():
        typer.echo(f"{name:<20}" + "".join(f"{metrics[k]:>11.3f}" for k in keys))


@app.command(name="eval-answers")
def evaluate_answers(
    dataset: DatasetArg,
    as_json: JsonOption = False,
    limit: LimitOption = None,
    cache: CacheOption = EVAL_CACHE,
) -> None:
    """Answers and refusals with the configured LLM: gold answer in the answer, EM, F1, how
    often it refuses answerable questions and answers ones whose documents are missing."""
    from evaluation.answers import answer_records, summarise_answers

    settings = _settings(verbose=not as_json)
    try:
        name, records = answer_records(dataset, settings, cache, limit)
    except RagError as exc:
        raise _fail(exc) from exc
    result = summarise_answers(name, records)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    for key, value in result.items():
        typer.echo(f"{key:<24}{value:.3f}" if isinstance(value, float) else f"{key:<24}{value}")


@app.command(name="eval-conversations")
def evaluate_conversations(
    dataset: DatasetArg,
    conversations: Annotated[
        Path | None,
        typer.Option(help="Conversations to ask (default: DATASET/CONVERSATIONS.jsonl)."),
    ] = None,
    as_json: JsonOption = False,
    limit: Annotated[int | None, typer.Option(help="Only the first N conversations.")] = None,
    cache: CacheOption = EVAL_CACHE,
) -> None:
    """Follow-up questions: per turn, the gold note in the top 3 documents and the gold answer
    in the answer, with the history against the last message only."""
    from evaluation.conversations import conversation_records, summarise_conversations

    settings = _settings(verbose=not as_json)
    try:
        records = conversation_records(dataset, settings, cache, limit, conversations)
    except RagError as exc:
        raise _fail(exc) from exc
    result = summarise_conversations(records)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    systems = result["systems"]
    typer.echo(f"{result['conversations']} conversations")
    typer.echo(
        f"{'turns':<16}{'n':>5}" + "".join(f"{s + ' hit@3':>24}{'correct':>9}" for s in systems)
    )
    for group in systems["conversation"]:
        rows = [systems[s][group] for s in systems]
        typer.echo(
            f"{group:<16}{rows[0]['turns']:>5}"
            + "".join(f"{r['hit@3']:>24.3f}{r['correct']:>9.3f}" for r in rows)
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: RAG_API__HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: RAG_API__PORT.")] = None,
) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    from ingest.reindex import FolderIndexer
    from rag_service.api.app import create_app
    from rag_service.api.connections import bounded_http

    settings = _settings(verbose=True)
    # Keys (RAG_API__AUTH=auto) and the Host allow-list depend on the address actually bound.
    api = settings.api.model_copy(
        update={"host": host or settings.api.host, "port": port or settings.api.port}
    )
    settings = settings.model_copy(update={"api": api})
    try:
        application = create_app(settings, FolderIndexer)
    except RagError as exc:
        raise _fail(exc) from exc
    uvicorn.run(
        application,
        host=api.host,
        port=api.port,
        http=bounded_http(api.header_timeout_s),
        log_config=None,  # uvicorn's loggers go through ours (JSON in a container)
        access_log=False,  # the API logs each request itself, with its request id
    )


app.add_typer(docs.app, name="docs")

keys = typer.Typer(help="API keys: needed when the server binds beyond loopback.")
app.add_typer(keys, name="keys")


@contextmanager
def _key_store() -> Iterator[ApiKeys]:
    """The keys where the server keeps them (RAG_STATE__URL, else the data directory); a
    refusal or an unreachable PostgreSQL is one line on stderr and exit status 2."""
    from rag_service.state import close_states, open_state

    try:
        yield open_state(_settings(verbose=False)).keys()
    except (KeyStoreError, RagError) as exc:
        raise _fail(exc) from exc
    finally:
        close_states()


@keys.command("create")
def create_key(
    name: Annotated[str, typer.Option("--name", help="Who or what will use it.")],
    scope: Annotated[
        str, typer.Option("--scope", help="query: search, ask, chat; admin: also documents.")
    ] = "query",
) -> None:
    """Make a key and print it, once: only a keyed digest of it is kept."""
    with _key_store() as store:
        key = store.create(name, scope)  # type: ignore[arg-type]  # checked inside
    typer.echo(key)
    typer.echo(f"(the {scope} key {name!r}: store it now, it cannot be shown again)", err=True)


@keys.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Names, scopes, when each was made and last used; never the keys."""
    with _key_store() as store:
        infos = store.list_keys()
    if as_json:
        typer.echo(json.dumps([vars(info) for info in infos]))
        return
    for info in infos:
        typer.echo(f"{info.name:<24}{info.scope:<8}{info.created:<28}{info.last_used or 'never'}")


@keys.command("revoke")
def revoke_key(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Delete a key; every server sharing the keys (the data directory, or PostgreSQL) refuses
    it from its next request."""
    with _key_store() as store:
        store.revoke(name)


if __name__ == "__main__":
    app()
