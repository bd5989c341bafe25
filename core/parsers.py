"""The JSON parser of every DRF view (settings.REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]).

DRF's own `JSONParser` uses the standard library's recursive parser: 2 KB of `[` raise a
`RecursionError`, which is no `ValueError` and so became a 500 on every JSON endpoint. This one
parses with jiter (pydantic's JSON parser, already a dependency), which is a Rust parser without
recursion in Python: its nesting is bounded (`MAX_DEPTH` levels; deeper is refused), lone UTF-16
surrogates and invalid UTF-8 are refused, and `NaN`/`Infinity` are refused (as in DRF's strict
mode).
Any refusal is DRF's `ParseError`: a 400 `malformed_request` (see `core.errors`).

It is also about twice as fast as DRF's parser on a chat body (README, "Request bodies")."""

from __future__ import annotations

import codecs

import jiter
from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

#: jiter refuses more than about 200 nested arrays or objects ("recursion limit exceeded"); a
#: limit of the library, stated here so that README and the tests can name it.
MAX_DEPTH = 200


def parse_json(data: bytes, *, encoding: str = "utf-8"):
    """`data` (a request body) as Python values; `ValueError` with a short reason when it is not
    one JSON document, nests too deep or holds invalid text. Views that read `request.body`
    themselves call this rather than `json.loads`."""
    if codecs.lookup(encoding).name != "utf-8":
        data = data.decode(encoding).encode("utf-8")  # jiter reads UTF-8 only
    return jiter.from_json(data, allow_inf_nan=False, cache_mode="keys")


class JSONParser(parsers.JSONParser):
    """A subclass of DRF's, because DRF reads the body of its own JSON parser through
    `request.body`, which applies Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return parse_json(stream.read(), encoding=encoding)
        except (ValueError, LookupError) as exc:  # UnicodeDecodeError is a ValueError
            raise ParseError(f"JSON parse error - {exc}") from exc
