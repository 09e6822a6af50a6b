"""`sftasks score` and `sftasks compare` end to end in temp dirs, with exit codes and one-line errors."""

import json
import random
import subprocess
import sys

import pytest
from test_scoring_gold import GOLD_ANSWERS, META, PERFECT, gold_record, write_gold, write_predictions

from sftasks.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sftasks.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def gold(tmp_path):
    """4 multi-hop and 4 aggregation samples at 4k, 2 multi-hop at 8k; parquet and jsonl mixed."""
    records = ([gold_record("story_multihop", i) for i in range(4)]
               + [gold_record("story_aggregation", i) for i in range(4)]
               + [gold_record("story_multihop", i, length="8k") for i in range(2)])
    write_gold(tmp_path / "data", [r for r in records if r["task"] == "story_multihop"], "parquet")
    write_gold(tmp_path / "data", [r for r in records if r["task"] == "story_aggregation"], "jsonl")
    return tmp_path / "data", records


def mixed_predictions(records):
    """multihop 4k: 2 right, 1 wrong, 1 missing; aggregation: 1 right, 1 unparsed, 2 missing; 8k: all right."""
    predictions = {}
    for r in records:
        index = int(r["id"].rsplit("-", 1)[1])
        if r["task"] == "story_multihop" and r["length"] == "4k":
            if index < 2:
                predictions[r["id"]] = PERFECT["story_multihop"]
            elif index == 2:
                predictions[r["id"]] = "<answer>silver ring</answer>"
        elif r["task"] == "story_aggregation":
            if index == 0:
                predictions[r["id"]] = PERFECT["story_aggregation"]
            elif index == 1:
                predictions[r["id"]] = "I am not sure which chapters."
        else:
            predictions[r["id"]] = "Answer: ornate jade comb"
    return predictions


def summary_of(report):
    return {(s["task"], s["length"]): s for s in report["summary"]}


def test_score_end_to_end(gold, tmp_path):
    data, records = gold
    preds = write_predictions(tmp_path / "run.jsonl", mixed_predictions(records))
    result = run_cli("score", "--predictions", preds, "--gold", data)
    assert result.returncode == 0, result.stderr
    report_path = tmp_path / "run.scores.json"
    assert f"wrote {report_path}" in result.stdout
    table = {tuple(line.split()[:2]): line.split() for line in result.stdout.splitlines()[2:] if line.startswith("story")}
    # task length n mean [low, high] unparsed missing
    assert table[("story_multihop", "4k")][2:4] == ["4", "0.500"]
    assert table[("story_aggregation", "4k")][2:4] == ["4", "0.250"], "unparsed and missing samples stay in the mean"
    assert table[("story_aggregation", "4k")][6:8] == ["1", "2"]
    assert table[("story_multihop", "8k")][2:4] == ["2", "1.000"]

    report = json.loads(report_path.read_text())
    assert report["meta"] == META
    summary = summary_of(report)
    assert summary[("story_multihop", "4k")]["missing"] == 1 and summary[("story_multihop", "4k")]["unparsed"] == 0
    assert summary[("story_aggregation", "4k")]["metrics"]["recall"] == pytest.approx(0.25)
    low, high = summary[("story_multihop", "4k")]["ci_low"], summary[("story_multihop", "4k")]["ci_high"]
    assert 0.0 <= low < 0.5 < high <= 1.0
    samples = {s["id"]: s for s in report["samples"]}
    assert len(samples) == len(records)
    assert samples["story_multihop-4k-0-3"]["missing"] and samples["story_multihop-4k-0-3"]["score"] == 0.0
    assert not samples["story_aggregation-4k-0-1"]["parsed"] and not samples["story_aggregation-4k-0-1"]["missing"]
    assert samples["story_multihop-4k-0-0"]["score"] == 1.0 and samples["story_multihop-4k-0-0"]["metrics"]["fuzzy"] == 1.0
    text = report_path.read_text()
    assert all(answer not in text for answers in GOLD_ANSWERS.values() for answer in answers if len(answer) > 2)


def test_score_is_reproducible_and_independent_of_file_order(gold, tmp_path, capsys):
    data, records = gold
    predictions = mixed_predictions(records)
    items = list(predictions.items())
    random.Random(0).shuffle(items)
    write_predictions(tmp_path / "a.jsonl", predictions)
    write_predictions(tmp_path / "b.jsonl", dict(items))
    for name in ("a", "b"):
        assert main(["score", "--predictions", str(tmp_path / f"{name}.jsonl"), "--gold", str(data),
                     "--report", str(tmp_path / f"{name}.json")]) == 0
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("a", "b"))
    assert a["summary"] == b["summary"]
    assert main(["score", "--predictions", str(tmp_path / "a.jsonl"), "--gold", str(data),
                 "--report", str(tmp_path / "c.json"), "--seed", "1"]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["bootstrap"] == {"confidence": 0.95, "resamples": 10000, "seed": 1}


def test_length_filter_and_torn_tail(gold, tmp_path, capsys):
    data, records = gold
    predictions = mixed_predictions(records)
    del predictions["story_multihop-8k-0-1"]
    preds = write_predictions(tmp_path / "run.jsonl", predictions)
    with open(preds, "a") as f:
        f.write('{"id": "story_multihop-8k-0-1", "predic')  # a run killed mid-line: that sample is missing
    assert main(["score", "--predictions", str(preds), "--gold", str(data), "--length", "8k"]) == 0
    out = capsys.readouterr().out
    assert "story_multihop" in out and "story_aggregation" not in out
    assert "5 predictions have ids outside the gold records scored here" in out
    report = json.loads((tmp_path / "run.scores.json").read_text())
    assert [(s["n"], s["mean"], s["missing"]) for s in report["summary"]] == [(2, 0.5, 1)]


def test_bad_input_exits_2_with_one_line(gold, tmp_path):
    data, _ = gold
    result = run_cli("score", "--predictions", tmp_path / "nope.jsonl", "--gold", data)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("sftasks: error: no such file")


@pytest.mark.parametrize("case,message", [
    ("not_json", "run.jsonl:3: not a JSON value"),
    ("duplicate", "run.jsonl:3: duplicate id"),
    ("no_overlap", "no prediction id matches a gold id"),
    ("no_gold", "no .parquet or .jsonl record files"),
    ("bad_length", "bad length"),
    ("wrong_length", "no gold records of length 64k"),
    ("resamples", "--resamples must be at least 100"),
])
def test_score_refuses_bad_input(gold, tmp_path, capsys, case, message):
    data, records = gold
    preds = tmp_path / "run.jsonl"
    args = []
    first = records[0]["id"]
    lines = [json.dumps({"meta": META}), json.dumps({"id": first, "prediction": "x"})]
    if case == "not_json":
        lines.insert(2, "{oops")
        lines.append(json.dumps({"id": records[1]["id"], "prediction": "x"}))
    elif case == "duplicate":
        lines.append(lines[1])
    elif case == "no_overlap":
        lines[1] = json.dumps({"id": "other-4k-0-0", "prediction": "x"})
    elif case == "no_gold":
        data = tmp_path / "empty"
        data.mkdir()
    elif case == "bad_length":
        args = ["--length", "64q"]
    elif case == "wrong_length":
        args = ["--length", "64k"]
    elif case == "resamples":
        args = ["--resamples", "5"]
    preds.write_text("\n".join(lines) + "\n")
    assert main(["score", "--predictions", str(preds), "--gold", str(data), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sftasks: error:") and message in err, err


def compare_files(tmp_path, records, b_right):
    """A answers every multi-hop sample right; B answers the first `b_right` of them right."""
    ids = [r["id"] for r in records]
    a = write_predictions(tmp_path / "dense.jsonl", {i: PERFECT["story_multihop"] for i in ids})
    b = write_predictions(tmp_path / "sparse.jsonl",
                          {i: PERFECT["story_multihop"] if k < b_right else "<answer>silver ring</answer>"
                           for k, i in enumerate(ids)})
    return a, b


@pytest.fixture
def many(tmp_path):
    records = [gold_record("story_multihop", i) for i in range(60)]
    write_gold(tmp_path / "many", records)
    return tmp_path / "many", records


def test_compare_preserved_states_the_test(many, tmp_path):
    data, records = many
    a, b = compare_files(tmp_path, records, b_right=60)
    result = run_cli("compare", a, b, "--gold", data, "--report", tmp_path / "cmp.json")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for phrase in ("paired", "non-inferiority", "one-sided", "delta = 0.05", "alpha = 0.05", "bootstrap"):
        assert phrase in out
    row = next(line for line in out.splitlines() if line.startswith("story_multihop"))
    assert row.split()[-1] == "preserved"
    report = json.loads((tmp_path / "cmp.json").read_text())
    assert report["results"][0]["verdict"] == "preserved" and report["results"][0]["n"] == 60


def test_compare_degraded_and_tolerance(many, tmp_path, capsys):
    data, records = many
    a, b = compare_files(tmp_path, records, b_right=30)  # B loses half the samples
    assert main(["compare", str(a), str(b), "--gold", str(data)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("story_multihop"))
    assert row.split()[-1] == "degraded" and "-0.500" in row
    assert main(["compare", str(a), str(b), "--gold", str(data), "--delta", "0.9"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("story_multihop"))
    assert row.split()[-1] == "preserved"


def test_compare_refuses_unpaired_inputs(many, tmp_path):
    data, records = many
    a, _ = compare_files(tmp_path, records, b_right=60)
    b = write_predictions(tmp_path / "partial.jsonl", {r["id"]: "x" for r in records[:-3]})
    result = run_cli("compare", a, b, "--gold", data)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "unpaired inputs: 3 sample ids only in A, 0 only in B" in result.stderr
