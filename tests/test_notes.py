"""Run notes: the safe Markdown renderer, and the note shown by ``show``, the report and the UI."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trackhooks
from trackhooks.markdown import MAX_DEPTH, render, safe_url
from trackhooks.report import build_report

ALLOWED = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "code", "pre", "ul", "ol", "li",
           "blockquote", "hr", "br", "a"}
VOID = {"hr", "br"}
REL = "noopener noreferrer nofollow"


class _Check(HTMLParser):
    """Parses the renderer's output the way a browser tokenises it, and records what it saw."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in ALLOWED:
            self.problems.append(f"tag {tag}")
        names = [a for a, _ in attrs]
        if tag == "a":
            if sorted(names) != ["href", "rel"] or dict(attrs)["rel"] != REL:
                self.problems.append(f"a attrs {attrs}")
            self.hrefs.append(dict(attrs).get("href") or "")
        elif names:
            self.problems.append(f"{tag} attrs {attrs}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.problems.append(f"self-closing {tag}")

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"misnested </{tag}> in {self.stack}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    def handle_comment(self, data):
        self.problems.append("comment")

    def handle_decl(self, decl):
        self.problems.append("declaration")

    def handle_pi(self, data):
        self.problems.append("processing instruction")

    def unknown_decl(self, data):
        self.problems.append("unknown declaration")


def check(markdown: str) -> _Check:
    out = render(markdown)
    c = _Check()
    c.feed(out)
    c.close()
    assert not c.problems, (markdown, out, c.problems)
    assert not c.stack, (markdown, out, c.stack)
    for href in c.hrefs:  # the parser decoded the attribute as a browser does
        assert href.lower().startswith(("http://", "https://", "mailto:")), (markdown, href)
        assert safe_url(href) == href
    return c


# ---- the renderer ------------------------------------------------------------------------------


def test_blocks_and_inlines():
    md = ("# Results\n\nBetter than *baseline* by **2.1 %**, see `val_loss`.\n\n"
          "###### small\n\n- lr 0.1\n- batch 32\n  - nested\n\n1. first\n2. second\n\n"
          "> quoted\n\n---\n\n```python\nif a < b and c > d:\n    print('&')\n```\n")
    out = render(md)
    assert "<h1>Results</h1>" in out
    assert "<p>Better than <em>baseline</em> by <strong>2.1 %</strong>, see <code>val_loss</code>.</p>" in out
    assert "<h6>small</h6>" in out
    assert "<ul>\n<li>lr 0.1</li>\n<li>batch 32\n<ul>\n<li>nested</li>\n</ul></li>\n</ul>" in out
    assert "<ol>\n<li>first</li>\n<li>second</li>\n</ol>" in out
    assert "<blockquote>\n<p>quoted</p>\n</blockquote>" in out and "<hr>" in out
    assert "<pre><code>if a &lt; b and c &gt; d:\n    print(&#x27;&amp;&#x27;)\n</code></pre>" in out
    check(md)


def test_empty_and_none():
    assert render(None) == "" and render("") == ""
    assert render("   \n\n") == ""


def test_headings_need_a_space_and_drop_closing_hashes():
    assert render("#hashtag") == "<p>#hashtag</p>"
    assert render("## Title ##") == "<h2>Title</h2>"
    assert render("####### seven") == "<p>####### seven</p>"


def test_line_breaks():
    assert render("one  \ntwo\\\nthree\nfour") == "<p>one<br>\ntwo<br>\nthree\nfour</p>"


def test_nested_emphasis_is_well_nested():
    assert render("***both***") == "<p><em><strong>both</strong></em></p>"
    assert render("**bold *inner* bold**") == "<p><strong>bold <em>inner</em> bold</strong></p>"
    assert render("*em **strong** em*") == "<p><em>em <strong>strong</strong> em</em></p>"
    assert render("__a _b_ c__") == "<p><strong>a <em>b</em> c</strong></p>"
    for md in ("*a **b* c**", "**a *b** c*", "*a _b* c_", "***a** b*", "***a* b**", "* not emphasis *",
               "**unclosed", "a*b*c", "*" * 50 + "x" + "*" * 49, "_*_*_*x*_*_*_"):
        check(md)


def test_underscores_inside_words_stay_literal():
    assert render("learning_rate_max and snake_case_name") == "<p>learning_rate_max and snake_case_name</p>"
    assert render("a*b*c") == "<p>a<em>b</em>c</p>"


def test_code_spans_and_fences_show_markup_as_text():
    assert render("`<b>**x**</b>`") == "<p><code>&lt;b&gt;**x**&lt;/b&gt;</code></p>"
    assert render("`` a ` b ``") == "<p><code>a ` b</code></p>"
    assert render("`unclosed *em*") == "<p>`unclosed <em>em</em></p>"
    # an unclosed fence runs to the end of the note; what follows it is code, not markup
    out = render("text\n```\n<script>alert(1)</script>\n# not a heading\n[x](https://a.b)")
    assert out == ("<p>text</p>\n<pre><code>&lt;script&gt;alert(1)&lt;/script&gt;\n# not a heading\n"
                   "[x](https://a.b)\n</code></pre>")
    assert render("~~~~\n~~~\n~~~~") == "<pre><code>~~~\n</code></pre>"
    assert render("```\n```") == "<pre><code></code></pre>"


def test_raw_html_is_text():
    for md in ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<!-- c --><b>x</b>",
               '<a href="javascript:alert(1)">x</a>', "<svg/onload=alert(1)>", "<style>*{}</style>",
               "<iframe srcdoc='<script>'></iframe>", "&lt;script&gt;", "<![CDATA[x]]>", "<?php ?>"):
        c = check(md)
        assert c.tags == ["p"], (md, render(md))
        assert "".join(c.text) == md  # shown exactly as written, entities included


def test_links():
    assert render("[docs](https://example.org/a?b=1&c=2)") == \
        f'<p><a href="https://example.org/a?b=1&amp;c=2" rel="{REL}">docs</a></p>'
    assert render("[a](<https://x.org/with space>)") == "<p>[a](&lt;https://x.org/with space&gt;)</p>"
    assert render('[t](https://x.org "title")') == f'<p><a href="https://x.org" rel="{REL}">t</a></p>'
    assert render("[mail](mailto:me@example.org)") == f'<p><a href="mailto:me@example.org" rel="{REL}">mail</a></p>'
    assert render("<https://x.org/p>") == f'<p><a href="https://x.org/p" rel="{REL}">https://x.org/p</a></p>'
    assert render("<me@example.org>") == f'<p><a href="mailto:me@example.org" rel="{REL}">me@example.org</a></p>'
    assert render("see https://x.org/a_(b), then") == \
        f'<p>see <a href="https://x.org/a_(b)" rel="{REL}">https://x.org/a_(b)</a>, then</p>'
    assert render("(https://x.org/p).") == f'<p>(<a href="https://x.org/p" rel="{REL}">https://x.org/p</a>).</p>'
    assert render("[**bold** label](https://x.org)") == \
        f'<p><a href="https://x.org" rel="{REL}"><strong>bold</strong> label</a></p>'
    # a link inside a link label stays text; so do relative links and other schemes
    c = check("[[in](https://a.org)](https://b.org)")
    assert c.hrefs == ["https://b.org"]
    for md in ("[rel](/etc/passwd)", "[rel](page.html)", "[frag](#top)", "[ftp](ftp://x.org)",
               "[file](file:///etc/passwd)", "[proto](//evil.org)", "[empty]()", "[host](https://)"):
        c = check(md)
        assert c.hrefs == [] and "".join(c.text) == md, (md, render(md))


def test_images_are_never_images():
    c = check("![plot](https://x.org/p.png) ![bad](javascript:alert(1))")
    assert "img" not in c.tags and c.hrefs == ["https://x.org/p.png"]


JS = ["javascript:alert(1)", "JavaScript:alert(1)", "JAVASCRIPT:alert(1)", " javascript:alert(1)",
      "java\tscript:alert(1)", "java\nscript:alert(1)", "javascript\x00:alert(1)", "\x01javascript:alert(1)",
      "&#106;avascript:alert(1)", "&#x6A;avascript:alert(1)", "javascript&colon;alert(1)", "&#0000106;avascript:x",
      "jav&#x09;ascript:alert(1)", "\\javascript:alert(1)", "javas\\cript:alert(1)", "%6Aavascript:alert(1)",
      "vbscript:msgbox(1)", "data:text/html,<script>alert(1)</script>", "DATA:text/html;base64,PHNjcmlwdD4=",
      "data:image/png;base64,iVBORw0KGgo=", "javascript://https://x.org/%0Aalert(1)", "\u200bjavascript:alert(1)",
      "https\u200b://x.org", "blob:https://x.org/1", "jar:https://x.org!/"]


@pytest.mark.parametrize("url", JS)
def test_dangerous_urls_never_become_links(url):
    for md in (f"[click]({url})", f"[click](<{url}>)", f"<{url}>", f"[click]({url} \"t\")", f"![i]({url})",
               f"x {url} y"):
        c = check(md)
        assert c.hrefs == [], (md, render(md))
        assert "<a " not in render(md)


def test_safe_url():
    assert safe_url("https://x.org/a") == "https://x.org/a" and safe_url("HTTP://X.ORG") == "HTTP://X.ORG"
    assert safe_url("mailto:a@b.c") == "mailto:a@b.c"
    for bad in ["", "http://", "mailto:", "https://x.org/a b", "https://x.org/\x7f", "/x", "x.org"] + JS:
        assert safe_url(bad) is None, bad


def test_attribute_injection_through_links():
    for md in ('[x](https://a.org/"onmouseover="alert(1))', "[x](https://a.org/'onmouseover='alert(1))",
               '[x](https://a.org/"><script>alert(1)</script>)', "[x](https://a.org/&quot;onclick=alert(1))",
               '<https://a.org/"onmouseover="alert(1)>', 'https://a.org/"onmouseover="alert(1)',
               "[x](https://a.org/`onmouseover=alert(1))", '[<img src=x onerror=alert(1)>](https://a.org)'):
        c = check(md)
        assert "script" not in c.tags and "img" not in c.tags
        out = render(md)
        # every quote inside an attribute is an entity: no attribute can be closed from a note
        for href in c.hrefs:
            assert f'href="{html.escape(href, quote=True)}"' in out


def test_lists_loose_tight_and_numbering():
    assert render("- a\n\n- b") == "<ul>\n<li><p>a</p></li>\n<li><p>b</p></li>\n</ul>"
    assert render("3. c\n4. d") == "<ol>\n<li>c</li>\n<li>d</li>\n</ol>"  # no start attribute
    assert render("- a\ncontinued\n- b") == "<ul>\n<li>a\ncontinued</li>\n<li>b</li>\n</ul>"
    assert render("- a\n+ b") == "<ul>\n<li>a</li>\n</ul>\n<ul>\n<li>b</li>\n</ul>"
    assert render("- item\n\n      code-ish\n- x").startswith("<ul>\n<li><p>item</p>")
    assert render("-not a list") == "<p>-not a list</p>"
    check("- a\n  ```\n  <b>\n  ```\n- b")


def test_deep_nesting_is_bounded():
    deep = "\n".join("  " * i + "- x" for i in range(200))
    check(deep)
    assert render(deep).count("<ul>") <= MAX_DEPTH + 1
    quotes = ">" * 500 + " deep"
    check(quotes)
    assert render(quotes).count("<blockquote>") <= MAX_DEPTH + 1


def test_hostile_sizes_stay_cheap():
    # many unmatched delimiters, backticks and brackets: linear-ish, never a hang
    for md in ("*a " * 20000, "`" * 20000 + "x", "[" * 20000, "a_" * 20000, "**" * 20000, "<" * 20000,
               "[a](" * 5000, '[a](x "' * 5000, "[a](<" * 5000, "https://x.org/" + "(" * 20000, "\\" * 20000,
               "- a\n" * 5000, "h" * 50000):
        check(md)


def test_newlines_and_nul():
    assert render("a\r\nb\rc") == "<p>a\nb\nc</p>"
    assert render("a\x00b") == "<p>a\ufffdb</p>"


_md_chars = st.sampled_from(list("ab *_`[]()<>!#-+>.\n\\\"'&;:/ \t1") + ["http://", "https://x.org", "javascript:",
                                                                       "mailto:", "```", "  \n", "&#106;", "<script>"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_md_chars, max_size=60).map("".join))
def test_any_input_renders_to_allowed_well_nested_html(md):
    c = check(md)
    assert "script" not in c.tags


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_renders_to_allowed_well_nested_html(md):
    check(md)


# ---- show, report, UI ---------------------------------------------------------------------------

NOTE = ("# Why\n\nTry **lower lr** with `warmup`; see [paper](https://arxiv.org/abs/1).\n\n"
        "<script>window.__xss=1</script> [bad](javascript:alert(1))\n- a\n\x1b[31mred\ttab")


@pytest.fixture(scope="module")
def noted(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("notes") / "store")
    with trackhooks.start_run(store=store, experiment="exp", name="with-note") as r:
        r.log_metric("loss", 1.0)
    r.set_note(NOTE)  # after finish
    with trackhooks.start_run(store=store, experiment="exp", name="no-note") as r2:
        r2.log_metric("loss", 2.0)
    return store, r.id, r2.id


def _cli(*args):
    e = dict(os.environ)
    e.pop("TRACKHOOKS_DEBUG", None)
    p = subprocess.run([sys.executable, "-m", "trackhooks", *args], capture_output=True, text=True, env=e, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_show_prints_the_note_as_safe_plain_text(noted):
    store, rid, other = noted
    out = _cli("--store", store, "show", rid)
    lines = out.splitlines()
    at = lines.index("note")
    assert lines[at + 1:at + 4] == ["  # Why", "", "  Try **lower lr** with `warmup`; see [paper](https://arxiv.org/abs/1)."]
    assert "  <script>window.__xss=1</script> [bad](javascript:alert(1))" in lines
    assert "\x1b" not in out and "  \\x1b[31mred    tab" in lines  # the escape sequence is shown, not sent
    assert lines.index("note") < next(i for i, x in enumerate(lines) if x.startswith("params"))
    assert "note" not in _cli("--store", store, "show", other).splitlines()
    d = json.loads(_cli("--store", store, "show", rid, "--json"))
    assert d["note"] == NOTE
    assert json.loads(_cli("--store", store, "show", other, "--json"))["note"] is None


def test_note_command_then_show(noted, tmp_path):
    store, _, other = noted
    _cli("--store", store, "note", other, "*set* from the CLI")
    assert "  *set* from the CLI" in _cli("--store", store, "show", other).splitlines()
    _cli("--store", store, "note", other, "")
    assert json.loads(_cli("--store", store, "show", other, "--json"))["note"] is None


def test_report_renders_notes_without_raw_html(noted):
    store, rid, other = noted
    recs = [trackhooks.open_store(store).run(x) for x in (rid, other)]
    page, _ = build_report(recs)
    assert '<section id="notes"><h2>Notes</h2>' in page
    start = page.index('<section id="notes">')
    section = page[start:page.index("</section>", start)]
    assert section.count('<article class="note"') == 1  # only the run that has a note
    assert "<h1>Why</h1>" in section and "<strong>lower lr</strong>" in section and "<code>warmup</code>" in section
    assert f'<a href="https://arxiv.org/abs/1" rel="{REL}">paper</a>' in section
    assert "<script>" not in section and "&lt;script&gt;window.__xss=1&lt;/script&gt;" in section
    assert "javascript:" not in section.replace("[bad](javascript:alert(1))", "")
    assert page.count("<script>") == 1  # the page's own script only
    # the CSP is unchanged: scripts and styles by hash only, no network
    assert "default-src 'none'; script-src 'sha256-" in html.unescape(page)
    page2, _ = build_report(recs[1:])
    assert 'id="notes"' not in page2


def test_ui_api_returns_rendered_note(noted):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from trackhooks.ui.server import create_app

    store, rid, other = noted
    c = TestClient(create_app(store))
    d = c.get(f"/api/runs/{rid}").json()
    assert d["note"] == NOTE
    assert d["note_html"] == render(NOTE)
    assert "<strong>lower lr</strong>" in d["note_html"] and "<script>" not in d["note_html"]
    e = c.get(f"/api/runs/{other}").json()
    assert e["note"] is None and e["note_html"] is None
    js = c.get("/static/app.js").text
    assert "noteBlock(r.note_html)" in js
