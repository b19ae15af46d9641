"""The server's rendering of a note: ProseMirror JSON → Markdown and → HTML. Pure: no I/O, no ORM.

``render_content(pm_json)`` returns the ``data.content`` the server stores ({md, html, json}),
rendered from the ProseMirror JSON of the note's Yjs document (``notes.yjs``). It accepts any
JSON object (a document from the Yjs state may hold anything a client wrote) and raises only
``RecursionError`` for structures nested deeper than Python recurses; the caller guards.

- Node and mark names: Tiptap's (``bulletList``, ``bold``…) and ProseMirror's basic-schema
  snake_case ones (``bullet_list``, ``strong``…, as y-prosemirror examples use) are read alike
  (``ALIASES``). Known nodes: doc, paragraph, heading, blockquote, bulletList, orderedList,
  listItem, taskList, taskItem, codeBlock, hardBreak, horizontalRule, image, text; marks: bold,
  italic, strike, underline, code, link. An unknown node renders its children in its place;
  an unknown mark renders nothing.
- HTML: built by ``prosemirror``'s ``DOMSerializer`` (the Python port of prosemirror-model's,
  the serializer Tiptap's ``getHTML`` runs) from a Tiptap StarterKit schema spelled out here,
  so marks nest as in the editor. It escapes every text and attribute value; only the tags
  of the ``toDOM`` specs below are produced, and a link or image whose URL is not safe
  (``safe_url``) loses its ``href`` / is dropped.
- Markdown: written here (no maintained Python ProseMirror → Markdown serializer exists; the
  rules follow prosemirror-markdown's): CommonMark with GFM strikethrough and task items,
  tight lists, fenced code, ``\\`` hard breaks; underline has no Markdown and renders as
  plain text. Text is escaped (``\\`*_~[]<`` and an entity's ``&`` everywhere, block
  markers at a line start).

docs/notes.md (*Rendering*) has the whole table.
"""

from __future__ import annotations

import html
import re
from typing import Any

from prosemirror.model import DOMSerializer, Node, NodeSpec, Schema

#: snake_case (ProseMirror basic schema) → Tiptap names.
ALIASES = {
    "bullet_list": "bulletList",
    "ordered_list": "orderedList",
    "list_item": "listItem",
    "task_list": "taskList",
    "task_item": "taskItem",
    "code_block": "codeBlock",
    "hard_break": "hardBreak",
    "horizontal_rule": "horizontalRule",
    "strong": "bold",
    "em": "italic",
}
#: Nodes that hold no content (their ``content``, if any, is ignored).
LEAVES = frozenset({"hardBreak", "horizontalRule", "image"})
#: Nodes that flow within a line.
INLINE = frozenset({"text", "hardBreak", "image"})
LISTS = frozenset({"bulletList", "orderedList", "taskList"})
_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_IMAGE_SCHEMES = frozenset({"http", "https"})
_DATA_IMAGE = re.compile(r"data:image/(png|gif|jpeg|webp)[;,]", re.IGNORECASE)
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_IGNORED_IN_URL = re.compile(r"[\x00-\x20\x7f]")


def safe_url(url: Any, *, image: bool = False) -> str | None:
    """``url`` if it is a string a browser would not run: relative, or with a scheme from
    ``_LINK_SCHEMES`` (images: ``http(s)`` and ``data:image/`` png/gif/jpeg/webp); else None.
    Checked as a browser or a Markdown renderer may read it: character references decoded,
    control characters and whitespace removed."""
    if not isinstance(url, str) or not url.strip():
        return None
    cleaned = _IGNORED_IN_URL.sub("", html.unescape(url))
    if image and _DATA_IMAGE.match(cleaned):
        return url.strip()
    scheme = _SCHEME.match(cleaned)
    if scheme:
        allowed = _IMAGE_SCHEMES if image else _LINK_SCHEMES
        return url.strip() if scheme.group(1).lower() in allowed else None
    head = re.split(r"[/?#]", cleaned, maxsplit=1)[0]
    return None if ":" in head else url.strip()


def _int(value: Any, default: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return default
    return max(low, min(high, int(value)))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --- cleaning: known names, known attributes ---------------------------------------------------

#: node → its attributes and their defaults (what the renderers read).
NODE_ATTRS: dict[str, dict[str, Any]] = {
    "doc": {},
    "paragraph": {},
    "heading": {"level": 1},
    "blockquote": {},
    "bulletList": {},
    "orderedList": {"start": 1, "type": None},
    "listItem": {},
    "taskList": {},
    "taskItem": {"checked": False},
    "codeBlock": {"language": None},
    "hardBreak": {},
    "horizontalRule": {},
    "image": {"src": None, "alt": None, "title": None},
    "text": {},
}
MARK_ATTRS: dict[str, dict[str, Any]] = {
    "bold": {},
    "italic": {},
    "strike": {},
    "underline": {},
    "code": {},
    "link": {"href": None, "title": None, "target": None},
}


def _attrs(known: dict[str, Any], given: Any) -> dict[str, Any]:
    given = given if isinstance(given, dict) else {}
    return {name: given.get(name, default) for name, default in known.items()}


def clean(nodes: Any) -> list[dict]:
    """``nodes`` (a ProseMirror ``content`` list) with Tiptap names, only known nodes (an
    unknown one replaced by its cleaned children), only known marks and attributes, no empty
    or non-string text. What both renderers read."""
    out: list[dict] = []
    for node in nodes if isinstance(nodes, list) else []:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            continue
        kind = ALIASES.get(node["type"], node["type"])
        if kind not in NODE_ATTRS:
            out.extend(clean(node.get("content")))
        elif kind == "text":
            if isinstance(node.get("text"), str) and node["text"]:
                out.append({"type": "text", "text": node["text"], "marks": _clean_marks(node)})
        else:
            cleaned: dict[str, Any] = {
                "type": kind,
                "attrs": _attrs(NODE_ATTRS[kind], node.get("attrs")),
            }
            if kind == "orderedList" and "start" not in (node.get("attrs") or {}):
                cleaned["attrs"]["start"] = (node.get("attrs") or {}).get("order", 1)
            cleaned["content"] = [] if kind in LEAVES else clean(node.get("content"))
            out.append(cleaned)
    return out


def _clean_marks(node: dict) -> list[dict]:
    marks: list[dict[str, Any]] = []
    given = node.get("marks")
    for mark in given if isinstance(given, list) else []:
        if isinstance(mark, dict) and isinstance(mark.get("type"), str):
            kind = ALIASES.get(mark["type"], mark["type"])
            if kind in MARK_ATTRS and all(m["type"] != kind for m in marks):
                marks.append({"type": kind, "attrs": _attrs(MARK_ATTRS[kind], mark.get("attrs"))})
    return marks


# --- HTML ---------------------------------------------------------------------------------------


def _ordered_list_dom(node: Node) -> list:
    start = _int(node.attrs["start"], 1, -(2**31), 2**31 - 1)
    kind = node.attrs["type"] if node.attrs["type"] in ("1", "a", "A", "i", "I") else None
    return ["ol", {"start": str(start) if start != 1 else None, "type": kind}, 0]


def _task_item_dom(node: Node) -> list:
    checked = node.attrs["checked"] is True
    box = ["input", {"type": "checkbox", "checked": "checked" if checked else None}]
    return [
        "li",
        {"data-type": "taskItem", "data-checked": "true" if checked else "false"},
        ["label", box, ["span"]],
        ["div", 0],
    ]


def _code_block_dom(node: Node) -> list:
    language = _str(node.attrs["language"])
    return ["pre", ["code", {"class": f"language-{language}" if language else None}, 0]]


def _image_dom(node: Node) -> Any:
    src = safe_url(node.attrs["src"], image=True)
    if src is None:
        return ""  # no image without a safe source
    attrs = {"src": src, "alt": _str(node.attrs["alt"]), "title": _str(node.attrs["title"])}
    return ["img", attrs]


def _link_dom(mark: Any, inline: bool) -> list:
    attrs = {
        "href": safe_url(mark.attrs["href"]),
        "title": _str(mark.attrs["title"]),
        "target": "_blank" if mark.attrs["target"] == "_blank" else None,
        "rel": "noopener noreferrer nofollow",
    }
    return ["a", attrs, 0]


def _spec(to_dom: Any, content: str | None = "block*", inline: bool = False) -> NodeSpec:
    """A node spec. ``content`` is documentation only: nodes are built with ``create``,
    which does not check it, so a malformed document still renders (a leaf has None)."""
    spec: NodeSpec = {"group": "inline" if inline else "block"}
    if inline:
        spec["inline"] = True
    if content is not None:
        spec["content"] = content
    if to_dom is not None:
        spec["toDOM"] = to_dom
    return spec


def _with_attrs(name: str, spec: NodeSpec) -> NodeSpec:
    spec["attrs"] = {key: {"default": value} for key, value in NODE_ATTRS[name].items()}
    return spec


SCHEMA = Schema(
    {
        "nodes": {
            "doc": {"content": "block*"},
            "paragraph": _spec(lambda node: ["p", 0], "inline*"),
            "heading": _with_attrs(
                "heading",
                _spec(lambda node: [f"h{_int(node.attrs['level'], 1, 1, 6)}", 0], "inline*"),
            ),
            "blockquote": _spec(lambda node: ["blockquote", 0]),
            "bulletList": _spec(lambda node: ["ul", 0]),
            "orderedList": _with_attrs("orderedList", _spec(_ordered_list_dom)),
            "listItem": _spec(lambda node: ["li", 0]),
            "taskList": _spec(lambda node: ["ul", {"data-type": "taskList"}, 0]),
            "taskItem": _with_attrs("taskItem", _spec(_task_item_dom)),
            "codeBlock": _with_attrs("codeBlock", _spec(_code_block_dom, "text*")),
            "hardBreak": _spec(lambda node: ["br"], None, inline=True),
            "horizontalRule": _spec(lambda node: ["hr"], None),
            "image": _with_attrs("image", _spec(_image_dom, None, inline=True)),
            "text": {"group": "inline"},
        },
        # Rank order = nesting order (outermost first), as in Tiptap's StarterKit.
        "marks": {
            "link": {
                "attrs": {key: {"default": None} for key in MARK_ATTRS["link"]},
                "toDOM": _link_dom,
            },
            "bold": {"toDOM": lambda mark, inline: ["strong", 0]},
            "code": {"toDOM": lambda mark, inline: ["code", 0]},
            "italic": {"toDOM": lambda mark, inline: ["em", 0]},
            "strike": {"toDOM": lambda mark, inline: ["s", 0]},
            "underline": {"toDOM": lambda mark, inline: ["u", 0]},
        },
    }
)


def to_html(pm_json: Any) -> str:
    """The HTML of a ProseMirror document (module doc: names, safety)."""
    content = clean(pm_json.get("content") if isinstance(pm_json, dict) else None)
    doc = Node.from_json(SCHEMA, {"type": "doc", "content": content})
    return str(DOMSerializer.from_schema(SCHEMA).serialize_fragment(doc.content))


# --- Markdown -----------------------------------------------------------------------------------

#: Escaped everywhere: Markdown's inline syntax, ``<`` (HTML in Markdown) and an ``&`` that
#: would start an entity.
_ESCAPED = re.compile(r"[\\`*_~\[\]<]|&(?=#?[0-9A-Za-z]+;)")
_LINE_START = re.compile(r"^(\s*)([#>+\-=:|])")
_LINE_START_NUMBER = re.compile(r"^(\s*\d+)([.)])")
_MD_MARKS = {"bold": "**", "italic": "*", "strike": "~~"}


def _escape(text: str, line_start: bool) -> str:
    def one(match: re.Match) -> str:
        i, char = match.start(), match.group()
        intraword = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
        return char if char == "_" and intraword else "\\" + char

    text = _ESCAPED.sub(one, text)
    if line_start:
        text = _LINE_START_NUMBER.sub(r"\1\\\2", _LINE_START.sub(r"\1\\\2", text))
    return text


def _url(url: str) -> str:
    return "".join(f"%{ord(c):02X}" if c in " ()<>\t\n\r" else c for c in url)


def _title(title: Any) -> str:
    if not _str(title):
        return ""
    return ' "' + title.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _md_image(node: dict) -> str:
    src = safe_url(node["attrs"]["src"], image=True)
    if src is None:
        return ""
    alt = _escape(_str(node["attrs"]["alt"]) or "", False)
    return f"![{alt}]({_url(src)}{_title(node['attrs']['title'])})"


def _delimiters(mark: dict) -> tuple[str, str] | None:
    if mark["type"] in _MD_MARKS:
        return _MD_MARKS[mark["type"]], _MD_MARKS[mark["type"]]
    if mark["type"] == "link":
        href = safe_url(mark["attrs"]["href"])
        return ("[", f"]({_url(href)}{_title(mark['attrs']['title'])})") if href else None
    return None  # underline, code (written with its text), anything else


def _code_span(text: str) -> str:
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest or (text.startswith(" ") and text.endswith(" ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_inline(nodes: list[dict]) -> str:
    """Inline nodes as one Markdown paragraph: marks opened and closed as they change from
    node to node (outermost first), enclosing whitespace moved outside the delimiters."""
    out: list[str] = []
    active: list[tuple[dict, tuple[str, str]]] = []
    trailing = ""
    at_line_start = True
    last = max((i for i, n in enumerate(nodes) if n["type"] != "hardBreak"), default=-1)
    for index, node in enumerate([*nodes, None]):
        marks = [] if node is None else node.get("marks") or []
        wanted = [(m, d) for m in marks if (d := _delimiters(m)) is not None]
        text = node["text"] if node is not None and node["type"] == "text" else None
        leading = trailing
        trailing = ""
        if text is not None and wanted:
            inner = text.strip()
            leading += text[: len(text) - len(text.lstrip())]
            trailing = text[len(text.rstrip()) :] if inner else ""
            text = inner
            if not inner:  # only whitespace: inside whatever is open, nothing opened
                wanted = list(active)
        keep = 0
        while keep < min(len(active), len(wanted)) and active[keep][0] == wanted[keep][0]:
            keep += 1
        while len(active) > keep:
            out.append(active.pop()[1][1])
        out.append(leading)
        if node is None:
            break
        if node["type"] == "hardBreak":
            if index < last:  # a break at the end of a paragraph means nothing in Markdown
                out.append("\\\n")
                at_line_start = True
            continue
        for pair in wanted[keep:]:
            active.append(pair)
            out.append(pair[1][0])
            at_line_start = False
        if node["type"] == "image":
            out.append(_md_image(node))
        elif node["type"] not in INLINE:  # a block where inline content belongs
            out.append(_md_block(node))
        elif text and any(m["type"] == "code" for m in marks):
            out.append(_code_span(text))
        elif text:
            lines = text.split("\n")
            out.append(
                "\n".join(_escape(line, at_line_start or i > 0) for i, line in enumerate(lines))
            )
        at_line_start = False
    return "".join(out)


def _prefixed(text: str, first: str, rest: str) -> str:
    lines = text.split("\n")
    out = [(first + lines[0]).rstrip() if lines[0] else first.rstrip()]
    out += [(rest + line).rstrip() if line else rest.rstrip() for line in lines[1:]]
    return "\n".join(out)


def _md_block(node: dict) -> str:
    kind, attrs, content = node["type"], node["attrs"], node["content"]
    if kind == "heading":
        return "#" * _int(attrs["level"], 1, 1, 6) + " " + _md_inline(content)
    if kind == "blockquote":
        return _prefixed(_md_blocks(content), "> ", "> ")
    if kind == "codeBlock":
        code = "".join(n["text"] for n in content if n["type"] == "text")
        fence = "`" * max(3, max((len(r) + 1 for r in re.findall("`+", code)), default=0))
        language = (_str(attrs["language"]) or "").split()
        info = language[0].replace("`", "") if language else ""
        return f"{fence}{info}\n{code}\n{fence}" if code else f"{fence}{info}\n{fence}"
    if kind == "horizontalRule":
        return "---"
    if kind in LISTS:
        start = _int(attrs.get("start"), 1, 0, 999_999_999)
        items = []
        for number, item in enumerate(content, start):
            if kind == "orderedList":
                marker = f"{number}. "
            elif kind == "taskList":
                marker = "- [x] " if item.get("attrs", {}).get("checked") is True else "- [ ] "
            else:
                marker = "- "
            is_item = item["type"] in ("listItem", "taskItem")
            body = _md_blocks(item["content"] if is_item else [item], in_item=True)
            items.append(_prefixed(body, marker, " " * (2 if kind == "taskList" else len(marker))))
        return "\n".join(items)
    if kind in ("listItem", "taskItem", "doc"):  # outside a list: its content
        return _md_blocks(content)
    return _md_inline(content)  # paragraph


def _md_blocks(nodes: list[dict], in_item: bool = False) -> str:
    """Block nodes separated by a blank line — inside a list item a list right after a
    paragraph by a newline (tight lists), unless it is an ordered list not starting at 1
    (it could not interrupt the paragraph); consecutive inline nodes form a paragraph;
    blocks that render as nothing (empty paragraphs) are left out."""
    blocks: list[tuple[dict, str]] = []
    run: list[dict] = []
    for node in [*nodes, None]:
        if node is not None and node["type"] in INLINE:
            run.append(node)
            continue
        if run:
            blocks.append(({"type": "paragraph"}, _md_inline(run)))
            run = []
        if node is not None:
            blocks.append((node, _md_block(node)))
    blocks = [(node, text) for node, text in blocks if text]
    out = ""
    for i, (node, text) in enumerate(blocks):
        if i:
            tight = in_item and node["type"] in LISTS and blocks[i - 1][0]["type"] == "paragraph"
            if node["type"] == "orderedList" and _int(node["attrs"]["start"], 1, 0, 2) != 1:
                tight = False
            out += "\n" if tight else "\n\n"
        out += text
    return out


def to_markdown(pm_json: Any) -> str:
    """The Markdown of a ProseMirror document (module doc: rules)."""
    return _md_blocks(clean(pm_json.get("content") if isinstance(pm_json, dict) else None))


def render_content(pm_json: dict) -> dict[str, Any]:
    """``{"md", "html", "json"}`` for a ProseMirror document (``json`` is ``pm_json``)."""
    return {"md": to_markdown(pm_json), "html": to_html(pm_json), "json": pm_json}
