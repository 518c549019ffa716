"""Small pieces of the rule language: durations, value expressions and message templates (all pure)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from qinghe.contracts import Colour
from qinghe.sensors import KINDS

# ----- durations -------------------------------------------------------------------------------------

_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")


def parse_duration(value: object) -> float:
    """`"5m"`, `"1h30m"`, `"90s"`, `"2d"` or a number of seconds -> seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration must be like 30s, 5m, 1h30m or a number of seconds, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"duration must be a finite number of seconds >= 0, got {value}")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if _DURATION.match(text):
            return sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(text))
    raise ValueError(f"{value!r} is not a duration (write e.g. 30s, 5m, 1h30m, 2d)")


def format_duration(seconds: float) -> str:
    """Seconds -> the shortest readable duration, e.g. 5400 -> `1h30m`, 0.5 -> `500ms`."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out, rest = "", round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


# ----- value expressions -----------------------------------------------------------------------------

AGGREGATES: Final = frozenset({"avg", "min", "max", "sum", "count", "rate", "delta", "stddev", "percentile"})
# field name -> sensor kind; every field name is unique across kinds, so `pm25` names `air.pm25`.
FIELD_KINDS: Final = {name: spec.kind.value for spec in KINDS.values() for name in spec.fields}

_CALL = re.compile(r"^\s*([a-z][a-z0-9_.]*)\s*\((.*)\)\s*$")
_FIELD = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?$")
_PNN = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class ValueExpr:
    """A parsed value expression: `pm25` (latest), `avg(pm25, 10m)`, `p95(laeq, 1h)`, `rate(level, 30m)`."""

    func: str  # last | avg | min | max | sum | count | rate | delta | stddev | percentile
    kind: str
    field: str
    window_s: float = 0.0
    q: float = 0.0  # percentile 0..100

    @property
    def series(self) -> str:
        """The series this expression reads: `kind.field`."""
        return f"{self.kind}.{self.field}"

    def __str__(self) -> str:
        if self.func == "last":
            return self.field
        window = format_duration(self.window_s)
        if self.func == "percentile":
            return f"p{self.q:g}({self.field}, {window})"
        return f"{self.func}({self.field}, {window})"


def parse_field(text: str) -> tuple[str, str]:
    """`pm25` or `air.pm25` -> (kind, field); ValueError naming the known fields otherwise."""
    text = text.strip()
    if not _FIELD.match(text):
        raise ValueError(f"{text!r} is not a field name (e.g. pm25, laeq, level, rate)")
    if "." in text:
        kind, field = text.split(".", 1)
        spec = next((s for s in KINDS.values() if s.kind.value == kind), None)
        if spec is None:
            raise ValueError(f"unknown sensor kind {kind!r} (known: {', '.join(k.value for k in KINDS)})")
        if field not in spec.fields:
            raise ValueError(f"{kind} sensors have no field {field!r} (they have {', '.join(spec.fields)})")
        return kind, field
    if text not in FIELD_KINDS:
        raise ValueError(f"unknown field {text!r} (known: {', '.join(sorted(FIELD_KINDS))})")
    return FIELD_KINDS[text], text


def parse_value_expr(text: str) -> ValueExpr:
    """Parse a value expression; raise ValueError with a message an operator can act on."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a value expression is a field (pm25) or func(field, window), e.g. avg(pm25, 10m)")
    call = _CALL.match(text)
    if call is None:
        kind, field = parse_field(text)
        return ValueExpr("last", kind, field)
    func, args = call.group(1), [a.strip() for a in call.group(2).split(",")]
    q = 0.0
    if (pnn := _PNN.match(func)) is not None:
        func, q = "percentile", float(pnn.group(1))
    elif func == "percentile":
        if len(args) != 3:
            raise ValueError("percentile takes (field, q, window), e.g. percentile(laeq, 95, 1h)")
        q = _parse_q(args.pop(1))
    elif func == "last" and len(args) == 1:
        kind, field = parse_field(args[0])
        return ValueExpr("last", kind, field)
    if func not in AGGREGATES:
        known = ", ".join(sorted(AGGREGATES | {"last", "pNN"}))
        raise ValueError(f"unknown function {func!r} in {text!r} (known: {known})")
    if len(args) != 2:
        raise ValueError(f"{func} takes (field, window), e.g. {func}(pm25, 10m); got {text!r}")
    kind, field = parse_field(args[0])
    window = parse_duration(args[1])
    if window <= 0:
        raise ValueError(f"the window of {text!r} must be longer than 0")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {q:g}")
    return ValueExpr(func, kind, field, window, q)


def _parse_q(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"percentile q must be a number 0..100, got {text!r}") from None


# ----- templates -------------------------------------------------------------------------------------

# `{name}`, `{name:.1f}`, `{name|default text}`; `{{` and `}}` are literal braces.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}|]*))?(?:\|([^{}]*))?\}")

MESSAGE_FIELDS: Final = frozenset(
    {
        "rule", "type", "description", "colour", "colour_cn", "status", "transition",
        "zone", "sensor", "sensor_name", "kind", "camera", "camera_id", "episode", "label", "analytic",
        "plate", "value", "threshold", "condition", "count", "dwell_s", "duration", "correlated",
    }
)  # fmt: skip
KEY_FIELDS: Final = frozenset({"rule", "type", "zone", "sensor", "kind", "camera", "episode", "label", "analytic"})

COLOUR_CN: Final = {Colour.BLUE: "蓝色", Colour.YELLOW: "黄色", Colour.ORANGE: "橙色", Colour.RED: "红色"}


def template_fields(template: str) -> list[str]:
    """Placeholder names used by a template, in order (ValueError on an unbalanced brace)."""
    names = [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)]
    stripped = _PLACEHOLDER.sub("", template)
    if "{" in stripped or "}" in stripped:
        raise ValueError(f"unbalanced brace in template {template!r} (write {{{{ or }}}} for a literal brace)")
    return names


def check_template(template: str, allowed: frozenset[str]) -> None:
    """ValueError if `template` is malformed or uses a placeholder outside `allowed`."""
    unknown = [name for name in template_fields(template) if name not in allowed]
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use one of: {', '.join(sorted(allowed))}")


def render(template: str, values: Mapping[str, object], passthrough: frozenset[str] = frozenset()) -> str:
    """Fill a template; a missing or None value uses the `|default`, else `-`; numbers take format specs.

    Names in `passthrough` are left as `{name}` for a later renderer (unless missing with a default).
    """

    def replace(match: re.Match[str]) -> str:
        whole, name, spec, default = match.group(0), match.group(1), match.group(2), match.group(3)
        if whole in ("{{", "}}"):
            return whole[0]
        value = values.get(name)
        if name in passthrough:
            return default if (value is None or value == "") and default is not None else "{" + name + "}"
        if value is None or value == "":
            return default if default is not None else "-"
        if spec:
            try:
                return format(value, spec)
            except (ValueError, TypeError):
                return str(value)
        if isinstance(value, float):
            return f"{value:.6g}"
        return str(value)

    return _PLACEHOLDER.sub(replace, template)
