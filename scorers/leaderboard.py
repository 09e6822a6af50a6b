"""Leaderboard site: scored submissions -> one table per task and length (Markdown + static HTML from
the Jinja2 templates in `cards/`) and accuracy-vs-sparsity plots with the Pareto frontier.

Entries are untrusted: HTML is autoescaped, Markdown cells are escaped, plot labels cannot trigger
matplotlib's mathtext.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError, InputError
from ..io import write_text
from .report import GroupSummary, summaries_from_report

_MAX_LABEL = 40


@dataclass
class Entry:
    """One scored submission: its file name, meta and per task-and-length summaries."""

    name: str
    meta: dict[str, Any]
    summaries: list[GroupSummary]

    def text(self, key: str) -> str:
        value = self.meta.get(key)
        return "" if value is None else str(value)

    @property
    def sparsity(self) -> float | None:
        value = self.meta.get("sparsity")
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0
        return float(value) if ok else None


def load_report_entry(path: Path) -> Entry:
    """An entry from a JSON report written by `sftasks score`."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise DataError(f"{path} is not a UTF-8 JSON score report") from None
    if not isinstance(report, dict):
        raise DataError(f"{path} is not a score report written by `sftasks score`")
    meta = report.get("meta") if isinstance(report.get("meta"), dict) else {}
    return Entry(path.name.removesuffix(".json").removesuffix(".scores"), meta, summaries_from_report(report))


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher sparsity, higher accuracy)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (ox >= x and oy >= y) and (ox > x or oy > y) for j, (ox, oy) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def build_groups(entries: list[Entry]) -> list[dict[str, Any]]:
    """One group per (task, length): rows ranked by mean score (ties: higher sparsity first)."""
    from ..lengths import parse_length

    by_key: dict[tuple[str, str], list[tuple[Entry, GroupSummary]]] = {}
    for entry in entries:
        for summary in entry.summaries:
            by_key.setdefault((summary.task, summary.length), []).append((entry, summary))

    def length_key(item):
        try:
            return (item[0][0], parse_length(item[0][1]))
        except Exception:
            return (item[0][0], 0)

    groups = []
    for (task, length), members in sorted(by_key.items(), key=length_key):
        members.sort(key=lambda m: (-m[1].mean, -(m[0].sparsity or 0.0), m[0].name))
        plotted = [i for i, (e, _) in enumerate(members) if e.sparsity is not None]
        front = {plotted[i] for i in pareto_front([(members[k][0].sparsity, members[k][1].mean) for k in plotted])}
        rows = []
        for rank, (entry, s) in enumerate(members, 1):
            rows.append({
                "rank": rank, "entry": entry.name, "method": entry.text("method") or entry.name,
                "model": entry.text("model"), "sparsity": entry.sparsity, "mean": s.mean, "ci_low": s.ci_low,
                "ci_high": s.ci_high, "n": s.n, "unparsed": s.unparsed, "missing": s.missing,
                "params": _params_text(entry.meta.get("params")), "code_version": entry.text("code_version"),
                "pareto": (rank - 1) in front,
            })
        groups.append({"task": task, "length": length, "rows": rows, "slug": _slug(f"{task}-{length}")})
    return groups


def _params_text(params: Any) -> str:
    if not isinstance(params, dict) or not params:
        return ""
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items(), key=lambda kv: str(kv[0])))


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)


def _plot_label(text: str) -> str:
    """Safe for matplotlib: `$` would start mathtext; long names are cut."""
    text = text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "…"
    return text.replace("\\", "\\\\").replace("$", r"\$")


def plot_group(group: dict[str, Any], path: Path) -> bool:
    """Accuracy against sparsity for one task and length, Pareto frontier drawn; False if nothing to plot."""
    rows = [r for r in group["rows"] if r["sparsity"] is not None]
    if not rows:
        return False
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, renders with Agg
    except ModuleNotFoundError:
        raise InputError("the leaderboard plots need matplotlib: pip install 'sftasks[plots]'") from None
    from ..io import atomic_path

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    xs, ys = [r["sparsity"] for r in rows], [r["mean"] for r in rows]
    ax.errorbar(xs, ys, yerr=[[max(0.0, r["mean"] - r["ci_low"]) for r in rows],
                              [max(0.0, r["ci_high"] - r["mean"]) for r in rows]],
                fmt="o", color="tab:blue", ecolor="lightgray", capsize=3, label="entries (95% CI)")
    front = sorted((r["sparsity"], r["mean"]) for r in rows if r["pareto"])
    ax.plot([p[0] for p in front], [p[1] for p in front], "-", color="tab:red", label="Pareto frontier")
    for r in rows:
        ax.annotate(_plot_label(r["method"]), (r["sparsity"], r["mean"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=7)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("sparsity (fraction of attention skipped)")
    ax.set_ylabel("mean score")
    ax.set_title(_plot_label(f"{group['task']} at {group['length']}"))
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return True


def _markdown_cell(value: Any) -> str:
    text = " ".join(str(value).split())
    for ch in "\\|<>[]*_`$":
        text = text.replace(ch, "\\" + ch)
    return text


def _environment():
    from importlib.resources import files

    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(str(files("sftasks.cards"))), undefined=StrictUndefined,
                      autoescape=select_autoescape(["html", "html.jinja"]), keep_trailing_newline=True)
    env.filters["md"] = _markdown_cell
    env.filters["num"] = lambda x, d=3: "—" if x is None else f"{x:.{d}f}"
    return env


def render_site(entries: list[Entry], out: str | os.PathLike, *, title: str = "sftasks leaderboard") -> list[Path]:
    """Write `OUT/leaderboard.md`, `OUT/index.html` and `OUT/plots/*.png`; returns the written paths."""
    if not entries:
        raise DataError("no leaderboard entries: put score reports (`sftasks score` output) in the folder")
    out = Path(out)
    groups = build_groups(entries)
    written = []
    for group in groups:
        path = out / "plots" / f"{group['slug']}.png"
        group["plot"] = f"plots/{path.name}" if plot_group(group, path) else None
        if group["plot"]:
            written.append(path)
    env = _environment()
    context = {"title": title, "groups": groups, "entries": sorted(e.name for e in entries)}
    for template, name in (("leaderboard.md.jinja", "leaderboard.md"), ("leaderboard.html.jinja", "index.html")):
        write_text(out / name, env.get_template(template).render(**context))
        written.append(out / name)
    return written
