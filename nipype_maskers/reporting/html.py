"""The per-run HTML report: reportlets and the parameters table in one self-contained page.

Nothing is fetched when the page is opened: SVG reportlets are inlined (their element ids
prefixed, so that several figures never share an id), PNGs are embedded as data URIs, HTML
fragments (the regions tables) are inlined, the style sheet is in the page and the fonts are
the browser's own. There is no script. Needs no matplotlib.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1d1f23;
 font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Helvetica,Arial,sans-serif}
header{background:#1f3a5f;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;opacity:.85;font-size:13px}
nav{background:#fff;border-bottom:1px solid #d9dde3;padding:8px 28px;font-size:13px}
nav a{color:#1f3a5f;margin-right:16px;text-decoration:none}
main{max-width:1200px;margin:0 auto;padding:4px 28px 48px}
section{background:#fff;border:1px solid #d9dde3;border-radius:6px;padding:14px 18px;
 margin:18px 0}
section h2{margin:0 0 10px;font-size:17px;color:#1f3a5f}
.reportlet svg,.reportlet img{display:block;width:100%;height:auto}
.regions{max-height:520px;overflow:auto;margin-top:6px}
.regions h3{font-size:15px;margin:4px 0}
.regions p{font-size:13px;margin:4px 0 8px}
table{border-collapse:collapse;font-size:13px}
th,td{padding:3px 10px;border-bottom:1px solid #e7e9ec;text-align:left;vertical-align:top}
th{background:#f0f2f5;position:sticky;top:0}
td.value{font-family:ui-monospace,Menlo,Consolas,"DejaVu Sans Mono",monospace;
 white-space:pre-wrap;word-break:break-word}
tr.warn td{background:#fff3d1}
tr.bad td{background:#fbdcdc}
span.warn{color:#9a6200}
span.bad{color:#b3261e;font-weight:600}
.swatch{display:inline-block;width:14px;height:14px;border-radius:3px;
 border:1px solid rgba(0,0,0,.25)}
footer{color:#6b7280;font-size:12px;text-align:center;padding:16px}
"""


class Section(NamedTuple):
    """One part of the report: a heading and trusted HTML (made by this package)."""

    title: str
    body: str


def _prefix_ids(svg: str, prefix: str) -> str:
    """Prefix every id of an SVG document and every reference to one."""
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", svg)
    return re.sub(r'((?:xlink:)?href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{prefix}'
                  f'{m.group(2)}"', svg)


def inline_svg(svg: str, prefix: str) -> str:
    """An SVG document as an element for an HTML page: no XML prolog, ids prefixed."""
    start = svg.find("<svg")
    if start < 0:
        raise ValueError("reportlet: not an SVG document (no <svg> element)")
    return _prefix_ids(svg[start:], prefix)


def svg_title(svg: str) -> str | None:
    """The text of the SVG's first ``<title>``, if any."""
    match = re.search(r"<title>(.*?)</title>", svg, flags=re.S)
    return html.unescape(match.group(1)).strip() if match else None


def read_reportlet(path: str | os.PathLike, number: int) -> Section:
    """A reportlet file as a :class:`Section`: ``.svg`` inlined, ``.png`` embedded,
    ``.html`` fragment inlined. The title is the SVG's ``<title>``, the fragment's first
    ``<h3>``, else the file name."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".svg":
        svg = path.read_text(encoding="utf-8")
        body = f'<div class="reportlet">{inline_svg(svg, f"r{number}-")}</div>'
        return Section(svg_title(svg) or path.stem, body)
    if suffix == ".png":
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        body = (f'<div class="reportlet"><img alt="{html.escape(path.stem)}" '
                f'src="data:image/png;base64,{data}"></div>')
        return Section(path.stem, body)
    if suffix in (".html", ".htm"):
        fragment = path.read_text(encoding="utf-8")
        match = re.search(r"<h3>(.*?)</h3>", fragment, flags=re.S)
        if not match:
            return Section(path.stem, fragment)
        # the heading becomes the section's title, not repeated under it
        body = fragment[:match.start()] + fragment[match.end():]
        return Section(html.unescape(match.group(1)), body)
    raise ValueError(f"reportlets: '{path}' is a {suffix or 'extension-less'} file; expected "
                     ".svg, .png or .html")


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def flatten_parameters(parameters: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested parameters as (dotted name, text) rows; empty dicts are kept as ``{}``.

    Examples
    --------
    >>> flatten_parameters({'a': 1, 'b': {'c': [1, 2], 'd': None}})
    [('a', '1'), ('b.c', '[1, 2]'), ('b.d', 'null')]
    """
    rows = []
    for key, value in parameters.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(flatten_parameters(value, prefix=f"{name}."))
        else:
            rows.append((name, _format_value(value)))
    return rows


def parameters_table(parameters: Mapping[str, Any]) -> str:
    """The parameters as an HTML table (names and values escaped)."""
    rows = flatten_parameters(parameters)
    if not rows:
        return "<p>No parameters recorded.</p>"
    body = "\n".join(f'<tr><td>{html.escape(name)}</td><td class="value">'
                     f"{html.escape(value)}</td></tr>" for name, value in rows)
    return ("<table><thead><tr><th>parameter</th><th>value</th></tr></thead><tbody>\n"
            f"{body}\n</tbody></table>")


def assemble_report(title: str, sections: Sequence[Section],
                    parameters: Mapping[str, Any] | None = None, *, subtitle: str = "") -> str:
    """The whole page: a header, a table of contents, the sections and the parameters.

    Parameters
    ----------
    title : str
        The page's title (escaped).
    sections : sequence of Section
        In order; their bodies are trusted HTML.
    parameters : mapping, optional
        Shown last as a table (nested mappings flattened with dotted names).
    subtitle : str
        A line under the title (escaped).

    Returns
    -------
    str
        A complete HTML5 document.
    """
    parts = list(sections)
    parts.append(Section("Parameters", parameters_table(parameters or {})))
    nav = " ".join(f'<a href="#section-{i}">{html.escape(s.title)}</a>'
                   for i, s in enumerate(parts, start=1))
    body = "\n".join(f'<section id="section-{i}"><h2>{html.escape(s.title)}</h2>\n{s.body}\n'
                     "</section>" for i, s in enumerate(parts, start=1))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>\n"
        f"<nav>{nav}</nav>\n<main>\n{body}\n</main>\n"
        "<footer>nipype-maskers report: self-contained, nothing is loaded from the network"
        "</footer>\n</body>\n</html>\n"
    )
