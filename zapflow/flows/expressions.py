"""The flows' safe expression language: a tiny tokenizer, a recursive-descent parser and an
evaluator over plain values. Nothing reaches Python's ``eval``; names resolve only against the
run's variables and the contact's fields.

    budget >= 5000 and contact.name != ""
    lower(answer) in ["yes", "sim"]
    (price * 2) + 10

Literals: numbers, 'single' or "double" quoted strings, true, false, null, [lists].
Operators: or, and, not, == != < <= > >=, in, contains, + - * / %. Functions: lower, upper,
len, number, text, empty (each takes one argument). A missing name is null; a comparison between
values of different kinds is false rather than an error, so a flow designer's condition never
crashes a run on a blank answer.

Expressions are tenant input, bounded (``zapflow.flows.limits``): their length and nesting are
checked when parsed (so a flow breaking them is refused when saved), and every value an
evaluation makes is checked against the value bounds. ``ExpressionError`` is the only error
parsing or evaluating raises: the engine turns it into the node's failure.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from zapflow.flows import limits


class ExpressionError(ValueError):
    """The text is not a valid expression, or it cannot be evaluated on these values."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|%|\(|\)|\[|\]|,)
    )""",
    re.VERBOSE,
)
KEYWORDS = {"and", "or", "not", "in", "contains", "true", "false", "null"}


@dataclass(frozen=True)
class Token:
    kind: str  # number | string | name | op | keyword | end
    text: str
    position: int


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    source = source.rstrip()
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None or match.end() == position:
            raise ExpressionError(f"unexpected character {source[position]!r} at {position}")
        group = match.lastgroup or "op"
        text = match.group(group)
        kind = "keyword" if group == "name" and text in KEYWORDS else group
        tokens.append(Token(kind, text, match.start(group)))
        position = match.end()
    tokens.append(Token("end", "", len(source)))
    return tokens


# --- syntax tree ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Name:
    path: str  # "budget" or "contact.name"


@dataclass(frozen=True)
class ListOf:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Node, ...]


Node = Literal | Name | ListOf | Unary | Binary | Call

COMPARISONS = {"==", "!=", "<", "<=", ">", ">=", "in", "contains"}
ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip
ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "%": operator.mod,
}  # fmt: skip


class _Parser:
    def __init__(self, source: str) -> None:
        self._tokens = tokenize(source)
        self._at = 0
        self._depth = 0  # the parser's own recursion: bounded before Python's is exhausted

    def _nested(self) -> None:
        self._depth += 1
        if self._depth > limits.MAX_EXPRESSION_DEPTH:
            raise ExpressionError(f"nested more than {limits.MAX_EXPRESSION_DEPTH} levels deep")

    def parse(self) -> Node:
        node = self._or()
        if self._peek().kind != "end":
            raise self._unexpected()
        return node

    def _peek(self) -> Token:
        return self._tokens[self._at]

    def _take(self) -> Token:
        token = self._tokens[self._at]
        self._at += 1
        return token

    def _accept(self, *texts: str) -> Token | None:
        token = self._peek()
        if token.kind in ("op", "keyword") and token.text in texts:
            return self._take()
        return None

    def _expect(self, text: str) -> None:
        if self._accept(text) is None:
            raise self._unexpected(f"expected {text!r}")

    def _unexpected(self, hint: str = "") -> ExpressionError:
        token = self._peek()
        seen = "the end" if token.kind == "end" else repr(token.text)
        return ExpressionError(
            f"unexpected {seen} at {token.position}" + (f": {hint}" if hint else "")
        )

    def _or(self) -> Node:
        self._nested()
        node = self._and()
        while self._accept("or"):
            node = Binary("or", node, self._and())
        self._depth -= 1
        return node

    def _and(self) -> Node:
        node = self._not()
        while self._accept("and"):
            node = Binary("and", node, self._not())
        return node

    def _not(self) -> Node:
        if self._accept("not"):
            self._nested()
            return Unary("not", self._not())
        return self._comparison()

    def _comparison(self) -> Node:
        node = self._sum()
        token = self._accept(*COMPARISONS)
        if token:
            node = Binary(token.text, node, self._sum())
        return node

    def _sum(self) -> Node:
        node = self._product()
        while token := self._accept("+", "-"):
            node = Binary(token.text, node, self._product())
        return node

    def _product(self) -> Node:
        node = self._unary()
        while token := self._accept("*", "/", "%"):
            node = Binary(token.text, node, self._unary())
        return node

    def _unary(self) -> Node:
        if self._accept("-"):
            self._nested()
            return Unary("-", self._unary())
        return self._primary()

    def _primary(self) -> Node:
        token = self._take()
        if token.kind == "number":
            number = as_number(token.text) if len(token.text) <= limits.MAX_DIGITS else None
            if number is None:
                raise ExpressionError(f"{token.text[:40]!r}: at most {limits.MAX_DIGITS} digits")
            value = float(token.text)
            return Literal(int(value) if value.is_integer() and "." not in token.text else value)
        if token.kind == "string":
            return Literal(_unquote(token.text))
        if token.kind == "keyword" and token.text in ("true", "false", "null"):
            return Literal({"true": True, "false": False, "null": None}[token.text])
        if token.kind == "name":
            if self._accept("("):
                return Call(token.text, self._items(")"))
            return Name(token.text)
        if token.kind == "op" and token.text == "(":
            node = self._or()
            self._expect(")")
            return node
        if token.kind == "op" and token.text == "[":
            return ListOf(self._items("]"))
        self._at -= 1
        raise self._unexpected()

    def _items(self, closing: str) -> tuple[Node, ...]:
        items: list[Node] = []
        if self._accept(closing):
            return ()
        while True:
            items.append(self._or())
            if self._accept(closing):
                return tuple(items)
            self._expect(",")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def parse(source: str) -> Node:
    if not source.strip():
        raise ExpressionError("empty expression")
    if len(source) > limits.MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"longer than {limits.MAX_EXPRESSION_LENGTH} characters")
    node = _Parser(source).parse()
    for call, depth in _walk(node):
        if depth > limits.MAX_EXPRESSION_DEPTH:  # long chains: a + b + c + ... nest as deep
            raise ExpressionError(f"nested more than {limits.MAX_EXPRESSION_DEPTH} levels deep")
        if not isinstance(call, Call):
            continue
        if call.function not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"unknown function {call.function!r} (known: {known})")
        if len(call.args) != 1:
            raise ExpressionError(f"{call.function}() takes 1 argument, got {len(call.args)}")
    return node


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, ListOf):
        return node.items
    if isinstance(node, Call):
        return node.args
    return ()


def _walk(node: Node) -> list[tuple[Node, int]]:
    """Every node of the tree with its depth (the root's is 1), iteratively: a tree too deep to
    evaluate is refused here, not by a RecursionError."""
    found: list[tuple[Node, int]] = []
    todo = [(node, 1)]
    while todo:
        current, depth = todo.pop()
        found.append((current, depth))
        todo.extend((child, depth + 1) for child in reversed(_children(current)))
    return found


def names(source: str) -> set[str]:
    """The names an expression reads (``contact.name``, ``budget``)."""
    return {node.path for node, _ in _walk(parse(source)) if isinstance(node, Name)}


# --- evaluation -------------------------------------------------------------------------------


def as_number(value: Any) -> float | int | None:
    """A number from a number or a numeric text ("1.500,50" and "1500.50" alike), else None (as
    for a number beyond the bounds: more than ``MAX_DIGITS`` digits, or not finite)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number: float | int = value
    else:
        text = re.sub(r"[^\d,.\-]", "", _text(value)[: limits.MAX_TEXT])
        if "," in text:  # a decimal comma: dots before it group thousands
            text = text.replace(".", "").replace(",", ".")
        try:
            number = float(text)
        except ValueError:
            return None
    try:
        limits.check_number(number)
    except limits.ValueTooLarge:
        return None
    return int(number) if isinstance(number, float) and number.is_integer() else number


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "lower": lambda v: _text(v).lower(),
    "upper": lambda v: _text(v).upper(),
    "len": lambda v: len(v) if isinstance(v, list | str | dict) else len(_text(v)),
    "number": as_number,
    "text": _text,
    "empty": lambda v: v is None or v == "" or v == [] or v == {},
}


def _shown(value: Any) -> str:
    """A value in an error message: its start only (it may be a customer's long reply)."""
    text = repr(value) if not isinstance(value, list | dict) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op in ("in", "contains"):
        container, item = (right, left) if op == "in" else (left, right)
        if isinstance(container, str):
            return _text(item).lower() in container.lower()
        try:
            return isinstance(container, list | dict) and item in container
        except TypeError:  # a list is never a mapping's key
            return False
    try:
        return bool(ORDERINGS[op](left, right))
    except TypeError:  # different kinds (a number and a text, or null) never compare
        return False


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if op == "+" and (isinstance(left, str) or isinstance(right, str)):
        return _text(left) + _text(right)
    a, b = as_number(left), as_number(right)
    if a is None or b is None:
        raise ExpressionError(f"{op} needs numbers, got {_shown(left)} and {_shown(right)}")
    if op in ("/", "%") and b == 0:
        raise ExpressionError("division by zero")
    result = ARITHMETIC[op](a, b)
    return int(result) if isinstance(result, float) and result.is_integer() else result


def lookup(scope: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path; a number indexes a list (``json.items.0.id``)."""
    value: Any = scope
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdecimal() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def evaluate(node: Node, scope: Mapping[str, Any]) -> Any:
    """The value of a parsed expression, or ``ExpressionError``: any other error the evaluation
    meets (an operator's ``TypeError``, an ``OverflowError``...) is reported as one."""
    try:
        return _evaluate(node, scope)
    except ExpressionError:
        raise
    except limits.ValueTooLarge as exc:
        raise ExpressionError(str(exc)) from None
    except (ArithmeticError, ValueError, TypeError, RecursionError) as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


def _evaluate(node: Node, scope: Mapping[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Name):
        return lookup(scope, node.path)
    value = _operate(node, scope)
    limits.check_value(value)  # every value made is within bounds: s + s cannot run away
    return value


def _operate(node: ListOf | Call | Unary | Binary, scope: Mapping[str, Any]) -> Any:
    if isinstance(node, ListOf):
        return [_evaluate(item, scope) for item in node.items]
    if isinstance(node, Call):
        return FUNCTIONS[node.function](*(_evaluate(a, scope) for a in node.args))
    if isinstance(node, Unary):
        operand = _evaluate(node.operand, scope)
        if node.op == "not":
            return not operand
        number = as_number(operand)
        if number is None:
            raise ExpressionError(f"- needs a number, got {_shown(operand)}")
        return -number
    if node.op == "and":
        return _evaluate(node.left, scope) and _evaluate(node.right, scope)
    if node.op == "or":
        return _evaluate(node.left, scope) or _evaluate(node.right, scope)
    left, right = _evaluate(node.left, scope), _evaluate(node.right, scope)
    if node.op in COMPARISONS:
        return _compare(node.op, left, right)
    return _arithmetic(node.op, left, right)


def evaluate_text(source: str, scope: Mapping[str, Any]) -> Any:
    return evaluate(parse(source), scope)
