"""`qinghe config check FILE...`: validate any config or rule file; print `file:line: key: message`."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qinghe.yamlload import ConfigError, ConfigIssue, load_yaml_file


@dataclass(frozen=True, slots=True)
class FileKind:
    """A kind of YAML file the project reads: how to recognise it and how to check it fully."""

    name: str
    detect: Callable[[Any], bool]
    check: Callable[[str], None]  # raises ConfigError


# Each module exposes `file_kinds() -> list[FileKind]`, most specific first.
KIND_PROVIDERS = ("rules.config", "edge.config", "alerting.config", "qinghe.central_config")


def file_kinds() -> list[FileKind]:
    """All known file kinds, in detection order."""
    kinds: list[FileKind] = []
    for module_name in KIND_PROVIDERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # that package defines no file kinds
        provider = getattr(module, "file_kinds", None)
        if provider is not None:
            kinds.extend(provider())
    return kinds


def check_file(path: str) -> tuple[str, list[ConfigIssue]]:
    """Check one file; returns (kind name, issues). An unrecognised file is an issue too."""
    try:
        doc = load_yaml_file(path)
    except ConfigError as exc:
        return "unknown", list(exc.issues)
    for kind in file_kinds():
        if kind.detect(doc.data):
            try:
                kind.check(path)
            except ConfigError as exc:
                return kind.name, list(exc.issues)
            return kind.name, []
    names = ", ".join(k.name for k in file_kinds())
    return "unknown", [ConfigIssue(path, 1, "", f"not a recognised config file (expected one of: {names})")]


def run_check(args: argparse.Namespace) -> int:
    """Handler for `qinghe config check`."""
    failed = False
    for path in args.files:
        kind, issues = check_file(path)
        for issue in issues:
            print(issue, file=sys.stderr)
        if issues:
            failed = True
        elif not args.quiet:
            print(f"{path}: ok ({kind})")
    return 1 if failed else 0


# file kind -> "module:Model" whose JSON Schema editors can use to complete and check YAML.
SCHEMA_MODELS = {
    "central": "qinghe.central_config:CentralConfig",
    "edge": "edge.config:EdgeConfig",
    "rules": "rules.model:RuleFileModel",
    "rule-test": "rules.testfile:RuleTestFile",
}


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one file kind, generated from its pydantic model."""
    module_name, _, class_name = SCHEMA_MODELS[kind].partition(":")
    model = getattr(importlib.import_module(module_name), class_name)
    schema: dict[str, Any] = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"qinghe/{kind}.schema.json"
    return schema


def run_schema(args: argparse.Namespace) -> int:
    """Handler for `qinghe config schema`: print one schema, or write them all to a directory."""
    if args.out is None:
        print(json.dumps(json_schema(args.kind), indent=2, ensure_ascii=False))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for kind in SCHEMA_MODELS if args.kind == "all" else [args.kind]:
        path = args.out / f"{kind}.schema.json"
        path.write_text(json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(path)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `config` verb group."""
    config = subparsers.add_parser("config", help="validate config and rule files")
    verbs = config.add_subparsers(dest="config_verb", metavar="VERB", required=True)
    check = verbs.add_parser(
        "check",
        help="validate files; exit 1 with file:line: key: message for each error",
        description="Validate central, edge, rule, rule-test and calendar files. Exit 0 if all are valid, "
        "1 if any has errors (each printed as file:line: key: message), 2 on usage errors.",
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    check.set_defaults(handler=run_check)
    schema = verbs.add_parser(
        "schema",
        help="print the JSON Schema of a file kind (for editor completion of YAML)",
        description="Print the JSON Schema generated from the config models, or write every kind's schema to "
        "--out DIR. Point your editor's YAML language server at it (see docs/config.md).",
    )
    schema.add_argument("kind", choices=[*SCHEMA_MODELS, "all"])
    schema.add_argument("--out", type=Path, default=None, help="write <kind>.schema.json files here")
    schema.set_defaults(handler=run_schema)


def main(argv: Sequence[str]) -> int:
    """Run `config check` directly (for tests)."""
    parser = argparse.ArgumentParser(prog="qinghe")
    register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["config", "check", *argv])
    return int(args.handler(args))
