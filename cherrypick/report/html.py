"""One self-contained HTML page: summary, plots as data URIs, the trial table.

No external files, so the page can be mailed or attached to an issue as it is.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING

from cherrypick.report.frame import formatters

if TYPE_CHECKING:
    from cherrypick.report import Report, ReportFiles

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
pre.summary { background: #f4f6f8; padding: 1em; border-radius: 6px; white-space: pre-wrap; }
img { max-width: 100%; border: 1px solid #ddd; }
table.trials { border-collapse: collapse; font-size: 0.85em; }
table.trials th, table.trials td { padding: 0.25em 0.6em; border-bottom: 1px solid #e3e3e3; }
table.trials th { background: #f4f6f8; text-align: left; }
"""

_PLOTS = (
    ("Convergence", "convergence", "best feasible objective against trials run"),
    ("Cost against runtime", "cost_runtime", "every tried configuration, limits, Pareto front"),
    ("Where the time goes", "breakdown", "per-layer and per-part time of the recommendation"),
)


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def render_html(report: Report, summary_text: str, files: ReportFiles) -> str:
    title = f"cherrypick report: {report.store_path.name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<pre class="summary">{html.escape(summary_text)}</pre>',
    ]
    for heading, name, alt in _PLOTS:
        png: Path = getattr(files, name)
        parts.append(f"<h2>{heading}</h2>")
        parts.append(f'<img src="{_data_uri(png)}" alt="{html.escape(alt)}">')
    table = report.frame.to_html(
        index=False, na_rep="", classes="trials", border=0, formatters=formatters(report.frame)
    )
    parts += ["<h2>Trials</h2>", str(table), "</body></html>"]
    return "\n".join(parts)
