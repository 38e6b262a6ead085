"""The deployment files agree with the code: every RAG_* variable the compose file and the
Dockerfile set is a real setting with a valid value, the variables .env.example documents are the
ones compose reads, and the services point at each other by the right names.

(`make lint` also runs hadolint on the Dockerfile and `docker-compose config -q`.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from rag_service.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def resolved_compose(*args: str) -> dict[str, Any]:
    """The compose file as Compose v1 resolves it (defaults interpolated, anchors merged)."""
    binary = shutil.which("docker-compose")
    assert binary, (
        "needs Debian's docker-compose: apt-get install --no-install-recommends docker-compose"
    )
    done = subprocess.run(
        [binary, *args, "config"], cwd=REPO, capture_output=True, text=True, check=True
    )
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def setting_of(variable: str) -> Any:
    """The settings field a RAG_* variable sets (``RAG_A__B`` -> ``Settings.a.b``)."""
    model: type[BaseModel] = Settings
    parts = variable.removeprefix("RAG_").lower().split("__")
    for depth, part in enumerate(parts):
        assert part in model.model_fields, f"{variable}: no setting {part!r} in {model.__name__}"
        annotation = model.model_fields[part].annotation
        if depth < len(parts) - 1:
            assert isinstance(annotation, type) and issubclass(annotation, BaseModel), variable
            model = annotation
    return annotation


def settings_from(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in environment.items():
        setting_of(name)
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def dockerfile_env() -> dict[str, str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(RAG_\w+)=(\S+)", line))
    return env


@pytest.mark.deploy
def test_the_image_and_the_services_set_only_real_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = dockerfile_env()
    assert image["RAG_DATA_DIR"] == "/data" and image["RAG_API__HOST"] == "0.0.0.0"
    config = resolved_compose("--profile", "llm")
    services = config["services"]
    assert set(services) == {"chroma", "reindex", "api", "proxy", "llm"}
    for name in ("api", "reindex"):
        environment = {k: str(v) for k, v in services[name]["environment"].items()}
        settings = settings_from({**image, **environment}, monkeypatch)
        # They find Chroma's server by its service name, on the port the image listens on.
        assert settings.store.backend == "chroma-http"
        assert settings.store.chroma_host == "chroma" and settings.store.chroma_port == 8000
        assert settings.llm.backend == "extractive"  # until a model is configured
        assert settings.llm.base_url == "http://llm:8080/v1"  # the llm profile's server
        assert "8080" in services["llm"]["command"]
        # The pointer, manifests and BM25 index live in one volume both services mount.
        mounts = {m.split(":")[1]: m.split(":")[0] for m in services[name]["volumes"]}
        assert mounts[str(settings.data_dir)] == "rag-index"


@pytest.mark.deploy
def test_replicas_are_reached_through_the_proxy() -> None:
    services = resolved_compose()["services"]
    assert "ports" not in services["api"]  # `--scale api=3` would collide on a host port
    assert services["proxy"]["ports"][0]["target"] == 8080
    nginx = (REPO / "deploy" / "nginx.conf").read_text()
    assert "listen 8080;" in nginx and "http://api:8000" in nginx
    assert "proxy_buffering off;" in nginx  # Server-Sent Events pass through as written


@pytest.mark.unit
def test_env_example_documents_exactly_what_compose_reads() -> None:
    documented = set(
        re.findall(r"^# ([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M)
    )
    interpolated = set(re.findall(r"\$\{(\w+)", (REPO / "docker-compose.yml").read_text()))
    assert documented == interpolated
