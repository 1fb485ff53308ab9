"""A small, safe Markdown renderer for run notes (pure Python, no dependency).

``render(text)`` turns a note into an HTML fragment for the report and the UI. Supported:
paragraphs, ATX headings (``#`` .. ``######``), ``*em*``/``_em_``, ``**strong**``/``__strong__``
(nested, CommonMark's flanking rules), inline code, fenced code blocks (an unclosed fence runs to
the end of the note), bullet and numbered lists (nested by indentation), block quotes, rules,
links ``[text](url)``, ``<url>`` and bare ``http(s)://`` URLs, backslash escapes, hard line breaks
(two trailing spaces or a trailing backslash).

Safety is by construction, not by filtering HTML afterwards: every character of the note reaches
the output through ``html.escape``; the renderer itself only ever writes the tags ``p h1-h6 em
strong code pre ul ol li blockquote hr br a`` and one attribute, ``href`` (on ``a``, always with
``rel="noopener noreferrer nofollow"``). Raw HTML in a note is shown as text. A link is made only
for an absolute ``http``, ``https`` or ``mailto`` URL (checked after entity and backslash decoding,
so ``&#106;avascript:`` is not a way round it; a URL with whitespace or control characters is
refused, as browsers strip those inside schemes); any other link, relative ones included, is shown
as its source text. Images (``![alt](url)``) become links, never ``<img>``. Numbered lists do not
keep their start number (no ``start`` attribute).

Limits keep hostile notes cheap: block nesting deeper than ``MAX_DEPTH`` is rendered as
paragraphs, and a paragraph's emphasis delimiters after the first ``MAX_DELIMITERS`` are literal.
"""

from __future__ import annotations

import bisect
import html
import re
import string
import unicodedata

__all__ = ["render", "safe_url", "MAX_DEPTH", "MAX_DELIMITERS"]

MAX_DEPTH = 16
MAX_DELIMITERS = 1000
REL = "noopener noreferrer nofollow"

_PUNCT = frozenset(string.punctuation)
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_HR = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BULLET = re.compile(r"^( {0,3})([-*+])(?:([ \t]+)(.*))?$")
_ORDERED = re.compile(r"^( {0,3})(\d{1,9})([.)])(?:([ \t]+)(.*))?$")
_QUOTE = re.compile(r"^ {0,3}> ?(.*)$")
_PLAIN = re.compile(r"[^\\`\[!<*_\nhH]+")
_BARE = re.compile(r"https?://[^\s<>]+", re.IGNORECASE)
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\s<>]*)>")
_AUTOMAIL = re.compile(r"<([A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?)>")
_HTTP_HOST = re.compile(r"^https?://[^/?#\\]+", re.IGNORECASE)


def _esc(s: str) -> str:
    return html.escape(s, quote=True)


def safe_url(url: str) -> str | None:
    """``url`` if it is an absolute http, https or mailto URL a link may point to, else None."""
    if not url or len(url) > 4096:
        return None
    for c in url:
        o = ord(c)
        if o < 33 or 127 <= o < 160 or c.isspace() or unicodedata.category(c) in ("Cf", "Zl", "Zp"):
            return None
    low = url.lower()
    if low.startswith(("http://", "https://")):
        return url if _HTTP_HOST.match(url) else None
    if low.startswith("mailto:") and len(url) > 7:
        return url
    return None


def _link(url: str, label_html: str) -> str:
    return f'<a href="{_esc(url)}" rel="{REL}">{label_html}</a>'


def _unescape_backslashes(s: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", s)


# ---- inline ------------------------------------------------------------------------------------


class _Delim:
    __slots__ = ("char", "count", "can_open", "can_close")

    def __init__(self, char: str, count: int, can_open: bool, can_close: bool) -> None:
        self.char, self.count, self.can_open, self.can_close = char, count, can_open, can_close


def _is_punct(c: str) -> bool:
    return c in _PUNCT or unicodedata.category(c)[0] in "PS"


def _flanking(s: str, i: int, j: int) -> tuple[bool, bool]:
    """(can_open, can_close) of the delimiter run s[i:j] (CommonMark's rules)."""
    before = s[i - 1] if i > 0 else " "
    after = s[j] if j < len(s) else " "
    left = not after.isspace() and (not _is_punct(after) or before.isspace() or _is_punct(before))
    right = not before.isspace() and (not _is_punct(before) or after.isspace() or _is_punct(after))
    if s[i] == "*":
        return left, right
    # an underscore inside a word (snake_case) neither opens nor closes
    return left and (not right or _is_punct(before)), right and (not left or _is_punct(after))


def _lit(node: "str | _Delim") -> str:
    return node if isinstance(node, str) else node.char * node.count


def _emphasis(nodes: list) -> str:
    """Match delimiter runs into <em>/<strong> (innermost first, so the result is always nested)."""
    j = 0
    while j < len(nodes):
        c = nodes[j]
        if not (isinstance(c, _Delim) and c.can_close and c.count):
            j += 1
            continue
        k = j - 1
        while k >= 0:
            o = nodes[k]
            if isinstance(o, _Delim) and o.char == c.char and o.can_open and o.count:
                break
            k -= 1
        if k < 0:
            j += 1
            continue
        o = nodes[k]
        n = 2 if o.count >= 2 and c.count >= 2 else 1
        tag = "strong" if n == 2 else "em"
        nodes[k + 1:j] = [f"<{tag}>" + "".join(_lit(x) for x in nodes[k + 1:j]) + f"</{tag}>"]
        o.count -= n
        c.count -= n
        j = k + 2
        if not o.count:
            del nodes[k]
            j -= 1
        if not c.count:
            del nodes[j]
    return "".join(_lit(x) for x in nodes)


_DEST = re.compile(r"(?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*\))*")
_TITLE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|\((?:[^()\\]|\\.)*\)', re.DOTALL)
_SPACE = re.compile(r"[ \t\n]*")
_BRACKET = re.compile(r"\\.|[\[\]]", re.DOTALL)


def _brackets(s: str) -> dict[int, int]:
    """Position of each '[' -> position of the ']' that closes it (backslash escapes skipped); one
    pass, so a note full of brackets costs linear time."""
    out: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACKET.finditer(s):
        ch = m.group()
        if ch == "[":
            stack.append(m.start())
        elif ch == "]" and stack:
            out[stack.pop()] = m.start()
    return out


def _link_at(s: str, i: int, close: dict[int, int]) -> tuple[str, str, int] | None:
    """(label, destination, end) of an inline link ``[label](dest "title")`` starting at s[i] == '['."""
    j = close.get(i)
    n = len(s)
    if j is None or j + 1 >= n or s[j + 1] != "(":
        return None
    label = s[i + 1:j]
    k = _SPACE.match(s, j + 2).end()
    if k < n and s[k] == "<":
        end = s.find(">", k + 1)
        if end < 0 or "\n" in s[k + 1:end] or "<" in s[k + 1:end]:
            return None
        dest, k = s[k + 1:end], end + 1
    else:
        m = _DEST.match(s, k)
        dest, k = m.group(), m.end()
    k = _SPACE.match(s, k).end()
    t = _TITLE.match(s, k)
    if t and t.start() > 0 and s[t.start() - 1] in " \t\n":
        k = _SPACE.match(s, t.end()).end()
    if k >= n or s[k] != ")":
        return None
    return label, dest, k + 1


def _inline(s: str, links: bool = True) -> str:
    nodes: list = []
    buf: list[str] = []
    n = len(s)
    runs: dict[int, list[int]] = {}  # backtick run length -> start positions, for code spans
    for m in re.finditer(r"`+", s):
        runs.setdefault(len(m.group()), []).append(m.start())
    delims = 0
    close = _brackets(s) if links else {}

    def flush() -> None:
        if buf:
            nodes.append(_esc("".join(buf)))
            buf.clear()

    def push(html_: str) -> None:
        flush()
        nodes.append(html_)

    i = 0
    while i < n:
        m = _PLAIN.match(s, i)
        if m:
            buf.append(m.group())
            i = m.end()
            continue
        ch = s[i]
        if ch == "\\":
            nxt = s[i + 1] if i + 1 < n else ""
            if nxt in _PUNCT and nxt:
                buf.append(nxt)
                i += 2
            elif nxt == "\n":
                push("<br>\n")
                i += 2
            else:
                buf.append("\\")
                i += 1
        elif ch == "`":
            j = i
            while j < n and s[j] == "`":
                j += 1
            r = j - i
            starts = runs.get(r, [])
            p = bisect.bisect_left(starts, j)
            if p < len(starts):
                end = starts[p]
                code = s[j:end].replace("\n", " ")
                if len(code) > 1 and code[0] == " " and code[-1] == " " and code.strip(" "):
                    code = code[1:-1]
                push("<code>" + _esc(code) + "</code>")
                i = end + r
            else:
                buf.append(s[i:j])
                i = j
        elif ch in "[!":
            at = i + 1 if ch == "!" else i
            if ch == "!" and not s.startswith("[", at):
                buf.append("!")
                i += 1
                continue
            found = _link_at(s, at, close) if links else None
            if found is None:
                buf.append(s[i:at + 1])
                i = at + 1
                continue
            label, dest, end = found
            url = safe_url(html.unescape(_unescape_backslashes(dest)))
            if url is None:  # shown as written, so the reader sees where it pointed
                buf.append(s[i:end])
            else:
                push(_link(url, _inline(label, links=False) or _esc(url)))
            i = end
        elif ch == "<":
            m = _AUTOLINK.match(s, i) if links else None
            url = safe_url(html.unescape(m.group(1))) if m else None
            if m and url:
                push(_link(url, _esc(m.group(1))))
                i = m.end()
                continue
            m = _AUTOMAIL.match(s, i) if links else None
            if m:
                push(_link("mailto:" + m.group(1), _esc(m.group(1))))
                i = m.end()
                continue
            buf.append("<")
            i += 1
        elif ch in "hH":
            # a bare URL starts a word (GFM's rule), so one inside another URL is not linked
            m = _BARE.match(s, i) if links and (i == 0 or s[i - 1].isspace() or s[i - 1] in "*_~(") else None
            if not m:
                buf.append(ch)
                i += 1
                continue
            url = m.group().rstrip(".,:;!?'\"*_~")
            while url.endswith(")") and url.count(")") > url.count("("):
                url = url[:-1].rstrip(".,:;!?'\"*_~")
            if safe_url(url):
                push(_link(url, _esc(url)))
            else:
                buf.append(url)
            i += len(url)
        elif ch in "*_":
            j = i
            while j < n and s[j] == ch:
                j += 1
            if delims >= MAX_DELIMITERS:
                buf.append(s[i:j])
            else:
                can_open, can_close = _flanking(s, i, j)
                flush()
                nodes.append(_Delim(ch, j - i, can_open, can_close))
                delims += 1
            i = j
        else:  # "\n"
            text = "".join(buf)
            stripped = text.rstrip(" ")
            buf[:] = [stripped] if stripped else []
            if len(text) - len(stripped) >= 2:
                push("<br>\n")
            else:
                buf.append("\n")
            i += 1
    flush()
    return _emphasis(nodes)


# ---- blocks ------------------------------------------------------------------------------------


def _detab(line: str) -> str:
    """Tabs in the leading whitespace as spaces (to the next multiple of 4); the rest untouched."""
    stripped = line.lstrip(" \t")
    if "\t" not in line[: len(line) - len(stripped)]:
        return line
    return line[: len(line) - len(stripped)].expandtabs(4) + stripped


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _item(line: str) -> tuple[str, str, int, str] | None:
    """(kind, marker, content indent, first line) of a list item line, else None."""
    m = _BULLET.match(line)
    if m and not _HR.match(line):
        kind, marker, lead = "ul", m.group(2), len(m.group(1)) + 1
        space, rest = m.group(3) or "", m.group(4) or ""
    else:
        m = _ORDERED.match(line)
        if not m:
            return None
        kind, marker, lead = "ol", m.group(3), len(m.group(1)) + len(m.group(2)) + 1
        space, rest = m.group(4) or "", m.group(5) or ""
    if not rest.strip():  # an empty item
        return kind, marker, lead + 1, ""
    if len(space) > 4:  # indented code after the marker: content starts one space in
        return kind, marker, lead + 1, space[1:] + rest
    return kind, marker, lead + len(space), rest


def _starts_block(line: str) -> bool:
    return bool(_FENCE.match(line) or _HEADING.match(line) or _HR.match(line) or _QUOTE.match(line)
                or _item(line))


def _blocks(lines: list[str], depth: int, tight: bool = False) -> list[str]:
    out: list[str] = []
    para: list[str] = []
    nest = depth < MAX_DEPTH

    def flush() -> None:
        if para:
            # leading blanks go, trailing ones stay: two of them before a newline are a line break
            body = _inline("\n".join(x.lstrip() for x in para).rstrip())
            out.append(body if tight else f"<p>{body}</p>")
            para.clear()

    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            flush()
            i += 1
            continue
        m = _FENCE.match(line)
        if m and not (m.group(2)[0] == "`" and "`" in m.group(3)):
            flush()
            indent, fence = len(m.group(1)), m.group(2)
            closing = re.compile(r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*$")
            body = []
            i += 1
            while i < n and not closing.match(lines[i]):
                body.append(lines[i][min(indent, _indent(lines[i])):])
                i += 1
            if i >= n:  # an unclosed fence runs to the end of the note
                while body and not body[-1].strip():
                    body.pop()
            i += 1
            out.append("<pre><code>" + _esc("\n".join(body) + ("\n" if body else "")) + "</code></pre>")
            continue
        m = _HEADING.match(line)
        if m:
            flush()
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline((m.group(2) or '').strip())}</h{level}>")
            i += 1
            continue
        if _HR.match(line):
            flush()
            out.append("<hr>")
            i += 1
            continue
        if nest and _QUOTE.match(line):
            flush()
            quoted = []
            while i < n:
                q = _QUOTE.match(lines[i])
                if q:
                    quoted.append(q.group(1))
                elif lines[i].strip() and quoted and quoted[-1].strip() and not _starts_block(lines[i]):
                    quoted.append(lines[i])  # a lazy continuation of the quoted paragraph
                else:
                    break
                i += 1
            out.append("<blockquote>\n" + "\n".join(_blocks(quoted, depth + 1)) + "\n</blockquote>")
            continue
        first = _item(line) if nest else None
        if first:
            flush()
            i = _list(lines, i, depth, out)
            continue
        para.append(line)
        i += 1
    flush()
    return out


def _list(lines: list[str], i: int, depth: int, out: list[str]) -> int:
    """Render the list starting at lines[i] into ``out``; returns the index after it."""
    kind, marker = _item(lines[i])[:2]  # type: ignore[index]
    items: list[list[str]] = []
    loose = False
    n = len(lines)
    while i < n:
        it = _item(lines[i])
        if not it or it[0] != kind or it[1] != marker:
            break
        indent, body = it[2], [it[3]]
        i += 1
        while i < n:
            line = lines[i]
            if not line.strip():
                j = i
                while j < n and not lines[j].strip():
                    j += 1
                if j < n and _indent(lines[j]) >= indent:
                    body.extend([""] * (j - i))
                    i = j
                    continue
                break
            if _indent(line) >= indent:
                body.append(line[indent:])
            elif body[-1].strip() and not _starts_block(line):
                body.append(line)  # a lazy continuation line
            else:
                break
            i += 1
        items.append(body)
        j = i
        while j < n and not lines[j].strip():
            j += 1
        if j > i:
            nxt = _item(lines[j]) if j < n else None
            if not nxt or nxt[0] != kind or nxt[1] != marker:
                break
            loose = True
            i = j
    for body in items:
        if any(not x.strip() for x in body[:-1]) and len([x for x in body if x.strip()]) > 1:
            loose = True
    parts = []
    for body in items:
        inner = _blocks(body, depth + 1, tight=not loose)
        parts.append("<li>" + "\n".join(inner) + "</li>")
    out.append(f"<{kind}>\n" + "\n".join(parts) + f"\n</{kind}>")
    return i


def render(text: str | None) -> str:
    """The note ``text`` (Markdown) as a safe HTML fragment ("" for None or an empty note)."""
    if not text:
        return ""
    text = str(text).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
    return "\n".join(_blocks([_detab(x) for x in text.split("\n")], 0))
