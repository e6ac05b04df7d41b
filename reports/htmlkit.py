"""Small HTML building blocks shared by the report and the comparison pages.

Every piece of text from a results file passes through :func:`esc`; only :class:`Raw` (markup this
package built itself) is inserted as is. The CSS is inlined so a page opens offline.
"""
from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from reports.results import printable


@dataclass(frozen=True)
class Raw:
    """Markup built by this package (already escaped)."""

    html: str


@dataclass(frozen=True)
class Td:
    """A table cell with a CSS class and an optional tooltip."""

    content: Any
    cls: str = ""
    title: str = ""


def esc(value: Any) -> str:
    if isinstance(value, Raw):
        return value.html
    return html.escape(printable("" if value is None else str(value)), quote=True)


def css() -> str:
    return resources.files("reports").joinpath("style.css").read_text(encoding="utf-8")


def page(title: str, parts: Iterable[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{css()}</style></head>\n<body><main>\n"
            + "\n".join(parts) + "\n</main></body></html>\n")


def table(headers: list[Any], rows: Iterable[list[Any]], num: Iterable[int] = (), cls: str = "",
          bare: Iterable[int] = (), stack: bool | None = None) -> str:
    """A table that fits the page's width: long cells wrap, no box scrolls sideways, no column is
    cut. ``num`` = indexes of right-aligned numeric columns. A ``stack`` table (by default one of
    more than 6 columns) turns, on a narrow page (style.css), each row into a wrapped line of
    "header value" items: every cell carries its column's header as ``data-label``, except the
    columns in ``bare`` (self-explanatory values such as a loss name)."""
    num, bare = set(num), set(bare)
    if stack is None:
        stack = len(headers) > 6
    cls = " ".join(x for x in (cls, "stack" if stack else "") if x)
    head = "".join(f"<th class=\"num\">{esc(h)}</th>" if i in num else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    labels = [esc(h) for h in headers]
    body = []
    for row in rows:
        tds = []
        for i, c in enumerate(row):
            cell = c if isinstance(c, Td) else Td(c)
            classes = " ".join(x for x in (cell.cls, "num" if i in num else "") if x)
            attrs = (f" class=\"{esc(classes)}\"" if classes else "") + (
                f" title=\"{esc(cell.title)}\"" if cell.title else "") + (
                f" data-label=\"{labels[i]}\"" if i < len(labels) and i not in bare else "")
            tds.append(f"<td{attrs}>{esc(cell.content)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return (f"<div class=\"tablewrap\"><table class=\"{esc(cls)}\"><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def badge(verdict: str, text: str | None = None, extra: str = "") -> str:
    return f"<span class=\"badge {esc(verdict)} {esc(extra)}\">{esc(text or verdict)}</span>"


def img(uri: str | None, alt: str) -> str:
    if not uri:
        return f"<p class=\"note\">{esc(alt)}: no data.</p>"
    if not uri.startswith("data:image/png;base64,"):  # only our own embedded PNGs, never a URL
        raise ValueError("plots must be embedded PNG data URIs")
    return f"<img class=\"plot\" alt=\"{esc(alt)}\" src=\"{uri}\">"


def pre(text: Any) -> str:
    return f"<pre>{esc(text)}</pre>"
