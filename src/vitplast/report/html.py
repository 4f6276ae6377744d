"""The self-contained HTML report: one file, figures embedded as base64 PNG, no external resources."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vitplast.report.tables import fmt

STATUS_COLORS = {"supported": "#d8f0d8", "not supported": "#f6d6d6", "inconclusive": "#f3ecc8", "excluded": "#e8e8e8"}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee}.note{color:#555;font-size:.9em}
.verdict{padding:.8em 1em;border-radius:6px;margin:1em 0}
details{margin:.5em 0}summary{cursor:pointer;font-weight:600}
"""


@dataclass
class Section:
    title: str
    html: str


@dataclass
class Page:
    title: str
    intro: str = ""
    sections: list[Section] = field(default_factory=list)

    def add(self, title: str, *parts: str) -> None:
        self.sections.append(Section(title, "\n".join(parts)))

    def render(self) -> str:
        body = "\n".join(f"<h2>{html.escape(s.title)}</h2>\n{s.html}" for s in self.sections)
        return (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>\n"
            f"<h1>{html.escape(self.title)}</h1>\n{self.intro}\n{body}\n</body></html>\n"
        )


def image(path: Path, caption: str) -> str:
    """An ``<img>`` with the PNG inlined as a data URI, and its caption."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption class='note'>{html.escape(caption)}</figcaption></figure>")


def table(df: pd.DataFrame, index: bool = False, status_col: str | None = None) -> str:
    """An HTML table; numbers right-aligned; rows coloured by ``status_col`` when given."""
    if df is None or df.empty:
        return "<p class='note'>(no data)</p>"
    if index:
        df = df.reset_index()
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        style = ""
        if status_col is not None:
            style = f" style='background:{STATUS_COLORS.get(str(r[status_col]), '#fff')}'"
        cells = []
        for v in r:
            cls = " class='num'" if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}>{html.escape(fmt(v))}</td>")
        rows.append(f"<tr{style}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def paragraph(text: str, cls: str = "") -> str:
    c = f" class='{cls}'" if cls else ""
    return f"<p{c}>{html.escape(text)}</p>"


def verdict(text: str, status: str) -> str:
    return f"<div class='verdict' style='background:{STATUS_COLORS.get(status, '#eee')}'>{html.escape(text)}</div>"


def details(summary: str, inner: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>{inner}</details>"
