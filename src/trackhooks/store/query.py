"""The ``where`` language of ``store.runs(where=...)``, ``trackhooks runs --where`` and the UI's filter box.

An expression is parsed into a small tree and compiled to one parameterised SQL condition over the
``runs`` table (aliased ``r``). User text only ever reaches the database as a bound parameter: keys,
strings, numbers and patterns are ``?`` arguments, and the SQL text is assembled from fixed pieces
of this module. Nothing is evaluated in Python row by row: params, tags and metric summaries are
read by correlated subqueries on their primary keys, so the database narrows 10 000 runs to the
matching ones without loading the others.

Why a hand-written recursive-descent parser: the grammar is a dozen rules, a parsing library would
be a dependency of the core for those (the core stays pure Python and light to import), and writing
the parser by hand gives exact positions and "expected ..." messages for every error, which is most
of what users see of a query language.

Grammar (keywords are case-insensitive)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expr ")" | condition
    condition  := operand cmp_op operand               # one side a field, the other a literal
                | field ["not"] "in" "(" literal ("," literal)* ")"
                | field ["not"] ("like" | "ilike") string
                | field "is" ["not"] "null"
    cmp_op     := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    field      := name | experiment | status | id | parent_id | start_time | end_time | duration
                | (params | tags | metrics | system) "." key
                | ("min" | "max" | "count") "(" "metrics" "." key ")"
    key        := segment ("." segment)*    # segment: [A-Za-z0-9_/-]+ or `back quoted` (`` doubles a `)
    literal    := 'single quoted' ('' doubles a quote) | number | true | false

Dialect differences (SQLite, PostgreSQL) live in the one table ``DIALECTS`` below.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import time
from dataclasses import dataclass, field as _dc_field
from typing import Any, Callable, Iterable, Sequence

from ..errors import QueryError

__all__ = ["DIALECTS", "Field", "compile_where", "parse", "parse_order", "runs_select", "STATUSES"]

STATUSES = ("running", "finished", "failed", "killed")

# ---------------------------------------------------------------------------------------------
# dialects: every SQL difference between the engines, in one place. Templates take SQL fragments
# ({x}: a text expression); none of them ever receives user text, which always travels as "?".

DIALECTS: dict[str, dict[str, str]] = {
    "sqlite": {
        # text that reads as a decimal number (digits, sign, point, exponent): "1e-3", "-2", "0.5"
        "is_number": "({x} GLOB '*[0-9]*' AND NOT {x} GLOB '*[^0-9eE.+-]*')",
        "to_number": "CAST({x} AS REAL)",
        # the text of a JSON string literal ("..." as json.dumps wrote it)
        "json_string": "json_extract({x}, '$')",
        # JSON text of a value inside a JSON document, or NULL (a malformed document reads as NULL)
        "json_get": "CASE WHEN json_valid({doc}) THEN COALESCE({doc} -> {path}, {doc} -> {path2}) END",
        "text": "{x}",  # byte-wise (binary) comparison is SQLite's default
        "like": "{x} GLOB {pattern}",  # LIKE is case-insensitive in SQLite: case-sensitive like -> GLOB
        "ilike": "{x} LIKE {pattern} ESCAPE '\\'",
        "json_list": "(SELECT value FROM json_each({list}))",  # the str items of a JSON array parameter
        "false": "0",
        "tiebreak": "r.rowid",
        # runs_frame: aggregates over one run's params or tags. Every aggregate of one subquery must
        # see the rows in the same order ({order}, where the engine needs telling): the keys of one
        # array pair up with the values of the other. On both engines the aggregates of one
        # aggregation step over each input row in turn, so they agree without an ORDER BY (which
        # costs PostgreSQL 15 a sort per run: 60 ms of a 10 000-run frame)
        "json_quote": "json_quote({x})",  # a text as a JSON string literal
        "json_agg": "json_group_array({x})",  # texts -> the text of a JSON array of strings
        "group_concat": "group_concat({x}, ',')",
        # the items of a JSON array parameter with their positions: rows (pos, id)
        "json_list_pos": "(SELECT key AS pos, value AS id FROM json_each({list}))",
    },
    "postgres": {
        # no "?" in the pattern: an engine turns every ? of the SQL text into a placeholder
        "is_number": "({x} ~ '^[-+]{{0,1}}([0-9]+[.]{{0,1}}[0-9]*|[.][0-9]+)([eE][-+]{{0,1}}[0-9]+){{0,1}}$')",
        "to_number": "CAST({x} AS DOUBLE PRECISION)",
        "json_string": "(CAST({x} AS json) #>> '{{}}')",
        "json_get": "COALESCE(CAST(CAST({doc} AS jsonb) #> CAST({path} AS text[]) AS text), "
                    "CAST(CAST({doc} AS jsonb) #> CAST({path2} AS text[]) AS text))",
        "text": "({x} COLLATE \"C\")",  # the same byte-wise order as SQLite, whatever the server's locale
        "like": "{x} LIKE {pattern} ESCAPE '\\'",
        "ilike": "{x} ILIKE {pattern} ESCAPE '\\'",
        "json_list": "(SELECT json_array_elements_text(CAST({list} AS json)))",
        "false": "0",  # archived is an integer column on every engine
        "tiebreak": "r.id",
        "json_quote": "CAST(to_json(CAST({x} AS text)) AS text)",
        "json_agg": "CAST(json_agg({x}) AS text)",
        "group_concat": "string_agg({x}, ',')",
        "json_list_pos": "(SELECT ord - 1 AS pos, value AS id FROM json_array_elements_text(CAST({list} AS json)) "
                         "WITH ORDINALITY AS e(value, ord))",
    },
}


class _Frag:
    """A piece of SQL and the arguments of its ``?`` placeholders, in order."""

    __slots__ = ("sql", "args")

    def __init__(self, sql: str, args: Sequence[Any] = ()):
        self.sql = sql
        self.args = list(args)


_SLOT = re.compile(r"\{(\w+)\}|\{\{|\}\}")


def _fill(template: str, **parts: _Frag | str) -> _Frag:
    """Substitute fragments into a template; a fragment used twice contributes its args twice,
    in the order its placeholders appear, so positional ``?`` stay aligned."""
    sql: list[str] = []
    args: list[Any] = []
    pos = 0
    for m in _SLOT.finditer(template):
        sql.append(template[pos:m.start()])
        pos = m.end()
        if m.group(0) == "{{":
            sql.append("{")
            continue
        if m.group(0) == "}}":
            sql.append("}")
            continue
        part = parts[m.group(1)]
        if isinstance(part, str):
            sql.append(part)
        else:
            sql.append(part.sql)
            args.extend(part.args)
    sql.append(template[pos:])
    return _Frag("".join(sql), args)


def _param(value: Any) -> _Frag:
    return _Frag("?", [value])


# ---------------------------------------------------------------------------------------------
# tokens


@dataclass
class _Tok:
    kind: str  # "ident", "string", "number", "op", "(", ")", ",", "end"
    value: Any
    pos: int
    text: str = ""


_KEYWORDS = {"and", "or", "not", "in", "like", "ilike", "is", "null", "true", "false"}
_OPS = ("<=", ">=", "!=", "<>", "==", "=", "<", ">")
_NUMBER = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_DIGITS = "0123456789"


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "(),":
            toks.append(_Tok(c, c, i, c))
            i += 1
            continue
        if c == "'":
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise QueryError("unterminated string", text, i, "a closing ' (write '' for a quote inside)")
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        buf.append("'")
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            toks.append(_Tok("string", "".join(buf), i, text[i:j + 1]))
            i = j + 1
            continue
        if c == "-" and not (i + 1 < n and (text[i + 1] in _DIGITS or text[i + 1] == ".")):
            toks.append(_Tok("minus", "-", i, "-"))  # only order_by uses it ("-field": descending)
            i += 1
            continue
        if c == '"':
            raise QueryError("strings are written in single quotes", text, i, "'text' instead of \"text\"")
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op is not None:
            toks.append(_Tok("op", "=" if op == "==" else ("!=" if op == "<>" else op), i, op))
            i += len(op)
            continue
        m = _NUMBER.match(text, i)
        if m and (c in _DIGITS or c == "." or (c in "-+" and (not toks or toks[-1].kind in ("op", "(", ",")))):
            end = m.end()
            if end < n and (text[end].isalpha() or text[end] in "_."):
                raise QueryError("malformed number", text, i, "a number such as 3, -0.5 or 1e-3")
            num = m.group(0)
            value: Any = float(num) if any(ch in num for ch in ".eE") else int(num)
            toks.append(_Tok("number", value, i, num))
            i = end
            continue
        if c.isalpha() or c in "_`":
            start, key_parts, j = i, [], i
            seg: list[str] = []
            while j < n:
                ch = text[j]
                if ch == "`":
                    k, quoted = j + 1, []
                    while True:
                        if k >= n:
                            raise QueryError("unterminated back-quoted key", text, j, "a closing `")
                        if text[k] == "`":
                            if k + 1 < n and text[k + 1] == "`":
                                quoted.append("`")
                                k += 2
                                continue
                            break
                        quoted.append(text[k])
                        k += 1
                    seg.append("".join(quoted))
                    j = k + 1
                elif ch.isalnum() or ch in "_./-":  # letters and digits of any script
                    seg.append(ch)
                    j += 1
                else:
                    break
            key_parts.append("".join(seg))
            raw = text[start:j]
            word = "".join(key_parts)
            kind = "ident"
            if "`" not in raw and word.lower() in _KEYWORDS:
                kind, word = "kw", word.lower()
            toks.append(_Tok(kind, word if kind == "kw" else raw, start, raw))
            i = j
            continue
        raise QueryError(f"unexpected character {c!r}", text, i, "a field, a value, an operator or a parenthesis")
    toks.append(_Tok("end", None, n, ""))
    return toks


def _split_key(raw: str) -> tuple[str, str]:
    """``params.`a b`.c`` -> ("params", "a b.c"): the namespace, then the key without back quotes."""
    head, dot, rest = raw.partition(".")
    out, i, n = [], 0, len(rest)
    while i < n:
        if rest[i] == "`":
            j = i + 1
            while j < n:
                if rest[j] == "`":
                    if j + 1 < n and rest[j + 1] == "`":
                        out.append("`")
                        j += 2
                        continue
                    break
                out.append(rest[j])
                j += 1
            i = j + 1
        else:
            out.append(rest[i])
            i += 1
    return head, ("".join(out) if dot else "")


# ---------------------------------------------------------------------------------------------
# tree


@dataclass(frozen=True)
class Field:
    """A field of a run: ``ns`` is "run" (a column: name, status, ...), "params", "tags", "metrics"
    or "system"; ``agg`` is None, "min", "max" or "count" (metrics only)."""

    ns: str
    key: str
    agg: str | None = None
    pos: int = _dc_field(default=0, compare=False)

    def __str__(self) -> str:
        inner = self.key if self.ns == "run" else f"{self.ns}.{_quote_key(self.key)}"
        return f"{self.agg}({inner})" if self.agg else inner


def _quote_key(key: str) -> str:
    if key and all(ch.isalnum() or ch in "_./-" for ch in key):
        return key
    return "`" + key.replace("`", "``") + "`"


@dataclass
class _Cmp:
    field: Field
    op: str  # = != < <= > >= in notin like notlike ilike notilike isnull notnull
    values: list[Any]
    pos: int


@dataclass
class _Bool:
    op: str  # and / or / not
    items: list[Any]


RUN_FIELDS = {
    # name: kind ("text", "time", "number", "status")
    "id": "text", "name": "text", "experiment": "text", "status": "status", "parent_id": "text",
    "start_time": "time", "end_time": "time", "duration": "number",
}
_NAMESPACES = ("params", "tags", "metrics", "system")
_EXPECTED_FIELD = ("a field: " + ", ".join(RUN_FIELDS) +
                   ", params.<key>, tags.<key>, metrics.<key>, min/max/count(metrics.<key>) or system.<key>")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, message: str, expected: str, tok: _Tok | None = None) -> QueryError:
        tok = tok or self.peek()
        found = "the end of the expression" if tok.kind == "end" else repr(tok.text)
        return QueryError(f"{message} (found {found})", self.text, tok.pos, expected)

    def is_kw(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "kw" and tok.value in words

    def parse(self) -> Any:
        if self.peek().kind == "end":
            raise self.error("empty expression", "a condition such as metrics.loss < 0.3")
        node = self.expr()
        if self.peek().kind != "end":
            raise self.error("unexpected text after a complete condition", "and, or, or the end of the expression")
        return node

    def expr(self) -> Any:
        items = [self.and_expr()]
        while self.is_kw("or"):
            self.next()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else _Bool("or", items)

    def and_expr(self) -> Any:
        items = [self.not_expr()]
        while self.is_kw("and"):
            self.next()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else _Bool("and", items)

    def not_expr(self) -> Any:
        if self.is_kw("not"):
            self.next()
            return _Bool("not", [self.not_expr()])
        if self.peek().kind == "(":
            self.next()
            node = self.expr()
            if self.peek().kind != ")":
                raise self.error("unbalanced parenthesis", "')' or and/or")
            self.next()
            return node
        return self.condition()

    def field_or_none(self) -> Field | None:
        tok = self.peek()
        if tok.kind != "ident":
            return None
        self.next()
        word = tok.value
        if word.lower() in ("min", "max", "count") and self.peek().kind == "(":
            self.next()
            inner = self.peek()
            arg = self.field_or_none()
            if arg is None:
                raise self.error(f"{word.lower()}() takes a metric", "metrics.<key>", inner)
            if arg.ns != "metrics" or arg.agg:
                raise QueryError(f"{word.lower()}() takes a metric, not {arg}", self.text, inner.pos,
                                 "metrics.<key> (min, max and count are kept for metrics only)")
            if self.peek().kind != ")":
                raise self.error(f"{word.lower()}( is not closed", "')'")
            self.next()
            return Field("metrics", arg.key, word.lower(), tok.pos)
        if word in RUN_FIELDS:
            return Field("run", word, None, tok.pos)
        ns, key = _split_key(word)
        if ns in _NAMESPACES:
            if not key:
                raise QueryError(f"{ns} needs a key", self.text, tok.pos, f"{ns}.<key>, e.g. {ns}.lr")
            return Field(ns, key, None, tok.pos)
        hint = ""
        if "." not in word:
            hint = f" (a param is written params.{word}, a metric metrics.{word})"
        raise QueryError(f"unknown field {word!r}{hint}", self.text, tok.pos, _EXPECTED_FIELD)

    def literal(self) -> Any:
        tok = self.peek()
        if tok.kind in ("string", "number"):
            self.next()
            return tok.value
        if tok.kind == "kw" and tok.value in ("true", "false"):
            self.next()
            return tok.value == "true"
        if tok.kind == "kw" and tok.value == "null":
            raise self.error("null is tested with 'is null' / 'is not null'",
                             "'is null' or 'is not null' instead of a comparison with null")
        raise self.error("missing a value", "a string in single quotes, a number, true or false")

    def condition(self) -> _Cmp:
        start = self.peek()
        fld = self.field_or_none()
        if fld is None:
            if start.kind in ("string", "number") or (start.kind == "kw" and start.value in ("true", "false")):
                value = self.literal()
                op_tok = self.peek()
                if op_tok.kind != "op":
                    raise self.error("a value must be compared with a field", "=, !=, <, <=, > or >=")
                self.next()
                fld = self.field_or_none()
                if fld is None:
                    raise self.error("expected a field on the other side", _EXPECTED_FIELD)
                flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op_tok.value, op_tok.value)
                return _Cmp(fld, flipped, [value], op_tok.pos)
            raise self.error("expected a condition", _EXPECTED_FIELD + ", 'not' or '('")
        tok = self.peek()
        if tok.kind == "op":
            self.next()
            if self.peek().kind == "ident":
                raise self.error("fields can only be compared with values", "a string, a number, true or false")
            return _Cmp(fld, tok.value, [self.literal()], tok.pos)
        negate = False
        if self.is_kw("not"):
            self.next()
            negate = True
            if not self.is_kw("in", "like", "ilike"):
                raise self.error("expected in, like or ilike after 'not'", "in (...), like '...' or ilike '...'")
        if self.is_kw("in"):
            self.next()
            if self.peek().kind != "(":
                raise self.error("'in' takes a parenthesised list", "'(' then values separated by commas")
            self.next()
            values = [self.literal()]
            while self.peek().kind == ",":
                self.next()
                values.append(self.literal())
            if self.peek().kind != ")":
                raise self.error("the list of 'in' is not closed", "',' or ')'")
            self.next()
            return _Cmp(fld, "notin" if negate else "in", values, tok.pos)
        if self.is_kw("like", "ilike"):
            word = self.next().value
            pat = self.peek()
            if pat.kind != "string":
                raise self.error(f"'{word}' takes a pattern", "a string in single quotes with % and _ wildcards")
            self.next()
            return _Cmp(fld, ("not" if negate else "") + word, [pat.value], tok.pos)
        if self.is_kw("is"):
            self.next()
            neg = False
            if self.is_kw("not"):
                self.next()
                neg = True
            if not self.is_kw("null"):
                raise self.error("'is' is followed by null", "null or not null")
            self.next()
            return _Cmp(fld, "notnull" if neg else "isnull", [], tok.pos)
        raise self.error(f"expected an operator after {fld}",
                         "=, !=, <, <=, >, >=, in, not in, like, ilike, is null or is not null")


def parse(text: str) -> Any:
    """Parse a where expression into its tree; raises QueryError with the position on bad input."""
    if not isinstance(text, str):
        raise QueryError(f"a where expression is a string, not {type(text).__name__}", None, None,
                         "a string such as \"metrics.loss < 0.3\"")
    return _Parser(text).parse()


def parse_order(order_by: str | Sequence[str] | None) -> list[tuple[Field, bool]]:
    """``"-metrics.acc, name"`` or ``["-metrics.acc", "name"]`` -> [(field, descending), ...]."""
    if order_by is None:
        return []
    items = [order_by] if isinstance(order_by, str) else list(order_by)
    out: list[tuple[Field, bool]] = []
    for item in items:
        if not isinstance(item, str):
            raise QueryError(f"order_by takes field names, not {type(item).__name__}", None, None,
                             "a field, or -field for descending")
        p = _Parser(item)
        while True:
            desc = False
            tok = p.peek()
            if tok.kind == "op" or (tok.kind == "number"):
                raise p.error("expected a field to sort by", "a field, or -field for descending")
            if tok.kind == "minus":
                p.next()
                desc = True
            fld = p.field_or_none()
            if fld is None:
                raise p.error("expected a field to sort by", _EXPECTED_FIELD + " (prefix - for descending)")
            if p.peek().kind == "ident" and p.peek().value.lower() in ("asc", "desc"):
                desc = p.next().value.lower() == "desc"
            out.append((fld, desc))
            if p.peek().kind == ",":
                p.next()
                continue
            if p.peek().kind != "end":
                raise p.error("unexpected text in order_by", "',' and another field, or the end")
            break
    return out


# ---------------------------------------------------------------------------------------------
# compiler


class _Compiler:
    def __init__(self, dialect: str, killed_ids: Callable[[], Iterable[str]] | None, now: float | None,
                 text: str | None):
        if dialect not in DIALECTS:
            raise ValueError(f"unknown SQL dialect {dialect!r} (known: {', '.join(DIALECTS)})")
        self.d = DIALECTS[dialect]
        self.killed_ids = killed_ids
        self._killed: list[str] | None = None
        self.now = time.time() if now is None else now
        self.text = text

    def err(self, message: str, fld: Field | _Cmp | None, expected: str) -> QueryError:
        pos = fld.pos if fld is not None else None
        return QueryError(message, self.text, pos, expected)

    # -- pieces of SQL for a field
    def status_sql(self) -> _Frag:
        if self._killed is None:
            self._killed = sorted(self.killed_ids()) if self.killed_ids is not None else []
        if not self._killed:
            return _Frag("r.status")
        cond = _fill("r.id IN " + self.d["json_list"], list=_param(json.dumps(self._killed)))
        return _fill("CASE WHEN r.status = 'running' AND {c} THEN 'killed' ELSE r.status END", c=cond)

    def decode_json(self, x: str) -> str:
        """Text of a stored JSON value: the string itself for a JSON string, else its JSON text."""
        return f"CASE WHEN substr({x}, 1, 1) = '\"' THEN {self.d['json_string'].format(x=x)} ELSE {x} END"

    def sub(self, fld: Field, expr_of: Callable[[str], str]) -> _Frag:
        """A correlated scalar subquery reading one key of this run (NULL when the run lacks it)."""
        if fld.ns == "params":
            return _Frag(f"(SELECT {expr_of('p.value')} FROM params p WHERE p.run_id = r.id AND p.key = ?)", [fld.key])
        if fld.ns == "tags":
            return _Frag(f"(SELECT {expr_of('t.value')} FROM tags t WHERE t.run_id = r.id AND t.key = ?)", [fld.key])
        col = {None: "last_value", "min": "min_value", "max": "max_value", "count": "n"}[fld.agg]
        return _Frag(f"(SELECT {expr_of('m.' + col)} FROM metric_keys m "
                     "WHERE m.run_id = r.id AND m.key = ? AND m.n > 0)", [fld.key])

    def system_json(self, fld: Field) -> _Frag:
        # "git.commit" is a top-level key of the system record, "packages.torch" a nested one: try both
        whole = '$."' + fld.key.replace('"', '\\"') + '"'
        nested = "$" + "".join('."' + part.replace('"', '\\"') + '"' for part in fld.key.split("."))
        if "text[]" in self.d["json_get"]:
            whole, nested = [fld.key], fld.key.split(".")  # PostgreSQL: a path is an array of keys
        return _fill(self.d["json_get"], doc="r.system", path=_param(whole), path2=_param(nested))

    def text_and_number(self, fld: Field) -> tuple[_Frag, _Frag]:
        """(text, number) SQL of a text-like field: number is NULL unless the text reads as one."""
        def num_of(t: str) -> str:
            return (f"CASE WHEN {self.d['is_number'].format(x=t)} THEN {self.d['to_number'].format(x=t)} END")

        if fld.ns in ("params", "system"):
            if fld.ns == "params":
                text = self.sub(fld, self.decode_json)
                number = self.sub(fld, lambda v: num_of(f"({self.decode_json(v)})"))
            else:
                raw = self.system_json(fld)
                text = _fill(self.decode_json("{x}"), x=raw)
                number = _fill(num_of("(" + self.decode_json("{x}") + ")"), x=raw)
            return text, number
        if fld.ns == "tags":
            return self.sub(fld, lambda v: v), self.sub(fld, num_of)
        if fld.key == "status":
            s = self.status_sql()
            return s, _fill(num_of("{s}"), s=s)
        col = "r." + fld.key
        return _Frag(col), _Frag(num_of(col))

    def number_sql(self, fld: Field) -> _Frag:
        if fld.ns == "metrics":
            return self.sub(fld, lambda v: v)
        if fld.key in ("start_time", "end_time"):
            return _Frag("r." + fld.key)
        if fld.key == "duration":
            end = _fill("COALESCE(r.end_time, CASE WHEN {s} = 'running' THEN ? ELSE r.heartbeat END)",
                        s=self.status_sql())
            end.args.append(self.now)
            return _fill("({end} - r.start_time)", end=end)
        raise AssertionError(fld)

    def kind(self, fld: Field) -> str:
        if fld.ns == "metrics":
            return "number"
        if fld.ns == "run":
            return RUN_FIELDS[fld.key]
        return "text"

    def presence(self, fld: Field) -> _Frag:
        if fld.ns == "params":
            return _Frag("EXISTS (SELECT 1 FROM params p WHERE p.run_id = r.id AND p.key = ?)", [fld.key])
        if fld.ns == "tags":
            return _Frag("EXISTS (SELECT 1 FROM tags t WHERE t.run_id = r.id AND t.key = ?)", [fld.key])
        if fld.ns == "metrics":
            return _Frag("EXISTS (SELECT 1 FROM metric_keys m WHERE m.run_id = r.id AND m.key = ? AND m.n > 0)",
                         [fld.key])
        if fld.ns == "system":
            return _fill("({j} IS NOT NULL)", j=self.system_json(fld))
        if self.kind(fld) == "text" or fld.key == "status":
            return _fill("({x} IS NOT NULL)", x=self.text_and_number(fld)[0])
        return _fill("({x} IS NOT NULL)", x=self.number_sql(fld))

    # -- conditions
    def compile(self, node: Any) -> _Frag:
        if isinstance(node, _Bool):
            parts = [self.compile(item) for item in node.items]
            if node.op == "not":
                return _fill("(NOT {a})", a=parts[0])
            joined = _Frag(f" {node.op.upper()} ".join(p.sql for p in parts), [a for p in parts for a in p.args])
            return _fill("({j})", j=joined)
        return self.condition(node)

    def condition(self, c: _Cmp) -> _Frag:
        fld, op = c.field, c.op
        if op in ("isnull", "notnull"):
            present = self.presence(fld)
            return present if op == "notnull" else _fill("(NOT {p})", p=present)
        if op in ("in", "notin"):
            eqs = [self.compare(c, "=", v) for v in c.values]
            joined = _Frag(" OR ".join(e.sql for e in eqs), [a for e in eqs for a in e.args])
            return _fill("(NOT ({j}))" if op == "notin" else "({j})", j=joined)
        if op.endswith("like"):
            return self.like(c)
        return self.compare(c, op, c.values[0])

    def like(self, c: _Cmp) -> _Frag:
        fld = c.field
        if self.kind(fld) not in ("text", "status"):
            raise self.err(f"{fld} is a number: like works on text", c,
                           "a text field: name, experiment, status, id, params/tags/system.<key>")
        pattern = c.values[0]
        negate = c.op.startswith("not")
        word = c.op[3:] if negate else c.op
        text, _ = self.text_and_number(fld)
        if word == "like" and self.d["like"].startswith("{x} GLOB"):
            pattern = _like_to_glob(pattern)
        cond = _fill(self.d[word], x=text, pattern=_param(pattern))
        return _fill("(NOT ({c}))" if negate else "({c})", c=cond)

    def compare(self, c: _Cmp, op: str, value: Any) -> _Frag:
        fld = c.field
        kind = self.kind(fld)
        sql_op = {"=": "=", "!=": "<>"}.get(op, op)
        if kind == "status" and isinstance(value, str) and op in ("=", "!=") and value not in STATUSES:
            raise self.err(f"no run has status {value!r}", c, "one of " + ", ".join(STATUSES))
        if kind in ("number", "time"):
            if isinstance(value, bool):
                raise self.err(f"{fld} is a number, not {str(value).lower()}", c, "a number")
            if isinstance(value, str):
                if kind == "time":
                    value = _parse_time(value, self, c)
                else:
                    raise self.err(f"{fld} is a number: compare it with a number, not {value!r}", c,
                                   "a number such as 0.3 or 1e-3")
            x = self.number_sql(fld)
            return _Frag(f"({x.sql} {sql_op} ?)", x.args + [value])
        text, number = self.text_and_number(fld)
        if isinstance(value, bool):
            if op not in ("=", "!="):
                raise self.err(f"true and false are only compared with = or !=, not {op}", c, "= or !=")
            value = "true" if value else "false"
        if isinstance(value, str):
            x = _fill(self.d["text"], x=text)
            return _Frag(f"({x.sql} {sql_op} ?)", x.args + [value])
        return _Frag(f"({number.sql} {sql_op} ?)", number.args + [value])

    # -- order
    def order(self, items: list[tuple[Field, bool]]) -> _Frag:
        terms: list[_Frag] = []
        for fld, desc in items:
            direction = " DESC" if desc else ""
            if self.kind(fld) in ("number", "time"):
                x = self.number_sql(fld)
                terms.append(_fill("({x} IS NULL), {x}" + direction, x=x))
            else:
                text, number = self.text_and_number(fld)
                t = _fill(self.d["text"], x=text)
                # runs without the field last (either direction), numbers (numerically) before text
                terms.append(_fill("({t} IS NULL), ({n} IS NULL), {n}" + direction + ", {tc}" + direction,
                                   t=text, n=number, tc=t))
        return _Frag(", ".join(t.sql for t in terms), [a for t in terms for a in t.args])


def _like_to_glob(pattern: str) -> str:
    """A LIKE pattern (% _ wildcards, backslash escapes them) as the equivalent GLOB pattern."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append("[" + nxt + "]" if nxt in "*?[" else nxt)
            i += 2
            continue
        if ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append("[" + ch + "]")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _parse_time(value: str, comp: _Compiler, c: _Cmp) -> float:
    """'2026-11-30' or '2026-11-30 14:00[:00][+01:00]' -> epoch seconds (no zone: local time)."""
    try:
        t = _dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise comp.err(f"{c.field} compares with a number of seconds since the epoch or a date, not {value!r}",
                       c, "a number or an ISO date such as '2026-11-30' or '2026-11-30 14:00'") from None
    return t.timestamp()


def compile_where(where: str | None, *, dialect: str = "sqlite",
                  killed_ids: Callable[[], Iterable[str]] | None = None, now: float | None = None) -> tuple[str, list]:
    """(SQL condition over ``runs r``, its arguments) for a where expression ("" when None)."""
    if where is None or (isinstance(where, str) and not where.strip()):
        return "", []
    comp = _Compiler(dialect, killed_ids, now, where)
    frag = comp.compile(parse(where))
    return frag.sql, frag.args


def runs_select(columns: str, *, dialect: str = "sqlite", experiment: str | None = None,
                status: str | None = None, where: str | None = None, order_by: str | Sequence[str] | None = None,
                limit: int | None = None, archived: bool | str = False,
                killed_ids: Callable[[], Iterable[str]] | None = None, now: float | None = None,
                tail: str | None = None) -> tuple[str, list]:
    """The whole ``SELECT columns FROM runs r ...`` of ``Store.runs`` and its arguments.

    ``columns`` comes from the engine (never from a user). ``archived``: False hides archived runs,
    True includes them, "only" returns only them. ``status`` is the effective status (a dead
    'running' run is 'killed'), as in ``where``.
    """
    comp = _Compiler(dialect, killed_ids, now, where)
    conds: list[_Frag] = []
    if archived is False:
        conds.append(_Frag(f"r.archived = {comp.d['false']}"))
    elif archived == "only":
        conds.append(_Frag(f"r.archived <> {comp.d['false']}"))
    elif archived is not True:
        raise QueryError(f"archived must be False, True or 'only', not {archived!r}", None, None,
                         "False (hide archived runs), True (include them) or 'only'")
    if experiment is not None:
        conds.append(_Frag("r.experiment = ?", [experiment]))
    if status is not None:
        if status not in STATUSES:
            raise QueryError(f"no run has status {status!r}", None, None, "one of " + ", ".join(STATUSES))
        conds.append(_fill("{s} = ?", s=comp.status_sql()))
        conds[-1].args.append(status)
    if where is not None and not (isinstance(where, str) and not where.strip()):
        conds.append(comp.compile(parse(where)))
    order = comp.order(parse_order(order_by))
    sql = [f"SELECT {columns} FROM runs r"]
    args: list[Any] = []
    if conds:
        sql.append("WHERE " + " AND ".join(c.sql for c in conds))
        for c in conds:
            args.extend(c.args)
    tail = tail or "r.start_time, " + comp.d["tiebreak"]  # oldest first, then insertion order
    sql.append("ORDER BY " + (order.sql + ", " if order.sql else "") + tail)
    args.extend(order.args)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise QueryError(f"limit must be a non-negative integer, not {limit!r}", None, None, "0, 1, 2, ...")
        sql.append("LIMIT ?")
        args.append(limit)
    return " ".join(sql), args
