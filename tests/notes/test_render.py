"""notes/render.py (ProseMirror JSON → Markdown / HTML) against exact strings, and the JSON the
server reads back from a seeded fragment (``fragment_to_prosemirror``, the exact inverse)."""

from __future__ import annotations

import pytest
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from notes.render import render_content, safe_url, to_html, to_markdown
from notes.yjs import FRAGMENT, MARK_ORDER, doc_from_state, fragment_to_prosemirror, seed_state
from tests.notes.rich_document import (
    BOLD,
    CODE,
    ITALIC,
    RICH,
    RICH_HTML,
    RICH_MD,
    as_tiptap_writes_it,
    item,
    para,
    rich,
    text,
)


def doc(*blocks: dict) -> dict:
    return {"type": "doc", "content": list(blocks)}


def round_trip(pm_json: dict) -> dict:
    """Seed ``pm_json`` into a fresh state, decode it, read the JSON back."""
    return fragment_to_prosemirror(
        doc_from_state(seed_state(pm_json)).get(FRAGMENT, type=XmlFragment)
    )


# --- the rich document --------------------------------------------------------------------------


def test_the_rich_document_renders_to_exact_markdown_and_html():
    assert to_markdown(RICH) == RICH_MD
    assert to_html(RICH) == RICH_HTML
    assert render_content(RICH) == {"md": RICH_MD, "html": RICH_HTML, "json": RICH}


def test_the_json_read_from_the_seeded_fragment_is_the_document_exactly():
    assert round_trip(rich()) == RICH


def test_what_yjs_does_not_keep_comes_back_canonical():
    """Null node attributes (dropped by the seeding, as y-prosemirror does) and the order of
    marks (Yjs keeps them unordered) come back in canonical form: the editor's document
    without the nulls, marks in MARK_ORDER."""
    written = as_tiptap_writes_it(RICH)
    assert written != RICH
    assert round_trip(written) == RICH


def test_marks_come_back_in_mark_order_whatever_order_they_were_written_in():
    marks = [{"type": name} for name in reversed(MARK_ORDER)] + [{"type": "highlight"}]
    back = round_trip(doc(para(text("x", *marks))))
    names = [mark["type"] for mark in back["content"][0]["content"][0]["marks"]]
    assert names == [*MARK_ORDER, "highlight"]


def test_attribute_values_keep_their_json_types():
    attrs = {"level": 2, "ratio": 1.5, "flag": True, "off": False, "name": "x", "n": [1, {"a": 2}]}
    link = {"type": "link", "attrs": {"href": "/a", "class": None, "rank": 3}}
    source = doc({"type": "heading", "attrs": attrs, "content": [text("h", link)]})
    back = round_trip(source)
    assert back == source
    assert type(back["content"][0]["attrs"]["level"]) is int
    assert back["content"][0]["attrs"]["flag"] is True


def test_empty_text_is_dropped_and_equal_runs_are_merged():
    source = doc(para(text("a", BOLD), {"type": "text", "text": ""}, text("b", BOLD), text("c")))
    assert round_trip(source) == doc(para(text("ab", BOLD), text("c")))


def test_an_overlapping_mark_key_from_y_prosemirror_is_the_mark():
    ydoc = Doc()
    fragment = ydoc.get(FRAGMENT, type=XmlFragment)
    paragraph = XmlElement("paragraph")
    fragment.children.append(paragraph)
    run = XmlText()
    paragraph.children.append(run)
    run.insert(0, "c", {"comment--a1b2": {"id": 7}})
    assert fragment_to_prosemirror(fragment) == doc(
        para(text("c", {"type": "comment", "attrs": {"id": 7}}))
    )


# --- Markdown -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "markdown"),
    [
        (
            "a*b_c _d_ [x](y) `z` ~s~ \\ <i>",
            "a\\*b_c \\_d\\_ \\[x\\](y) \\`z\\` \\~s\\~ \\\\ \\<i>",
        ),
        ("# not a heading", "\\# not a heading"),
        ("- not a list", "\\- not a list"),
        ("> not a quote", "\\> not a quote"),
        ("1. not a list", "1\\. not a list"),
        ("&amp; stays text & so", "\\&amp; stays text & so"),
        ("😀 絵文字 and 中文", "😀 絵文字 and 中文"),
    ],
)
def test_markdown_escapes_text(value, markdown):
    assert to_markdown(doc(para(text(value)))) == markdown


def test_markdown_marks_nest_and_keep_whitespace_outside():
    source = doc(para(text("a "), text(" b ", BOLD), text("c", BOLD, ITALIC), text(" d")))
    assert to_markdown(source) == "a  **b *c*** d"


def test_markdown_code_span_outlasts_its_backticks():
    assert to_markdown(doc(para(text("a``b", CODE)))) == "``` a``b ```"
    assert to_markdown(doc(para(text("*raw*", CODE)))) == "`*raw*`"


def test_markdown_hard_breaks_and_a_trailing_one():
    source = doc(para(text("a"), {"type": "hardBreak"}, text("# b"), {"type": "hardBreak"}))
    assert to_markdown(source) == "a\\\n\\# b"


def test_markdown_nested_and_ordered_lists():
    source = doc(
        {
            "type": "orderedList",
            "attrs": {"start": 9},
            "content": [
                item(
                    para(text("nine")),
                    {"type": "bulletList", "content": [item(para(text("in")), para(text("p2")))]},
                ),
                item(para(text("ten"))),
            ],
        }
    )
    assert to_markdown(source) == "9. nine\n   - in\n\n     p2\n10. ten"


def test_markdown_code_block_fences_and_language():
    source = doc({"type": "codeBlock", "attrs": {"language": "js extra`"}, "content": [text("a")]})
    assert to_markdown(source) == "```js\na\n```"
    empty = doc({"type": "codeBlock"})
    assert to_markdown(empty) == "```\n```"


def test_markdown_links_and_images():
    link = {"type": "link", "attrs": {"href": "https://x.org/a b(c)", "title": 'say "hi"'}}
    image = {"type": "image", "attrs": {"src": "/i.png", "alt": "a*b", "title": None}}
    source = doc(para(text("go", link), text(" "), image))
    assert to_markdown(source) == '[go](https://x.org/a%20b%28c%29 "say \\"hi\\"") ![a\\*b](/i.png)'


# --- HTML -----------------------------------------------------------------------------------------


def test_html_escapes_text_and_attribute_values():
    link = {"type": "link", "attrs": {"href": '/a?x="><script>', "title": "<t>'"}}
    source = doc(para(text("<script>alert(1)</script> & ' \"", link)))
    assert to_html(source) == (
        '<p><a href="/a?x=&quot;&gt;&lt;script&gt;" title="&lt;t&gt;&#x27;" '
        'rel="noopener noreferrer nofollow">'
        "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#x27; &quot;</a></p>"
    )


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "java\tscript:alert(1)",
        "jav&#x09;ascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
    ],
)
def test_an_unsafe_link_loses_its_href(href):
    link = {"type": "link", "attrs": {"href": href}}
    source = doc(para(text("x", link)))
    assert to_html(source) == '<p><a rel="noopener noreferrer nofollow">x</a></p>'
    assert to_markdown(source) == "x"


def test_safe_urls():
    assert safe_url("https://a.b/c") == "https://a.b/c"
    assert safe_url("mailto:a@b.c") == "mailto:a@b.c"
    assert safe_url("/relative?q=1#f") == "/relative?q=1#f"
    assert safe_url("page.html") == "page.html"
    assert safe_url("data:image/png;base64,AAAA", image=True) == "data:image/png;base64,AAAA"
    assert safe_url("data:image/svg+xml,<svg/>", image=True) is None
    assert safe_url("mailto:a@b.c", image=True) is None
    assert safe_url(None) is None and safe_url(7) is None


def test_an_image_without_a_safe_source_is_dropped():
    bad = {"type": "image", "attrs": {"src": "javascript:x", "alt": "a"}}
    good = {"type": "image", "attrs": {"src": "https://x/i.png", "alt": 'a"b', "title": "t"}}
    assert to_html(doc(bad, good)) == '<img src="https://x/i.png" alt="a&quot;b" title="t">'
    assert to_markdown(doc(bad)) == ""


def test_hostile_attribute_values_cannot_make_tags():
    source = doc(
        {"type": "heading", "attrs": {"level": "1><script>"}, "content": [text("h")]},
        {"type": "heading", "attrs": {"level": 99}, "content": [text("h")]},
        {"type": "orderedList", "attrs": {"start": '5"><x', "type": "<x>"}, "content": []},
        {"type": "codeBlock", "attrs": {"language": '"><script>'}, "content": [text("c")]},
        {"type": "taskList", "content": [item(kind="taskItem", checked="yes")]},
    )
    assert to_html(source) == (
        "<h1>h</h1><h6>h</h6><ol></ol>"
        '<pre><code class="language-&quot;&gt;&lt;script&gt;">c</code></pre>'
        '<ul data-type="taskList"><li data-type="taskItem" data-checked="false"><label>'
        '<input type="checkbox"><span></span></label><div></div></li></ul>'
    )


def test_snake_case_names_render_like_tiptap_ones():
    snake = doc(
        {
            "type": "bullet_list",
            "content": [item(para(text("a", {"type": "strong"})), kind="list_item")],
        },
        {
            "type": "ordered_list",
            "attrs": {"order": 4},
            "content": [item(para(), kind="list_item")],
        },
        {"type": "code_block", "content": [text("c")]},
        {"type": "horizontal_rule"},
        para(text("x", {"type": "em"}), {"type": "hard_break"}, text("y")),
    )
    assert to_html(snake) == (
        '<ul><li><p><strong>a</strong></p></li></ul><ol start="4"><li><p></p></li></ol>'
        "<pre><code>c</code></pre><hr><p><em>x</em><br>y</p>"
    )
    assert to_markdown(snake) == "- **a**\n\n4.\n\n```\nc\n```\n\n---\n\n*x*\\\ny"


def test_unknown_nodes_render_their_children_and_unknown_marks_nothing():
    source = doc(
        {"type": "details", "content": [{"type": "detailsSummary", "content": [text("sum")]}]},
        para(text("m", {"type": "highlight", "attrs": {"color": "red"}}), {"type": "mention"}),
        {"type": "table", "content": [{"type": "tableRow", "content": [para(text("cell"))]}]},
    )
    assert to_html(source) == "sum<p>m</p><p>cell</p>"
    assert to_markdown(source) == "sum\n\nm\n\ncell"


def test_anything_json_renders_without_raising():
    junk = {
        "type": "doc",
        "content": [
            1,
            None,
            {"type": 3},
            {"type": "text"},
            {"type": "paragraph", "content": "x", "attrs": [1]},
            {"type": "text", "text": "t", "marks": [None, {"type": "bold", "attrs": 5}]},
        ],
    }
    assert to_html(junk) == "<p></p><strong>t</strong>"
    assert to_markdown(junk) == "**t**"
