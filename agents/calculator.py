"""A safe arithmetic evaluator for the `calculate` tool (never `eval`/`exec`).

simpleeval walks the expression's syntax tree; this subclass narrows what it accepts to numbers,
arithmetic operators, a few math functions and the constants pi and e, and bounds every way an
expression could make it work hard: the expression's length, the exponent of a power, the size of
every intermediate result and the digits of `round`. Anything else raises `CalculationError`, whose
message is fit to show the model."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from numbers import Real

from simpleeval import InvalidExpression, SimpleEval

MAX_EXPRESSION_CHARS = 200
MAX_EXPONENT = 1000
MAX_RESULT_BITS = 1024  # integers up to ~1.8e308, the float range
MAX_ROUND_DIGITS = 15


class CalculationError(ValueError):
    """The expression was refused or could not be evaluated."""


Number = int | float


def _number(value: object) -> Number:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise CalculationError("Only numbers are allowed.")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculationError("The result is not a finite number.")
    if isinstance(value, int) and value.bit_length() > MAX_RESULT_BITS:
        raise CalculationError("The result is too large.")
    return value  # type: ignore[return-value]


def _checked(fn: Callable[..., object]) -> Callable[..., Number]:
    def run(*args: object) -> Number:
        return _number(fn(*(_number(arg) for arg in args)))

    return run


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculationError(f"Exponents are limited to ±{MAX_EXPONENT}.")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 1:
        if abs(base) > 1 and (abs(base).bit_length() - 1) * exponent > MAX_RESULT_BITS:
            raise CalculationError("The result is too large.")
    try:
        result = base**exponent
    except OverflowError as exc:
        raise CalculationError("The result is too large.") from exc
    if isinstance(result, complex):
        raise CalculationError("The result is not a real number.")
    return result


def _round(value: Number, digits: Number = 0) -> Number:
    if not isinstance(digits, int) or abs(digits) > MAX_ROUND_DIGITS:
        raise CalculationError(f"round() takes a whole number of digits up to {MAX_ROUND_DIGITS}.")
    return round(value, digits)


OPERATORS = {
    ast.Add: _checked(operator.add),
    ast.Sub: _checked(operator.sub),
    ast.Mult: _checked(operator.mul),
    ast.Div: _checked(operator.truediv),
    ast.FloorDiv: _checked(operator.floordiv),
    ast.Mod: _checked(operator.mod),
    ast.Pow: _checked(_power),
    ast.USub: _checked(operator.neg),
    ast.UAdd: _checked(operator.pos),
}

FUNCTIONS = {
    "sqrt": _checked(math.sqrt),
    "abs": _checked(abs),
    "round": _checked(_round),
    "floor": _checked(math.floor),
    "ceil": _checked(math.ceil),
    "log": _checked(math.log),
    "log10": _checked(math.log10),
    "log2": _checked(math.log2),
    "exp": _checked(math.exp),
    "sin": _checked(math.sin),
    "cos": _checked(math.cos),
    "tan": _checked(math.tan),
    "min": _checked(min),
    "max": _checked(max),
}

CONSTANTS = {"pi": math.pi, "e": math.e}


class _ArithmeticEval(SimpleEval):
    def __init__(self, names: Mapping[str, Number]):
        super().__init__(operators=OPERATORS, functions=FUNCTIONS, names=dict(names))
        # Only these syntax nodes: no attributes, subscripts, comparisons, strings, f-strings,
        # keyword arguments, assignments or comprehensions.
        self.nodes = {
            ast.Expr: self._eval_expr,
            ast.Name: self._eval_name,
            ast.UnaryOp: self._eval_unaryop,
            ast.BinOp: self._eval_binop,
            ast.Call: self._eval_plain_call,
            ast.Constant: self._eval_number,
        }

    @staticmethod
    def parse(expr: str) -> ast.AST:
        # `^` is a power, as in mathjs and in maths: right-associative (2^3^2 = 2^9) and binding
        # tighter than `*` and unary minus (2*3^2 = 18, -2^2 = -4). Python's `**` has exactly that
        # grammar, while Python's `^` is XOR, binding looser than `+` and `*`, so the text is
        # rewritten before it is parsed. A plain replace is enough: the only other place a `^`
        # could stand is a string literal, and strings are refused.
        return SimpleEval.parse(expr.replace("^", "**"))

    def _eval_number(self, node: ast.Constant) -> Number:
        return _number(node.value)

    def _eval_plain_call(self, node: ast.Call) -> Number:
        if node.keywords or not isinstance(node.func, ast.Name):
            raise CalculationError("Only plain calls of the listed functions are allowed.")
        return self._eval_call(node)


def evaluate(expression: str, names: Mapping[str, Number] | None = None) -> Number:
    """The value of an arithmetic `expression`. Raises CalculationError for anything refused."""
    if not isinstance(expression, str) or not expression.strip():
        raise CalculationError("The expression is empty.")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculationError(
            f"The expression is too long ({len(expression)} characters, "
            f"at most {MAX_EXPRESSION_CHARS})."
        )
    evaluator = _ArithmeticEval({**CONSTANTS, **(names or {})})
    try:
        return _number(evaluator.eval(expression.strip()))
    except CalculationError:
        raise
    except InvalidExpression as exc:
        raise CalculationError(str(getattr(exc, "message", exc))) from exc
    except SyntaxError as exc:
        raise CalculationError("The expression is not valid arithmetic.") from exc
    except ZeroDivisionError as exc:
        raise CalculationError("Division by zero.") from exc
    except (ArithmeticError, ValueError, TypeError, RecursionError) as exc:
        raise CalculationError(f"The expression cannot be evaluated: {exc}") from exc
