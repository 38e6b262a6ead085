"""The deployment files agree with the code: every RAG_* variable the compose file and the
Dockerfile set is a real setting with a valid value, the variables .env.example documents are the
ones compose reads, and the services point at each other by the right names.

The compose file is read as Compose reads it (deploy/compose_config.py: interpolated with the
defaults it writes, profiles applied, validated against the Compose Specification's schema), so
this needs no Compose binary. (`make lint` also runs hadolint on the Dockerfile.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from deploy.compose_config import ComposeError, interpolate, resolve
from rag_service.settings import Settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def resolved_compose(*profiles: str) -> dict[str, Any]:
    """The compose file with its own defaults, as `docker compose config` resolves it."""
    return resolve(REPO / "docker-compose.yml", {}, profiles)


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


def test_the_image_and_the_services_set_only_real_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = dockerfile_env()
    assert image["RAG_DATA_DIR"] == "/data" and image["RAG_API__HOST"] == "0.0.0.0"
    config = resolved_compose("llm")
    services = config["services"]
    assert set(services) == {"postgres", "chroma", "reindex", "api", "proxy", "llm"}
    for name in ("api", "reindex"):
        environment = {k: str(v) for k, v in services[name]["environment"].items()}
        settings = settings_from({**image, **environment}, monkeypatch)
        # They find Chroma's server by its service name, on the port the image listens on.
        assert settings.store.backend == "chroma-http"
        assert settings.store.chroma_host == "chroma" and settings.store.chroma_port == 8000
        assert settings.llm.backend == "extractive"  # until a model is configured
        assert settings.llm.base_url == "http://llm:8080/v1"  # the llm profile's server
        assert "8080" in services["llm"]["command"]
        # They share the state through PostgreSQL, never a volume: /data holds caches only.
        assert settings.state.backend == "postgresql"
        assert "@postgres:5432/" in settings.state.url.get_secret_value()
        mounts = {m.split(":")[1] for m in services[name].get("volumes", [])}
        assert str(settings.data_dir) not in mounts
        assert set(services[name]["depends_on"]) == {"chroma", "postgres"}
    postgres = services["postgres"]
    assert "ports" not in postgres and postgres["environment"]["POSTGRES_USER"] == "rag"
    # The API's URL and the server's password are one setting.
    url = services["api"]["environment"]["RAG_STATE__URL"]
    assert f":{postgres['environment']['POSTGRES_PASSWORD']}@" in url


def test_replicas_are_reached_through_the_proxy() -> None:
    services = resolved_compose()["services"]
    assert "ports" not in services["api"]  # `--scale api=3` would collide on a host port
    assert services["proxy"]["ports"][0].endswith(":8080")
    nginx = (REPO / "deploy" / "nginx.conf").read_text()
    assert "listen 8080;" in nginx and "http://api:8000" in nginx
    assert "proxy_buffering off;" in nginx  # Server-Sent Events pass through as written
    # Rate limits across replicas live in the proxy, answered 429 as problem+json.
    assert "limit_req zone=rag_per_client" in nginx and "limit_req zone=rag_answers" in nginx
    assert "limit_req_status 429;" in nginx and "application/problem+json" in nginx
    # Slow clients are cut off at the proxy as in the API (RAG_API__HEADER_TIMEOUT_S).
    assert "client_body_timeout 10s;" in nginx and "client_header_timeout 10s;" in nginx


def test_env_example_documents_exactly_what_compose_reads() -> None:
    documented = set(
        re.findall(r"^# ([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M)
    )
    interpolated = set(re.findall(r"\$\{(\w+)", (REPO / "docker-compose.yml").read_text()))
    assert documented == interpolated


def test_the_llm_service_runs_only_under_its_profile() -> None:
    assert "llm" not in resolved_compose()["services"]
    assert "llm" in resolved_compose("llm")["services"]


@pytest.mark.parametrize(
    ("text", "environment", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("$A/x", {"A": "1"}, "1/x"),
        ("${A}", {}, ""),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("${A:+alt}", {"A": "1"}, "alt"),
        ("${A:+alt}", {"A": ""}, ""),
        ("${A+alt}", {"A": ""}, "alt"),
        ("$${A} costs $$5", {"A": "1"}, "${A} costs $5"),
        ("${A:?}", {"A": "1"}, "1"),
    ],
)
def test_interpolation_follows_the_compose_specification(
    text: str, environment: dict[str, str], expected: str
) -> None:
    assert interpolate(text, environment) == expected


@pytest.mark.parametrize(
    ("text", "environment"),
    [("${A:?set A}", {"A": ""}), ("${A?set A}", {}), ("${A:-${B}}", {}), ("${A", {})],
)
def test_missing_required_and_unsupported_interpolations_are_errors(
    text: str, environment: dict[str, str]
) -> None:
    with pytest.raises(ComposeError):
        interpolate(text, environment)


def test_a_file_that_breaks_the_specification_is_rejected(tmp_path: Path) -> None:
    compose = tmp_path / "compose.yml"
    compose.write_text("services:\n  api:\n    image: 3\n    restart: sometimes\n    bogus: 1\n")
    with pytest.raises(ComposeError) as error:
        resolve(compose, {})
    reasons = str(error.value)
    assert "services.api.image: 3 is not of type 'string'" in reasons
    assert "'bogus' does not match" in reasons


def test_the_deployment_requires_keys_and_publishes_on_loopback_by_default() -> None:
    assert dockerfile_env()["RAG_API__AUTH"] == "required"
    services = resolved_compose()["services"]
    assert services["proxy"]["ports"] == ["127.0.0.1:8000:8080"]
    assert services["api"]["environment"]["RAG_API__AUTH"] == "required"
    published = resolve(REPO / "docker-compose.yml", {"RAG_BIND": "0.0.0.0"})["services"]
    assert published["proxy"]["ports"] == ["0.0.0.0:8000:8080"]


FAKE_PYTHON = """#!/bin/sh
# "python -m venv DIR": a venv whose pip says what it was asked, prints progress, the noise a
# machine-wide pip configuration causes, and a real warning.
mkdir -p "$3/bin"
cat > "$3/bin/pip" <<'PIP'
#!/bin/sh
echo "pip $*"
echo "Collecting fastapi"
echo "WARNING: Location 'file:///opt/pypi/simple/fastapi/' is ignored: it is neither a file nor a directory." >&2
echo "WARNING: a warning that matters" >&2
PIP
chmod +x "$3/bin/pip"
"""


def test_make_install_shows_progress_without_the_pip_configuration_noise(tmp_path: Path) -> None:
    """`make run` installs for about 2 minutes the first time: step messages and pip's own
    progress show, pip's per-package "Location … is ignored" warnings do not. (A fake Python
    makes a fake venv: nothing is installed.)"""
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    made = subprocess.run(
        ["make", "-C", str(REPO), "install", f"VENV={tmp_path / 'venv'}", f"PYTHON={python}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    assert "==> Installing rag-service" in made.stdout
    assert "Collecting fastapi" in made.stdout
    pip_args = next(line for line in made.stdout.splitlines() if line.startswith("pip "))
    assert "--quiet" not in pip_args and " -q" not in pip_args
    assert "/opt/pypi" not in made.stdout + made.stderr
    assert "WARNING: a warning that matters" in made.stderr
    assert (tmp_path / "venv" / "bin" / ".installed-run").exists()


def test_every_variable_the_readmes_name_is_read_by_something() -> None:
    """A setting renamed or dropped leaves no stale advice in the READMEs or docs/: each RAG_*
    name there is a setting, one of the CLI's own (the server to talk to, its key), or one the
    compose file interpolates."""
    from rag_cli import remote

    interpolated = set(re.findall(r"\$\{(\w+)", (REPO / "docker-compose.yml").read_text()))
    cli = {remote.URL_VARIABLE, remote.KEY_VARIABLE}
    pages = [REPO / "README.md", REPO / "README.zh-CN.md", *sorted((REPO / "docs").glob("*.md"))]
    for page in pages:
        for name in set(re.findall(r"\bRAG_[A-Z0-9_]*[A-Z0-9]", page.read_text())):
            if name not in interpolated | cli:
                setting_of(name)  # fails, naming the variable, if no setting has that name


def test_every_rag_command_the_readmes_show_exists() -> None:
    """`rag docs ls` in a README would send a user to an error: every `rag WORD [WORD]` shown
    names a command of the CLI (and of its group, for `rag docs …` and `rag keys …`)."""
    import typer.main

    from rag_cli.commands import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    pages = [REPO / "README.md", REPO / "README.zh-CN.md", *sorted((REPO / "docs").glob("*.md"))]
    for page in pages:
        for first, second in re.findall(
            r"\brag ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", page.read_text()
        ):
            command = commands.get(first)
            assert command is not None, f"{page.name}: rag {first}"
            if second and hasattr(command, "commands"):  # a group: rag docs …, rag keys …
                assert second in command.commands, f"{page.name}: rag {first} {second}"
