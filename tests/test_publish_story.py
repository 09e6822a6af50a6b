"""`sftasks publish` on two real tasks at three lengths: folders `datasets` reads, regeneration that
reproduces them exactly, hidden splits that leak nothing, and bad input refused. Offline throughout."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

import sftasks
from sftasks import publish, releases
from sftasks.cli import main

TASKS = ("story_multihop", "story_retrieval")
LENGTHS = {"1k": 1024, "2k": 2048, "4k": 4096}
PARAMS = {"story_multihop": [], "story_retrieval": ["--param", "num_queries=4"]}  # 16 questions need 3k


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HOME", str(home))
        mp.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
            mp.delenv(name, raising=False)
        yield home


@pytest.fixture(scope="module")
def folders(offline, tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    for task in TASKS:
        assert main(["publish", task, "--lengths", ",".join(LENGTHS), "--samples", "2", "--seed", "3",
                     *PARAMS[task], "--out", str(root / task)]) == 0
    return {task: root / task for task in TASKS}


def test_every_config_loads_with_plain_datasets_and_regenerates_identically(folders, monkeypatch):
    for task, folder in folders.items():
        meta = yaml.safe_load((folder / "README.md").read_text(encoding="utf-8").split("---\n", 2)[1])
        assert {c["config_name"] for c in meta["configs"]} == set(LENGTHS)
        manifest = json.loads((folder / "sftasks.json").read_text())
        monkeypatch.setitem(releases.PINNED, task, manifest)
        for name, target in LENGTHS.items():
            rows = datasets.load_dataset(str(folder), name, split="test").to_list()
            assert [r["id"] for r in rows] == [f"{task}-{name}-3-0", f"{task}-{name}-3-1"]
            assert all(r["task"] == task and target * 0.995 <= r["num_tokens"] <= target for r in rows)
            assert all(r["answer"] and r["evidence"] for r in rows)
            assert publish.checksum(rows) == manifest["configs"][name]["checksum"]
            assert sftasks.load_dataset(str(folder), length=name).to_list() == rows
            assert sftasks.load_dataset(f"sparse-frontier/{task}", length=target).to_list() == rows


def test_hidden_real_tasks_leak_no_answer_evidence_or_seed(offline, tmp_path):
    for task in TASKS:
        out, gold_file = tmp_path / "public" / task, tmp_path / "private" / f"{task}.jsonl"
        assert main(["publish", task, "--lengths", "1k,2k", "--samples", "2", "--hidden", *PARAMS[task],
                     "--gold-out", str(gold_file), "--out", str(out)]) == 0
        gold = [json.loads(line) for line in gold_file.read_text().splitlines()]
        assert len(gold) == 4 and all(g["answer"] and g["evidence"] for g in gold)
        preds = perfect_predictions(tmp_path / f"{task}.preds.jsonl", gold)
        assert main(["submit-check", str(preds), "--gold", str(out)]) == 0  # the public folder knows the ids
        assert main(["score", "--predictions", str(preds), "--gold", str(gold_file)]) == 0  # the gold scores them
        report = json.loads(preds.with_suffix(".scores.json").read_text())
        assert [s["mean"] for s in report["summary"]] == [1.0, 1.0]
        seed = str(gold[0]["seed"])
        # The prompt text necessarily holds the facts; nothing else may hold an answer.
        outside_prompts = [(out / "sftasks.json").read_text()]
        card = (out / "README.md").read_text()
        example = json.loads(card.split("```json\n", 1)[1].split("\n```", 1)[0])
        for field in ("input", "context"):  # as the card writes them: JSON strings
            card = card.replace(json.dumps(example[field], ensure_ascii=False), "")
        outside_prompts.append(card)
        for path in out.rglob("*.parquet"):
            rows = pq.read_table(path).to_pylist()
            assert all(r["answer"] == [] and r["evidence"] == [] and r["seed"] == -1 for r in rows)
            assert all("hidden" in r["id"] and seed not in r["id"] for r in rows)
            outside_prompts.append(json.dumps([{k: v for k, v in r.items() if k not in ("input", "context")}
                                               for r in rows], ensure_ascii=False))
        everything = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in out.rglob("*") if p.is_file())
        assert seed not in everything and seed not in "\n".join(outside_prompts)
        for g in gold:
            assert json.dumps(g["evidence"]) not in everything and json.dumps(g["answer"]) not in everything
            for answer in g["answer"]:
                assert all(answer not in text for text in outside_prompts), answer


def perfect_predictions(path: Path, records: list[dict]) -> Path:
    meta = {"method": "oracle", "model": "none", "params": {}, "sparsity": None, "code_version": "test", "contact": "t"}
    lines = [{"meta": meta}] + [{"id": r["id"], "prediction": "<answer>" + "\n".join(r["answer"]) + "</answer>"}
                                for r in records]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_the_cards_score_command_works_offline_by_repo_name(folders, tmp_path, monkeypatch, capsys):
    folder = folders["story_multihop"]
    monkeypatch.setitem(releases.PINNED, "story_multihop", json.loads((folder / "sftasks.json").read_text()))
    monkeypatch.chdir(tmp_path)
    rows = datasets.load_dataset(str(folder), "2k", split="test").to_list()
    perfect_predictions(tmp_path / "preds.jsonl", rows)
    command = next(line for line in (folder / "README.md").read_text().splitlines() if line.startswith("sftasks score"))
    assert "--gold sparse-frontier/story_multihop --length 1k" in command
    assert main(shlex.split(command.replace("--length 1k", "--length 2k"))[1:]) == 0
    report = json.loads((tmp_path / "preds.scores.json").read_text())
    assert [(s["task"], s["length"], s["n"], s["mean"]) for s in report["summary"]] == [("story_multihop", "2k", 2, 1.0)]


def run_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "sftasks.cli", *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("args,message", [
    (["publish", "no_such_task", "--lengths", "1k"], "unknown task"),
    (["publish", "story_multihop", "--lengths", "64q"], "bad length"),
    (["publish", "story_multihop", "--lengths", "1k", "--samples", "1", "--push-to", "me/story"], "token"),
    (["publish", "story_retrieval", "--lengths", "1k", "--param", "num_queries=64"], "smallest length"),
])
def test_bad_input_real_cli_one_line_exit_2_nothing_written(offline, tmp_path, args, message):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    out = tmp_path / "out"
    result = run_cli(*args, "--out", str(out), env=env)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_non_empty_folder_is_refused_by_the_real_cli(offline, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("publish", "story_multihop", "--lengths", "1k", "--samples", "1", "--out", str(out),
                     env=dict(os.environ))
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and [p.name for p in tmp_path.iterdir()] == ["out"]
