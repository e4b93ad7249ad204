"""The HTML pieces every ocula report shares: one self-contained page, sections, tables and
embedded PNGs. Every string from the user's data is escaped here."""

from __future__ import annotations

import base64
from html import escape
from typing import Any


def img(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>\n{body}\n</section>'


def table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1.5em; color: #1d2430; }}
h1 {{ font-size: 1.5em; margin-bottom: .2em; }} h2 {{ border-bottom: 1px solid #dde2ea; padding-bottom: .2em; }}
.meta {{ color: #5a6577; }} code {{ background: #f1f3f7; padding: 0 .3em; border-radius: 3px; }}
.cards {{ display: flex; flex-wrap: wrap; gap: .6em; }}
.card {{ background: #f5f7fb; border-radius: 8px; padding: .6em 1em; min-width: 8em; }}
.card .value {{ font-size: 1.5em; font-weight: 600; }} .card .label {{ color: #5a6577; font-size: .85em; }}
.finding {{ border-left: 5px solid #8da2c0; background: #f8f9fc; padding: .4em 1em; margin: .8em 0; }}
.finding.major {{ border-color: #d64545; }} .finding.minor {{ border-color: #e0a030; }}
.finding.info {{ border-color: #3c9d5d; }} .finding h3 {{ margin: .3em 0; }}
.badge {{ font-size: .75em; text-transform: uppercase; letter-spacing: .05em; color: #5a6577; }}
.sub {{ margin: .3em 0 0; font-weight: 600; font-size: .9em; }}
img {{ max-width: 100%; }} table {{ border-collapse: collapse; margin: .6em 0; }}
th, td {{ padding: .25em .7em; border-bottom: 1px solid #e6e9ef; text-align: left; }}
table.numbers td:not(:first-child) {{ text-align: right; }}
.gallery {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: .8em; }}
figure {{ margin: 0; font-size: .8em; }} figure img {{ width: 160px; height: auto; border-radius: 4px; }}
figure.explained {{ grid-column: span 3; }} figure.explained img {{ margin-right: 4px; }}
.path {{ color: #7a8496; word-break: break-all; }}
footer {{ color: #5a6577; font-size: .85em; margin-top: 2em; border-top: 1px solid #dde2ea; padding-top: .6em; }}
</style></head>
<body>
{body}
</body></html>
"""
