"""The rich document of issue 15 as a Tiptap editor writes it, in canonical form (what
``notes.yjs.fragment_to_prosemirror`` returns: no null node attributes, marks in
``MARK_ORDER``), with the Markdown and HTML the server renders for it."""

from __future__ import annotations

import copy


def text(value: str, *marks: dict) -> dict:
    node: dict = {"type": "text", "text": value}
    if marks:
        node["marks"] = list(marks)
    return node


def para(*content: dict) -> dict:
    return {"type": "paragraph", "content": list(content)} if content else {"type": "paragraph"}


def item(*blocks: dict, kind: str = "listItem", **attrs) -> dict:
    node: dict = {"type": kind, "content": list(blocks)}
    if attrs:
        node["attrs"] = attrs
    return node


BOLD, ITALIC, STRIKE, CODE, UNDERLINE = (
    {"type": name} for name in ("bold", "italic", "strike", "code", "underline")
)
LINK = {
    "type": "link",
    "attrs": {
        "href": "https://example.com/a?b=1&c=2",
        "target": "_blank",
        "rel": "noopener noreferrer nofollow",
        "class": None,
    },
}

RICH = {
    "type": "doc",
    "content": [
        {"type": "heading", "attrs": {"level": 1}, "content": [text("Plan 🚀 計画")]},
        para(
            text("Plain, "),
            text("bold ", BOLD),
            text("both", BOLD, ITALIC),
            text(", "),
            text("gone", STRIKE),
            text(", "),
            text("x = `1`", CODE),
            text(", "),
            text("a link", LINK, UNDERLINE),
            {"type": "hardBreak"},
            text("2nd line: <b>not html</b> & *stars* 中文 😀"),
        ),
        {
            "type": "bulletList",
            "content": [
                item(
                    para(text("one")),
                    {
                        "type": "orderedList",
                        "attrs": {"start": 3},
                        "content": [item(para(text("three"))), item(para(text("four")))],
                    },
                ),
                item(para(text("two"))),
            ],
        },
        {
            "type": "codeBlock",
            "attrs": {"language": "python"},
            "content": [text("def f():\n    return '<tag>'  # ```")],
        },
        {"type": "blockquote", "content": [para(text("quoted")), para(text("引用 ✨"))]},
        para(),
        {"type": "codeBlock", "content": [text("no language")]},
        {"type": "horizontalRule"},
        {
            "type": "taskList",
            "content": [
                item(para(text("done")), kind="taskItem", checked=True),
                item(para(text("todo")), kind="taskItem", checked=False),
            ],
        },
        {"type": "heading", "attrs": {"level": 2}, "content": [text("終わり")]},
    ],
}

RICH_MD = """\
# Plan 🚀 計画

Plain, **bold *both***, ~~gone~~, `` x = `1` ``, [a link](https://example.com/a?b=1&c=2)\\
2nd line: \\<b>not html\\</b> & \\*stars\\* 中文 😀

- one

  3. three
  4. four
- two

````python
def f():
    return '<tag>'  # ```
````

> quoted
>
> 引用 ✨

```
no language
```

---

- [x] done
- [ ] todo

## 終わり"""

RICH_HTML = (
    "<h1>Plan 🚀 計画</h1>"
    "<p>Plain, <strong>bold <em>both</em></strong>, <s>gone</s>, <code>x = `1`</code>, "
    '<a href="https://example.com/a?b=1&amp;c=2" target="_blank" '
    'rel="noopener noreferrer nofollow"><u>a link</u></a><br>'
    "2nd line: &lt;b&gt;not html&lt;/b&gt; &amp; *stars* 中文 😀</p>"
    '<ul><li><p>one</p><ol start="3"><li><p>three</p></li><li><p>four</p></li></ol></li>'
    "<li><p>two</p></li></ul>"
    '<pre><code class="language-python">def f():\n'
    "    return &#x27;&lt;tag&gt;&#x27;  # ```</code></pre>"
    "<blockquote><p>quoted</p><p>引用 ✨</p></blockquote>"
    "<p></p><pre><code>no language</code></pre><hr>"
    '<ul data-type="taskList">'
    '<li data-type="taskItem" data-checked="true"><label><input type="checkbox" '
    'checked="checked"><span></span></label><div><p>done</p></div></li>'
    '<li data-type="taskItem" data-checked="false"><label><input type="checkbox">'
    "<span></span></label><div><p>todo</p></div></li></ul>"
    "<h2>終わり</h2>"
)


def rich() -> dict:
    """A fresh copy of ``RICH``."""
    return copy.deepcopy(RICH)


def as_tiptap_writes_it(doc: dict) -> dict:
    """``doc`` as Tiptap's ``getJSON`` would also write it: null node attributes
    (``codeBlock.language``, ``orderedList.type``, a paragraph's ``textAlign``), marks in
    another order. The seeding drops the nulls (as y-prosemirror does) and Yjs keeps marks
    unordered, so the server's JSON of it is ``doc`` itself."""
    out = copy.deepcopy(doc)

    def walk(nodes: list) -> None:
        for node in nodes:
            if node["type"] == "orderedList":
                node["attrs"]["type"] = None
            if node["type"] == "codeBlock":
                node.setdefault("attrs", {"language": None})
            if node["type"] == "paragraph":
                node["attrs"] = {"textAlign": None}
            if "marks" in node:
                node["marks"].reverse()
            walk(node.get("content", []))

    walk(out["content"])
    return out
