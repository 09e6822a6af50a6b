"""The leaderboard site renders from fixture score reports: every entry in the HTML, one table per task
and length, ranked, escaped, with Pareto plots."""

import json
import re

import pytest
from test_scoring_gold import META, PERFECT, gold_record, write_gold, write_predictions

from sftasks.cli import main
from sftasks.scorers.leaderboard import build_groups, load_report_entry, pareto_front, render_site
from sftasks.scorers.report import build_report, score_samples, summarize

TASKS = ("story_multihop", "story_aggregation")
# name -> (method, sparsity, fraction of samples answered perfectly)
ENTRIES = {
    "dense": ("dense", 0.0, 1.0),
    "quest": ("Quest", 0.8, 0.75),
    "vs": ("vertical_slash", 0.9, 0.75),
    "snapkv": ("SnapKV", 0.5, 0.5),  # dominated by quest: higher sparsity and score
    "xss": ("<script>alert(1)</script>|pipe", 0.95, 0.25),
    "unknown": ("mystery", None, 0.5),
}


def gold_records():
    return [gold_record(task, i, length=length) for task in TASKS for length in ("4k", "8k") for i in range(4)]


def make_report(name, method, sparsity, share, records):
    meta = {**META, "method": method, "sparsity": sparsity, "params": {"budget": 64}}
    right = round(share * 4)
    predictions = {r["id"]: {"prediction": PERFECT[r["task"]] if int(r["id"].rsplit("-", 1)[1]) < right else "no"}
                   for r in records}
    scores = score_samples(predictions, records)
    return build_report(meta=meta, gold_source="gold", scores=scores, summaries=summarize(scores, resamples=200),
                        extra_ids=0, confidence=0.95, resamples=200, seed=0)


@pytest.fixture
def entries_dir(tmp_path):
    records = gold_records()
    folder = tmp_path / "entries"
    folder.mkdir()
    for name, (method, sparsity, share) in ENTRIES.items():
        report = make_report(name, method, sparsity, share, records)
        (folder / f"{name}.scores.json").write_text(json.dumps(report), encoding="utf-8")
    return folder


def test_pareto_front_known_cases():
    assert pareto_front([(0.0, 1.0), (0.5, 0.5), (0.8, 0.75), (0.9, 0.75)]) == [0, 3]
    assert pareto_front([(0.1, 0.1)]) == [0]
    assert pareto_front([(0.2, 0.9), (0.5, 0.9), (0.5, 0.9)]) == [1, 2]
    assert pareto_front([]) == []


def test_site_renders_every_entry_in_one_table_per_task_and_length(entries_dir, tmp_path):
    out = tmp_path / "site"
    assert main(["leaderboard", str(entries_dir), "--out", str(out)]) == 0
    html = (out / "index.html").read_text(encoding="utf-8")
    markdown = (out / "leaderboard.md").read_text(encoding="utf-8")
    groups = [(t, length) for t in sorted(TASKS) for length in ("4k", "8k")]
    assert html.count("<table>") == len(groups)
    for task, length in groups:
        assert f"<h2>{task} at {length}</h2>" in html
        assert f"## {task.replace('_', chr(92) + '_')} at {length}" in markdown
    for name, (method, _, _) in ENTRIES.items():
        assert html.count(f'data-entry="{name}"') == len(groups), name
    for method in ("dense", "Quest", "vertical_slash", "SnapKV", "mystery"):
        assert html.count(f"<td>{method}</td><td>tiny</td>") == len(groups)  # method, then model
        escaped = method.replace("_", "\\_")
        assert len(re.findall(rf"\| {re.escape(escaped)}( ★)? \| tiny \|", markdown)) == len(groups)


def test_untrusted_names_are_escaped(entries_dir, tmp_path):
    render_site([load_report_entry(p) for p in sorted(entries_dir.glob("*.json"))], tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    markdown = (tmp_path / "site" / "leaderboard.md").read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;|pipe" in html
    assert "<script>" not in markdown and r"\<script\>alert(1)\</script\>\|pipe" in markdown


def test_ranking_pareto_marks_and_plots(entries_dir, tmp_path):
    entries = [load_report_entry(p) for p in sorted(entries_dir.glob("*.json"))]
    groups = build_groups(entries)
    rows = groups[0]["rows"]
    assert [r["entry"] for r in rows] == ["dense", "vs", "quest", "snapkv", "unknown", "xss"]  # ties: sparser first
    assert [r["mean"] for r in rows] == [1.0, 0.75, 0.75, 0.5, 0.5, 0.25]
    assert {r["entry"] for r in rows if r["pareto"]} == {"dense", "vs", "xss"}
    written = render_site(entries, tmp_path / "site")
    plots = sorted(p.name for p in written if p.suffix == ".png")
    assert plots == sorted(f"{t}-{length}.png" for t in TASKS for length in ("4k", "8k"))
    for name in plots:
        assert (tmp_path / "site" / "plots" / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert len(re.findall(r'<img src="plots/[\w-]+\.png"', html)) == len(plots)
    assert html.count('class="pareto"') == 3 * len(plots)


def test_no_plot_without_any_sparsity(tmp_path):
    report = make_report("u", "mystery", None, 0.5, gold_records())
    (tmp_path / "u.json").write_text(json.dumps(report))
    written = render_site([load_report_entry(tmp_path / "u.json")], tmp_path / "site")
    assert not any(p.suffix == ".png" for p in written)
    assert "<img" not in (tmp_path / "site" / "index.html").read_text()


def test_raw_submissions_are_checked_and_scored_with_gold(tmp_path, capsys):
    records = gold_records()
    write_gold(tmp_path / "gold", records)
    entries = tmp_path / "entries"
    entries.mkdir()
    write_predictions(entries / "good.jsonl", {r["id"]: PERFECT[r["task"]] for r in records})
    write_predictions(entries / "broken.jsonl", {r["id"]: "x" for r in records}, meta={"method": 1})
    assert main(["leaderboard", str(entries), "--out", str(tmp_path / "site"), "--gold", str(tmp_path / "gold")]) == 0
    err = capsys.readouterr().err
    assert "skipped broken.jsonl" in err
    html = (tmp_path / "site" / "index.html").read_text()
    assert 'data-entry="good"' in html and 'data-entry="broken"' not in html
    assert html.count('<td class="num">1.000</td>') == 4  # a perfect score in each task-and-length table


def test_empty_or_bad_entries_folder_is_a_user_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["leaderboard", str(tmp_path / "empty"), "--out", str(tmp_path / "site")]) == 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.json").write_text("[1, 2]")
    assert main(["leaderboard", str(tmp_path / "bad"), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("sftasks: error:") for line in err)
