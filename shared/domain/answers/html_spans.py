"""From text offsets in an HTML page to the ranges Label Studio stores for HyperText regions.

Label Studio 1.23's editor (``tags/object/RichText/domManager.ts``) saves a HyperText span as

- ``start``/``end``: the XPath of the text node where it starts/ends, relative to the page's root (the
  iframe's ``<body>``, or the ``<div>`` it is put in with ``inline="true"``): ``/p[2]/text()[1]``, each step
  the node's name and its number among the siblings of that name (``text()`` for text nodes);
- ``startOffset``/``endOffset``: the offset within that text node, in UTF-16 code units (a DOM Range's);
- ``globalOffsets`` ``{start, end}``: offsets in the page's text counted its own way: every text node of
  the root, in document order, all its characters (code points; whitespace the browser hides counts
  too), plus one for each ``<br>``.  On loading a region the editor takes the XPath range when the path
  names a text node of the page, else the global offsets.

So ``PageText.text`` is that text (text nodes joined, a newline for each ``<br>``): a quote found there at
``[start, end)`` has those global offsets, and the XPath range follows from the text node holding each end.

XPaths only hold if the page's tree is the browser's, so the page is parsed with html5lib, which follows the
WHATWG parsing algorithm browsers implement (a ``<tr>`` outside a ``<tbody>`` gets one, a ``<p>`` is closed
by the next block, ``<head>`` text is not in ``<body>``), not with a lenient parser that keeps the tags as
written.  Label Studio first passes the page through ``sanitize-html`` (scripts and on* attributes go;
neither holds text of the body) and the browser parses the result: for a page that is not well formed the
two trees may still differ (so may a page nested deeper than the 512 levels Chromium's parser builds); the
global offsets, which only count text in document order, then still place the span.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any
from xml.dom import Node

import html5lib

PAGE_ROOT = "body"  # the iframe's root, as Label Studio renders a HyperText by default
INLINE_ROOT = "div"  # with inline="true" the page is the innerHTML of a <div>


@dataclass(frozen=True)
class TextNode:
    path: str  # its XPath from the root, as the editor writes it: /p[2]/text()[1]
    start: int  # its first character's global offset
    text: str

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _segment(node: Any) -> str:
    return "text()" if node.nodeType == Node.TEXT_NODE else str(node.nodeName).lower()


def _root(html: str, inline: bool) -> Any:
    if inline:
        return html5lib.parseFragment(html, container=INLINE_ROOT, treebuilder="dom")
    document = html5lib.parse(html, treebuilder="dom")  # always <html> with a <head> and a <body>
    return next(node for node in document.documentElement.childNodes if node.nodeName == PAGE_ROOT)


def _children(node: Any, path: str) -> list[tuple[Any, str]]:
    """A node's children with their XPaths, adjacent text nodes as one (a ``str``).

    html5lib's DOM builder adds each run of characters as a text node of its own (``y &amp; z`` gives three);
    a browser appends them to the text node before, so they are joined here to number them as the browser does
    (minidom's ``normalize`` would, but recursively: pages nest deeper than Python's recursion limit)."""
    counts: dict[str, int] = {}
    children: list[tuple[Any, str]] = []
    for child in node.childNodes:
        if child.nodeType == Node.TEXT_NODE and children and isinstance(children[-1][0], str):
            children[-1] = (children[-1][0] + child.data, children[-1][1])
            continue
        name = _segment(child)
        counts[name] = counts.get(name, 0) + 1
        step = f"{path}/{name}[{counts[name]}]"
        children.append((child.data, step) if child.nodeType == Node.TEXT_NODE else (child, step))
    return children


class PageText:
    """The text of an HTML page as Label Studio's editor counts it, and its text nodes' XPaths."""

    def __init__(self, html: str, inline: bool = False) -> None:
        self.nodes: list[TextNode] = []
        pieces: list[str] = []
        offset = 0
        # Depth first, in document order, without recursion (pages nest deeply): (node, its path) pairs.
        stack: list[tuple[Any, str]] = [(_root(html, inline), "")]
        while stack:
            node, path = stack.pop()
            if isinstance(node, str):  # a text node's text
                self.nodes.append(TextNode(path, offset, node))
                pieces.append(node)
                offset += len(node)
                continue
            if str(node.nodeName).lower() == "br":
                pieces.append("\n")  # the editor counts one character for each <br>
                offset += 1
            stack.extend(reversed(_children(node, path)))
        self.text = "".join(pieces)
        self._starts = [node.start for node in self.nodes]

    def _holding(self, offset: int, at_end: bool) -> TextNode | None:
        """The text node holding the character at ``offset`` (``at_end``: the one ending there), as the
        editor's ``findTextBlock`` picks it; None when a ``<br>`` or nothing is there."""
        index = (
            bisect.bisect_left(self._starts, offset) - 1 if at_end else bisect.bisect_right(self._starts, offset) - 1
        )
        if index < 0:
            return None
        node = self.nodes[index]
        inside = node.start < offset <= node.end if at_end else node.start <= offset < node.end
        return node if inside else None

    def xpath_range(self, start: int, end: int) -> dict[str, Any] | None:
        """The value Label Studio stores for the page's text ``[start, end)``: XPath range and global offsets;
        None when an end is not in a text node (a span cannot start or end on a ``<br>``)."""
        first, last = self._holding(start, at_end=False), self._holding(end, at_end=True)
        if first is None or last is None:
            return None
        return {
            "start": first.path,
            "startOffset": _utf16_length(first.text[: start - first.start]),
            "end": last.path,
            "endOffset": _utf16_length(last.text[: end - last.start]),
            "globalOffsets": {"start": start, "end": end},
        }
