"""Finding the arithmetic in a piece of text: the offline backend uses it to answer tool-use
prompts, and the agents' answer check to recompute what a problem asks."""

import re

_EXPRESSION = re.compile(r"[-(]*\d[\d\s.,+\-*/^%()]*[\d)]")
_HAS_OPERATOR = re.compile(r"[\d)]\s*(?:\*\*|[-+*/^%])\s*[-(]*\d")


def find_expression(text: str) -> str | None:
    """The first arithmetic expression in `text` (e.g. "2**10 + (3*4)"), or None."""
    for match in _EXPRESSION.finditer(text):
        candidate = match.group(0).strip().rstrip(".,").strip()
        if _HAS_OPERATOR.search(candidate) and candidate.count("(") == candidate.count(")"):
            return candidate
    return None
