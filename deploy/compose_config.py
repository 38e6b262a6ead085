"""The compose file as Compose reads it, checked without Compose or a Docker engine.

`docker compose config` interpolates variables, applies profiles and validates the result
against the Compose Specification's JSON schema. This does the same three steps, so
`make test` can validate `docker-compose.yml` on any machine with nothing but the project's
own dependencies: the schema is `compose-spec.json` beside this file, copied unchanged from
github.com/compose-spec/compose-spec (schema/compose-spec.json at commit 170098ba, 2026-06-23;
Apache License 2.0, `compose-spec.LICENSE`). YAML anchors and `<<` merge keys are resolved by
the YAML loader, as Compose does.

    python deploy/compose_config.py [--profile NAME]... [-q] [FILE]

prints the resolved file (or, with -q, nothing) and exits 1 with the reasons if it is invalid.
Variables come from the environment; the project's `.env` is not read, so the defaults written
in the file are what is checked.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA = Path(__file__).with_name("compose-spec.json")

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt},
# ${NAME+alt}, $NAME, and $$ for a literal dollar (the Compose Specification, "Interpolation").
_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^${}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class ComposeError(ValueError):
    """The file cannot be resolved or does not follow the Compose Specification."""


def interpolate(text: str, environment: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        value = environment.get(name)
        op, arg = match["op"], match["arg"] or ""
        unset_or_empty = not value if op and op.startswith(":") else value is None
        if op in (":-", "-"):
            return arg if unset_or_empty else str(value)
        if op in (":?", "?"):
            if unset_or_empty:
                raise ComposeError(f"required variable {name} is missing: {arg}")
            return str(value)
        if op in (":+", "+"):
            return "" if unset_or_empty else arg
        return value or ""

    if "${" in _REFERENCE.sub("", text):  # nested or malformed: say so, never guess
        raise ComposeError(f"unsupported interpolation in {text!r}")
    return _REFERENCE.sub(substitute, text)


def _interpolate_tree(node: Any, environment: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environment)
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, environment) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(value, environment) for value in node]
    return node


def resolve(
    path: Path, environment: Mapping[str, str], profiles: Iterable[str] = ()
) -> dict[str, Any]:
    """The file interpolated, with the services of inactive profiles removed, validated."""
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise ComposeError(f"{path}: not a mapping")
    config: dict[str, Any] = _interpolate_tree(document, environment)
    errors = sorted(
        jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).iter_errors(config),
        key=lambda error: list(map(str, error.absolute_path)),
    )
    if errors:
        raise ComposeError(
            "\n".join(
                f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors
            )
        )
    active = set(profiles)
    config["services"] = {
        name: service
        for name, service in config.get("services", {}).items()
        if not service.get("profiles") or active & set(service["profiles"])
    }
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", default="docker-compose.yml", type=Path)
    parser.add_argument("--profile", action="append", default=[])
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        config = resolve(args.file, os.environ, args.profile)
    except (ComposeError, yaml.YAMLError) as exc:
        print(f"{args.file}: invalid\n{exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
