"""Hot reload: watch rule files (and the calendars they name); load a changed set fully or not at all."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qinghe.yamlload import ConfigError
from rules.loader import RuleSet, load_rules
from rules.registry import Registry

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReloadStatus:
    """What `rules/status` says: the active rule set, and the last attempt if it failed."""

    ok: bool = True
    active_digest: str = ""
    rules: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    loaded_at: float | None = None
    attempted_at: float | None = None
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form for the retained status topic."""
        return {
            "ok": self.ok,
            "active_digest": self.active_digest,
            "rules": self.rules,
            "files": self.files,
            "loaded_at": self.loaded_at,
            "attempted_at": self.attempted_at,
            "errors": self.errors,
        }


class RuleWatcher:
    """Knows the rule files; says when their content (or a calendar's) changed and loads them."""

    def __init__(self, paths: Sequence[Path], registry: Registry) -> None:
        self.paths = [Path(p) for p in paths]
        self.registry = registry
        self.status = ReloadStatus(files=[str(p) for p in self.paths])
        self._extra: list[Path] = []  # calendars named by the files
        self._fingerprint = ""

    def fingerprint(self) -> str:
        """Hash of every watched file's bytes (a missing file hashes as missing)."""
        digest = hashlib.sha256()
        for path in [*self.paths, *self._extra]:
            digest.update(str(path).encode())
            try:
                digest.update(path.read_bytes())
            except OSError as exc:
                digest.update(f"<unreadable: {exc.strerror}>".encode())
        return digest.hexdigest()

    def load(self, now: float) -> RuleSet:
        """Load all files; raise ConfigError (status updated either way)."""
        fingerprint = self.fingerprint()
        self._fingerprint = fingerprint
        self.status.attempted_at = now
        try:
            ruleset = load_rules(self.paths, self.registry)
        except ConfigError as exc:
            self.status.ok = False
            self.status.errors = [str(issue) for issue in exc.issues]
            raise
        self._extra = sorted({_calendar_path(f.path, c) for f in ruleset.files for c in f.model.calendars})
        self._fingerprint = self.fingerprint()
        self.status = ReloadStatus(
            ok=True,
            active_digest=ruleset.digest,
            rules=sorted(ruleset.rules),
            files=[str(p) for p in self.paths],
            loaded_at=now,
            attempted_at=now,
        )
        return ruleset

    def poll(self, now: float) -> RuleSet | None:
        """A new rule set if the files changed and load cleanly; None if unchanged or broken (logged)."""
        if self.fingerprint() == self._fingerprint:
            return None
        previous = (self.status.active_digest, self.status.rules, self.status.loaded_at)
        try:
            ruleset = self.load(now)
        except ConfigError as exc:
            self.status.active_digest, self.status.rules, self.status.loaded_at = previous
            log.error("rule files rejected; the previous rules keep running:\n%s", exc)
            return None
        log.info("rules reloaded: %s (digest %s)", ruleset.summary(), ruleset.digest)
        return ruleset


def _calendar_path(rule_file: str, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else Path(rule_file).resolve().parent / path
