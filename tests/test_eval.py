"""`sftasks eval` end to end on a tiny random model and a tiny task registered here: predictions file
format, resume after interruption, scoring, backend plug-in, and bad input (one line, exit 2)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from sftasks import runner
from sftasks import tasks as task_registry
from sftasks.cli import main
from sftasks.io import read_jsonl
from sftasks.methods.hf import HFBackend
from sftasks.records import Sample
from sftasks.scorers import base as scorer_registry
from test_hf import build_tiny_model


@dataclass
class EchoParams:
    filler: str = " fox"


class EchoTask(task_registry.Task):
    """Remember a code across filler; the answer is the code."""

    name = "test_echo"
    version = "1"
    Params = EchoParams

    def build(self, target, rng, tok, params):
        code = str(int(rng.integers(100, 1000)))
        head, question = f"The secret code is {code}.", " What is the secret code? Answer in <answer></answer>."
        n = target - tok.count(head + question)
        while True:
            text = head + params.filler * n + question
            count = tok.count(text)
            if count <= target:
                break
            n -= count - target
        sample = Sample(input=text, context=params.filler * n, question=question, answer=[code],
                        evidence=[(0, len(head))])
        sample.num_tokens = count
        return sample


@pytest.fixture(autouse=True)
def echo_task(monkeypatch):
    monkeypatch.setitem(task_registry._REGISTRY, "test_echo", EchoTask())
    monkeypatch.setitem(task_registry._REGISTRY, "test_unscored", type("Unscored", (EchoTask,), {"name": "test_unscored"})())
    monkeypatch.setitem(scorer_registry._REGISTRY, "test_echo", lambda prediction, record: scorer_registry.Score(
        float(record["answer"][0] in prediction), parsed=bool(prediction.strip())))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model"))


def eval_args(model, out, *extra, samples=3, method=("--method", "quest", "--param", "token_budget=32",
                                                     "--param", "page_size=8")):
    return ["eval", "--model", model, *method, "--task", "test_echo", "--len", "1k", "--samples", str(samples),
            "--max-new-tokens", "3", "--batch-size", "2", "--out", str(out), "--no-progress", *extra]


def test_eval_writes_predictions_in_the_submission_format_and_scores(model, tmp_path, capsys):
    assert main(eval_args(model, tmp_path / "run", "--contact", "me@example.org")) == 0
    rows = read_jsonl(tmp_path / "run" / "predictions.jsonl")
    meta = rows[0]["meta"]
    assert meta["method"] == "quest" and meta["model"] == model and meta["contact"] == "me@example.org"
    assert meta["params"] == {"token_budget": 32, "page_size": 8, "share_pages": True, "sparsity": None}
    assert isinstance(meta["code_version"], str) and 0.5 < meta["sparsity"] < 1
    assert [r["id"] for r in rows[1:]] == [f"test_echo-1k-0-{i}" for i in range(3)]
    for row in rows[1:]:
        assert isinstance(row["prediction"], str) and row["num_input_tokens"] > 1000
        assert row["timings"]["prefill_s"] > 0 and row["timings"]["decode_s"] > 0
        assert set(row["sparsity"]) == {"prefill", "decode"} and row["sparsity"]["prefill"]["overall"] == 0
    assert meta["sparsity"] == pytest.approx(sum(r["sparsity"]["decode"]["overall"] for r in rows[1:]) / 3)
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert scores["scored"] and scores["scored_samples"] == 3 and 0 <= scores["score"] <= 1
    assert json.loads(capsys.readouterr().out)["scored"] is True


def test_an_interrupted_eval_resumes_without_redoing_samples(model, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = HFBackend.generate
    prompts_seen = []

    def interrupted(self, prompts, max_new_tokens):
        if prompts_seen:
            raise KeyboardInterrupt
        prompts_seen.extend(prompts)
        return real(self, prompts, max_new_tokens)

    monkeypatch.setattr(HFBackend, "generate", interrupted)
    assert main(eval_args(model, out, samples=5)) == 130
    first = read_jsonl(out / "predictions.jsonl")
    assert len(first) == 3  # meta + the first batch of 2
    with open(out / "predictions.jsonl", "a") as f:
        f.write('{"id": "test_echo-1k-0-2", "predic')  # a line torn by the kill

    def counting(self, prompts, max_new_tokens):
        prompts_seen.extend(prompts)
        return real(self, prompts, max_new_tokens)

    prompts_seen.clear()
    monkeypatch.setattr(HFBackend, "generate", counting)
    assert main(eval_args(model, out, samples=5)) == 0
    assert len(prompts_seen) == 3
    rows = read_jsonl(out / "predictions.jsonl")
    assert [r["id"] for r in rows[1:]] == [f"test_echo-1k-0-{i}" for i in range(5)]
    assert rows[1:3] == first[1:3]
    fresh = tmp_path / "fresh"
    assert main(eval_args(model, fresh, samples=5)) == 0
    assert [r["prediction"] for r in read_jsonl(fresh / "predictions.jsonl")[1:]] == [r["prediction"] for r in rows[1:]]


def test_a_finished_run_is_not_redone_and_another_run_needs_another_folder(model, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(eval_args(model, out, samples=2)) == 0
    monkeypatch.setattr(HFBackend, "__init__", lambda *a, **k: pytest.fail("nothing left to predict"))
    assert main(eval_args(model, out, samples=2)) == 0
    capsys.readouterr()
    assert main(eval_args(model, out, samples=2, method=("--method", "dense"))) == 2
    assert "different run" in capsys.readouterr().err


def test_a_task_without_scorer_keeps_predictions_and_says_so(model, tmp_path, capsys):
    args = eval_args(model, tmp_path, samples=1, method=("--method", "dense"))
    args[args.index("test_echo")] = "test_unscored"
    assert main(args) == 0
    assert "no scorer for task 'test_unscored'" in capsys.readouterr().out
    assert len(read_jsonl(tmp_path / "predictions.jsonl")) == 2


class FakeBackend:
    """Any engine implementing the Backend protocol plugs into the same runner."""

    created: list = []

    def __init__(self, model, method, **options):
        FakeBackend.created.append((model, method.name, options))
        self.batches = []

    def generate(self, prompts, max_new_tokens):
        FakeBackend.created.append(len(prompts))
        return [runner.Generation(text="<answer>0</answer>", sparsity={}, prefill_s=0.1, decode_s=0.2,
                                  num_input_tokens=len(p)) for p in prompts]


def test_other_backends_get_batches_and_options_through_the_same_runner(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "get_backend", lambda name: FakeBackend)
    FakeBackend.created.clear()
    args = ["eval", "--backend", "vllm", "--model", "Org/Model", "--method", "snapkv", "--task", "test_echo",
            "--len", "1k", "--samples", "5", "--batch-size", "4", "--tp", "2", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    assert FakeBackend.created == [("Org/Model", "snapkv", {"tp": 2}), 4, 1]
    rows = read_jsonl(tmp_path / "predictions.jsonl")
    assert len(rows) == 6 and rows[1]["timings"] == {"prefill_s": 0.1, "decode_s": 0.2}


@pytest.mark.parametrize("change,message", [
    (("--method", "nope"), "unknown method 'nope'"),
    (("--param", "budget=3"), "unknown parameter 'budget'"),
    (("--param", "token_budget=lots"), "must be int"),
    (("--param", "token_budget=-8"), "positive integer"),
    (("--param", "token_budget=1000"), "multiple of page_size"),
    (("--param", "token_budget"), "NAME=VALUE"),
    (("--model", "/no/such/model"), "does not exist"),
    (("--task", "no_task"), "unknown task"),
    (("--samples", "0"), "--samples must be a positive integer"),
    (("--len", "lots"), "length"),
])
def test_bad_input_is_one_line_and_exit_2(model, tmp_path, capsys, change, message):
    args = eval_args(model, tmp_path / "out", method=("--method", "quest"))
    flag, value = change
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "predictions.jsonl").exists()


def test_missing_required_options(capsys):
    assert main(["eval", "--task", "test_echo", "--out", "x"]) == 2
    assert "--model is required" in capsys.readouterr().err


def test_evidence_diagnostic_is_written_per_sample(model, tmp_path):
    args = eval_args(model, tmp_path, "--evidence", samples=2,
                     method=("--method", "block_sparse", "--param", "chunk_size=64", "--param", "top_chunks=2"))
    assert main(args) == 0
    rows = read_jsonl(tmp_path / "evidence.jsonl")
    assert [r["id"] for r in rows] == ["test_echo-1k-0-0", "test_echo-1k-0-1"]
    for row in rows:  # the code sits at the start of the prompt: inside the always-kept first block
        assert row["evidence_tokens"] >= 3 and row["per_layer"] == {"0": 1.0, "1": 1.0}
    preds = read_jsonl(tmp_path / "predictions.jsonl")[1:]
    assert all(p["sparsity"]["prefill"]["overall"] > 0.8 for p in preds)  # the diagnostic did not count as work
