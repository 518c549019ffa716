"""YAML loading that remembers line numbers, substitutes ${ENV} secrets and rejects duplicate keys."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qinghe.errors import QingheError

Loc = tuple[str | int, ...]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, printed as `file:line: key: message`."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key or '(top)'}: {self.message}"


class ConfigError(QingheError):
    """A config or rule file was rejected; `issues` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Parsed YAML as plain Python data, plus the line of every key and item (1-based)."""

    path: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[str | int]) -> int:
        """Line of the deepest known prefix of `loc` (1 if nothing matches)."""
        key = tuple(loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), 1)

    def issue(self, loc: Sequence[str | int], message: str) -> ConfigIssue:
        """A ConfigIssue pointing at `loc` in this document."""
        return ConfigIssue(self.path, self.line_of(loc), dotted(loc), message)


def dotted(loc: Sequence[str | int]) -> str:
    """`("rules", 0, "for")` -> `rules[0].for`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml_text(text: str, path: str, environ: Mapping[str, str] | None = None) -> YamlDocument:
    """Parse YAML text; raise ConfigError (with line numbers) on syntax, duplicate keys or missing env."""
    env = os.environ if environ is None else environ
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError([ConfigIssue(path, line, "", f"YAML syntax error: {exc.problem}")]) from None
    builder = _Builder(path, env)
    data = builder.build(node, ()) if node is not None else None
    if builder.issues:
        raise ConfigError(builder.issues)
    return YamlDocument(path=path, data=data, lines=builder.lines)


def load_yaml_file(path: str | Path, environ: Mapping[str, str] | None = None) -> YamlDocument:
    """Read and parse a YAML file; a missing or unreadable file is a ConfigError too."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(name, 1, "", f"cannot read file: {exc}")]) from None
    return load_yaml_text(text, name, environ)


class _Builder:
    """Walks a composed YAML node tree into plain data, recording lines and collecting issues."""

    def __init__(self, path: str, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ
        self.lines: dict[Loc, int] = {}
        self.issues: list[ConfigIssue] = []
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        value = self._constructor.construct_object(node, deep=True)
        return self._substitute(value, loc, node) if isinstance(value, str) else value

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self._constructor.construct_object(key_node, deep=True)
            if key == "<<":
                self._issue(key_node, loc, "YAML merge keys (<<) are not supported; write the keys out")
                continue
            child = (*loc, key if isinstance(key, str | int) else str(key))
            if key in out:
                self._issue(key_node, child, f"duplicate key {key!r} (first defined on line {self.lines[child]})")
                continue
            self.lines[child] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, child)
        return out

    def _substitute(self, text: str, loc: Loc, node: yaml.Node) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.environ:
                return self.environ[name]
            if default is not None:
                return default
            self._issue(node, loc, f"environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(replace, text) if "${" in text else text

    def _issue(self, node: yaml.Node, loc: Loc, message: str) -> None:
        self.issues.append(ConfigIssue(self.path, node.start_mark.line + 1, dotted(loc), message))


def walk_strings(data: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """Every string leaf in `data` with its location; handy for cross-reference checks."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from walk_strings(value, (*loc, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from walk_strings(value, (*loc, i))
    elif isinstance(data, str):
        yield loc, data
