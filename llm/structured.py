"""Helpers for structured output that need no network and no google-genai.

* `example_from_schema`: a deterministic value that satisfies a JSON Schema (standard JSON Schema as
  pydantic writes it, or Gemini's OpenAPI subset with upper-case types). The offline provider and
  the test suite's Gemini stand-in use it to answer structured calls.
* `build_example`: the same for a pydantic model, validated.
* `parse_partial`: the object parsed so far from incomplete JSON text (jiter, not hand parsing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jiter
from pydantic import BaseModel

TextFor = Callable[[str], str]

_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "duration": "P1D",
}


def _default_text(name: str) -> str:
    return f"sample {name}" if name else "sample text"


def example_from_schema(
    schema: dict[str, Any],
    *,
    text_for: TextFor | None = None,
    list_items: int = 2,
    number_bias: float = 0.75,
) -> Any:
    """A value valid for `schema`. Optional fields are filled, lists get `list_items` items
    (within minItems/maxItems), numbers sit at `number_bias` of their [minimum, maximum] range,
    enums and unions take their first choice. `text_for(field_name)` makes the strings."""
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        defs.update(schema.get(key) or {})
    text = text_for or _default_text

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in node and seen < 32:
            name = node["$ref"].rsplit("/", 1)[-1]
            node = {**defs.get(name, {}), **{k: v for k, v in node.items() if k != "$ref"}}
            seen += 1
        return node

    def number(node: dict[str, Any], integer: bool) -> int | float:
        lo = node.get("minimum")
        hi = node.get("maximum")
        xlo = node.get("exclusiveMinimum")
        xhi = node.get("exclusiveMaximum")
        step = 1 if integer else 0.5
        if isinstance(xlo, bool):  # OpenAPI 3.0 style
            xlo = lo if xlo else None
            lo = None if xlo is not None else lo
        if isinstance(xhi, bool):
            xhi = hi if xhi else None
            hi = None if xhi is not None else hi
        if xlo is not None:
            lo = xlo + step if lo is None else max(lo, xlo + step)
        if xhi is not None:
            hi = xhi - step if hi is None else min(hi, xhi - step)
        if lo is None and hi is None:
            value: float = 3
        elif hi is None:
            value = lo + 1
        elif lo is None:
            value = hi - 1
        else:
            value = lo + number_bias * (hi - lo)
        if integer:
            value = round(value)
            if lo is not None and value < lo:
                value = int(-(-lo // 1))
            if hi is not None and value > hi:
                value = int(hi // 1)
            return int(value)
        if lo is not None and hi is not None and hi - lo >= 2:
            value = float(round(value))
        value = round(value, 2)
        if xlo is not None and value <= xlo:
            value = (xlo + (hi if hi is not None else xlo + 2)) / 2
        if xhi is not None and value >= xhi:
            value = (xhi + (lo if lo is not None else xhi - 2)) / 2
        return float(value)

    def string(node: dict[str, Any], name: str) -> str:
        fmt = node.get("format")
        value = _FORMATS.get(fmt) if fmt else None
        if value is None:
            value = text(name)
        min_len = node.get("minLength") or node.get("min_length")
        max_len = node.get("maxLength") or node.get("max_length")
        if min_len and len(value) < int(min_len):
            value = value + "." * (int(min_len) - len(value))
        if max_len is not None and len(value) > int(max_len):
            value = value[: int(max_len)]
        return value

    def pick_type(node: dict[str, Any]) -> str | None:
        t = node.get("type")
        if isinstance(t, list):
            t = next((x for x in t if str(x).lower() != "null"), t[0] if t else None)
        if t is None:
            if "properties" in node:
                return "object"
            if "items" in node:
                return "array"
            return None
        return str(t).lower()

    def walk(node: Any, name: str, depth: int) -> Any:
        if not isinstance(node, dict):
            return text(name)
        node = resolve(node)
        if "const" in node:
            return node["const"]
        if node.get("enum"):
            return node["enum"][0]
        for key in ("anyOf", "oneOf", "any_of", "one_of"):
            options = node.get(key)
            if options:
                resolved = [resolve(o) for o in options if isinstance(o, dict)]
                chosen = next((o for o in resolved if pick_type(o) != "null"), resolved[0])
                return walk(chosen, name, depth)
        if node.get("allOf"):
            merged: dict[str, Any] = {}
            for part in node["allOf"]:
                merged.update(resolve(part))
            return walk(merged, name, depth)
        kind = pick_type(node)
        if kind == "object":
            props = node.get("properties") or {}
            if depth > 8:
                return {
                    k: walk(v, k, depth + 1)
                    for k, v in props.items()
                    if k in node.get("required", [])
                }
            return {key: walk(sub, key, depth + 1) for key, sub in props.items()}
        if kind == "array":
            lo = int(node.get("minItems") or node.get("min_items") or 0)
            hi = node.get("maxItems") or node.get("max_items")
            count = max(list_items, lo) if depth <= 8 else lo
            if hi is not None:
                count = min(count, int(hi))
            prefix = node.get("prefixItems")
            if prefix:
                return [walk(p, name, depth + 1) for p in prefix]
            items = node.get("items") or {}
            return [walk(items, _singular(name), depth + 1) for _ in range(count)]
        if kind == "integer":
            return number(node, True)
        if kind == "number":
            return number(node, False)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return string(node, name)

    return walk(schema, str(schema.get("title", "")), 0)


def _singular(name: str) -> str:
    return name[:-1] if name.endswith("s") and len(name) > 3 else name


def build_example(
    schema: type[BaseModel], *, text_for: TextFor | None = None, number_bias: float = 0.75
) -> BaseModel:
    """A validated instance of `schema` made by `example_from_schema`."""
    data = example_from_schema(
        schema.model_json_schema(), text_for=text_for, number_bias=number_bias
    )
    return schema.model_validate(data)


def parse_partial(text: str) -> Any:
    """The value parsed so far from possibly incomplete JSON text; None if nothing parses yet."""
    try:
        return jiter.from_json(text.encode(), partial_mode="trailing-strings")
    except ValueError:
        return None
