"""GitHub Actions expressions (``${{ … }}`` and ``if:``) for the sandbox's Actions emulator.

What is supported, following GitHub's "Evaluate expressions in workflows and actions":

* literals: ``null``, ``true``, ``false``, numbers, ``'strings'`` (``''`` escapes a quote);
* contexts by name (``github``, ``env``, ``inputs``, ``secrets``, ``steps``, ``vars``,
  ``runner``, ``job``, ``needs``), property access ``a.b`` and ``a['b']``, and the object
  filter ``a.*.b`` (``contains(github.event.issue.labels.*.name, 'x')``);
* operators ``!``, ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``&&``, ``||`` and ``( )``,
  with GitHub's loose equality (strings compare without case, other types as numbers) and
  ``&&`` / ``||`` returning an operand, so ``inputs.sha || github.sha`` picks the first;
* functions ``contains``, ``startsWith``, ``endsWith``, ``format``, ``join``, ``toJSON``,
  ``fromJSON`` and the status checks ``success()``, ``always()``, ``failure()``,
  ``cancelled()``.

Anything else (``hashFiles``, ``matrix``, ``strategy``) is an :class:`ExpressionError`, so a
workflow the emulator cannot read fails loudly instead of running wrongly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<num>0x[0-9a-fA-F]+|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<str>'(?:[^']|'')*')
    |(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\].,*])
    |(?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.VERBOSE,
)
_EMBEDDED = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


class ExpressionError(ValueError):
    """An expression the emulator cannot evaluate; the message names it."""


class _Filtered(list[Any]):
    """The result of an object filter (``.*``): property access maps over it."""


Status = Callable[[], str]  # "success", "failure" or "cancelled": the job so far


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ExpressionError(f"cannot read expression {text!r} at {text[pos:]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, contexts: Mapping[str, Any], status: Status) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0
        self.contexts = contexts
        self.status = status

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            want = f"{value!r}" if value else "more"
            raise ExpressionError(f"expression {self.text!r}: expected {want}")
        self.pos += 1
        return token

    def at(self, *values: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "op" and token[1] in values

    def parse(self) -> Any:
        value = self.or_()
        if self.peek() is not None:
            raise ExpressionError(f"expression {self.text!r}: unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return value

    def or_(self) -> Any:
        value = self.and_()
        while self.at("||"):
            self.take()
            right = self.and_()
            value = value if truthy(value) else right
        return value

    def and_(self) -> Any:
        value = self.compare()
        while self.at("&&"):
            self.take()
            right = self.compare()
            value = right if truthy(value) else value
        return value

    def compare(self) -> Any:
        value = self.unary()
        while self.at("==", "!=", "<", "<=", ">", ">="):
            op = self.take()[1]
            right = self.unary()
            value = _compare(op, value, right)
        return value

    def unary(self) -> Any:
        if self.at("!"):
            self.take()
            return not truthy(self.unary())
        return self.postfix()

    def postfix(self) -> Any:
        value = self.primary()
        while self.at(".", "["):
            if self.take()[1] == ".":
                if self.at("*"):
                    self.take()
                    value = _filter(value)
                    continue
                kind, name = self.take()
                if kind != "name":
                    raise ExpressionError(f"expression {self.text!r}: a property name after '.'")
                value = _property(value, name)
            else:
                if self.at("*"):
                    self.take()
                    self.take("]")
                    value = _filter(value)
                    continue
                key = self.or_()
                self.take("]")
                value = _property(value, key)
        return value

    def primary(self) -> Any:
        kind, text = self.take()
        if kind == "num":
            number = float(int(text, 16)) if text.startswith("0x") else float(text)
            return int(number) if number.is_integer() else number
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "op" and text == "(":
            value = self.or_()
            self.take(")")
            return value
        if kind != "name":
            raise ExpressionError(f"expression {self.text!r}: unexpected {text!r}")
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if self.at("("):
            self.take()
            args: list[Any] = []
            while not self.at(")"):
                args.append(self.or_())
                if not self.at(")"):
                    self.take(",")
            self.take(")")
            return self.call(text, args)
        if text not in self.contexts:
            raise ExpressionError(f"expression {self.text!r}: unknown context {text!r}")
        return self.contexts[text]

    def call(self, name: str, args: list[Any]) -> Any:
        lower = name.lower()
        if lower in ("success", "always", "failure", "cancelled") and not args:
            status = self.status()
            return {
                "success": status == "success",
                "always": True,
                "failure": status == "failure",
                "cancelled": status == "cancelled",
            }[lower]
        if lower == "contains" and len(args) == 2:
            search, item = args
            if isinstance(search, list):
                return any(_equal(x, item) for x in search)
            return to_text(item).lower() in to_text(search).lower()
        if lower in ("startswith", "endswith") and len(args) == 2:
            whole, part = to_text(args[0]).lower(), to_text(args[1]).lower()
            return whole.startswith(part) if lower == "startswith" else whole.endswith(part)
        if lower == "format" and args:
            return _format(to_text(args[0]), [to_text(a) for a in args[1:]])
        if lower == "join" and len(args) in (1, 2):
            sep = to_text(args[1]) if len(args) == 2 else ","
            items = args[0] if isinstance(args[0], list) else [args[0]]
            return sep.join(to_text(x) for x in items)
        if lower == "tojson" and len(args) == 1:
            return json.dumps(args[0], indent=2)
        if lower == "fromjson" and len(args) == 1:
            try:
                return json.loads(to_text(args[0]))
            except ValueError:
                raise ExpressionError(f"fromJSON: not JSON: {to_text(args[0])[:40]!r}") from None
        raise ExpressionError(f"expression {self.text!r}: the emulator has no {name}()")


def _filter(value: Any) -> _Filtered:
    if isinstance(value, dict):
        return _Filtered(value.values())
    if isinstance(value, list):
        return _Filtered(value)
    return _Filtered()


def _property(value: Any, key: Any) -> Any:
    if isinstance(value, _Filtered):
        return _Filtered(_property(item, key) for item in value)
    if isinstance(value, dict):
        if isinstance(key, str):
            for k, v in value.items():
                if k.lower() == key.lower():
                    return v
        return None
    if isinstance(value, list) and isinstance(key, (int, float)) and not isinstance(key, bool):
        index = int(key)
        return value[index] if 0 <= index < len(value) else None
    return None


def truthy(value: Any) -> bool:
    """GitHub's falsy values: false, 0, -0, "", null (and NaN); objects and arrays are true."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return not (value == 0 or math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0.0
        try:
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        except ValueError:
            return math.nan
    return math.nan


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return a is b
    if type(a) is type(b):
        return bool(a == b)
    return _number(a) == _number(b)


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if isinstance(a, str) and isinstance(b, str):
        x: Any = a.lower()
        y: Any = b.lower()
    else:
        x, y = _number(a), _number(b)
    return bool({"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op])


def _format(template: str, args: list[str]) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        index = int(m.group(1))
        if index >= len(args):
            raise ExpressionError(f"format: no argument {{{index}}} in {template!r}")
        return args[index]

    return re.sub(r"\{\{|\}\}|\{(\d+)\}", one, template)


def to_text(value: Any) -> str:
    """A value as ``${{ }}`` puts it into text: null as empty, booleans lower case."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2)
    return str(value)


def evaluate(text: str, contexts: Mapping[str, Any], status: Status = lambda: "success") -> Any:
    """The value of one expression (without ``${{ }}``)."""
    return _Parser(text, contexts, status).parse()


def substitute(text: str, contexts: Mapping[str, Any]) -> str:
    """``text`` with every ``${{ expr }}`` replaced by its value as text."""
    return _EMBEDDED.sub(lambda m: to_text(evaluate(m.group(1), contexts)), text)


def condition(text: Any, contexts: Mapping[str, Any], status: Status) -> bool:
    """A job's or step's ``if:``: with or without ``${{ }}``; without a status function in it,
    ``success() &&`` is implied, as on GitHub."""
    if text is None:
        return status() == "success"
    if isinstance(text, bool):
        return text and status() == "success"
    source = str(text).strip()
    whole = _EMBEDDED.fullmatch(source)
    if whole:
        source = whole.group(1).strip()
    elif "${{" in source:
        source = substitute(source, contexts)
        return truthy(source) and status() == "success"
    if not re.search(r"\b(success|always|failure|cancelled)\s*\(", source, re.IGNORECASE):
        return status() == "success" and truthy(evaluate(source, contexts, status))
    return truthy(evaluate(source, contexts, status))
