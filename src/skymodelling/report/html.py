"""Self-contained HTML: figures as base64 PNG data URIs, no script, no external resource."""
from __future__ import annotations

import base64
import html
import struct

#: left edge of every figure in the page, CSS pixels (the body's padding; no centring), so
#: a screenshot can be searched for the figures at a known x offset
LEFT = 24

STYLE = f"""
body {{ margin: 0; padding: 8px {LEFT}px 40px {LEFT}px; font-family: sans-serif;
        font-size: 14px; color: #222; background: #fff; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 18px; margin-top: 28px; }}
h3 {{ font-size: 15px; }}
figure {{ margin: 0 0 18px 0; }}
img {{ display: block; }}
figcaption {{ font-size: 12px; color: #444; max-width: 1100px; }}
table {{ border-collapse: collapse; font-size: 12px; margin-bottom: 12px; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: left; }}
p.missing {{ color: #8a4b00; background: #fff4e0; padding: 6px; max-width: 1100px; }}
pre {{ font-size: 11px; background: #f6f6f6; padding: 6px; max-width: 1100px;
       white-space: pre-wrap; }}
"""


#: nothing may be loaded from anywhere: inline style and data: images only
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def esc(text) -> str:
    """HTML-escaped ``str(text)``."""
    return html.escape(str(text), quote=True)


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk.

    Examples
    --------
    >>> png_size(b"\\x89PNG\\r\\n\\x1a\\n" + b"\\0\\0\\0\\rIHDR" + struct.pack(">II", 3, 2))
    (3, 2)
    """
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return struct.unpack(">II", png[16:24])


def figure(png: bytes, caption: str, alt: str) -> str:
    """A ``<figure>`` with the PNG inline at its natural size and a caption (HTML)."""
    width, height = png_size(png)
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" width="{width}" '
            f'height="{height}" alt="{esc(alt)}"><figcaption>{caption}</figcaption></figure>')


def missing(text: str) -> str:
    """A paragraph saying what a section lacks and how to get it."""
    return f'<p class="missing">{esc(text)}</p>'


def table(rows, header, max_rows: int | None = None) -> str:
    """An HTML table of ``rows`` (sequences) under ``header``; at most ``max_rows`` shown."""
    rows = list(rows)
    shown = rows if max_rows is None else rows[:max_rows]
    out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in shown]
    out.append("</table>")
    if len(shown) < len(rows):
        out.append(f"<p>... and {len(rows) - len(shown)} more rows.</p>")
    return "".join(out)


def section(ident: str, title: str, body: str) -> str:
    return f'<section id="{esc(ident)}"><h2>{esc(title)}</h2>\n{body}\n</section>\n'


def page(title: str, body: str) -> str:
    """The whole document."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n"
            f"<body>\n{body}</body></html>\n")
