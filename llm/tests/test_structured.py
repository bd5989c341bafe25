"""example_from_schema / parse_partial."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from llm.structured import build_example, example_from_schema, parse_partial
from llm.tests.schemas import Review


class Bounds(BaseModel):
    score: int = Field(ge=1, le=10)
    ratio: float = Field(gt=0, lt=1)
    count: int = Field(ge=5)
    name: str = Field(min_length=30, max_length=40)
    items: list[int] = Field(min_length=3, max_length=3)
    mode: Literal["x", "y"] = "y"
    maybe: int | None = None


def test_example_respects_bounds():
    obj = build_example(Bounds)

    assert obj.score == 8
    assert 0 < obj.ratio < 1
    assert obj.count >= 5
    assert 30 <= len(obj.name) <= 40
    assert len(obj.items) == 3
    assert obj.mode == "x"
    assert obj.maybe is not None


def test_example_from_gemini_openapi_schema():
    schema = {
        "type": "OBJECT",
        "properties": {
            "kind": {"type": "STRING", "enum": ["a", "b"]},
            "n": {"type": "INTEGER", "minimum": 1, "maximum": 3},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
            "rating": {"type": "NUMBER", "nullable": True},
        },
    }

    value = example_from_schema(schema)

    assert value["kind"] == "a" and 1 <= value["n"] <= 3
    assert len(value["tags"]) == 2 and isinstance(value["rating"], float)


def test_example_for_nested_models():
    review = build_example(Review, text_for=lambda field: f"<{field}>")

    assert (review.summary, review.verdict, review.note) == ("<summary>", "approve", "<note>")
    assert review.confidence == 0.75
    assert [(f.title, f.severity, f.score) for f in review.findings] == [("<title>", "low", 8)] * 2
    assert review.tags == ["<tag>", "<tag>"]


def test_parse_partial():
    assert parse_partial("") is None
    assert parse_partial('{"a": "hel') == {"a": "hel"}
    assert parse_partial('{"a": [1, {"b": 2') == {"a": [1, {"b": 2}]}
