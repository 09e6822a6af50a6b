"""`sftasks generate` end to end in temp dirs, and every bad input refused with one line and exit 2."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from sftasks.cli import main
from sftasks.records import FIELDS


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sftasks.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_generate_parquet_end_to_end(tmp_path):
    result = run_cli("generate", "story_multihop", "--len", "2k", "--samples", "3", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    path = tmp_path / "story_multihop" / "2k" / "test.parquet"
    table = pq.read_table(path)
    assert table.num_rows == 3
    assert tuple(table.column_names) == FIELDS
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [f"story_multihop-2k-0-{i}" for i in range(3)]
    assert all(2038 <= r["num_tokens"] <= 2048 and r["target_tokens"] == 2048 for r in rows)
    assert not any(p.name.startswith(".") for p in path.parent.iterdir()), "temp/partial files left behind"


def test_generate_jsonl_several_lengths_and_params(tmp_path):
    code = main(["generate", "story_retrieval", "--len", "2k,4k", "--samples", "2", "--format", "jsonl",
                 "--param", "num_queries=3", "--seed", "7", "--out", str(tmp_path)])
    assert code == 0
    for length in ("2k", "4k"):
        rows = [json.loads(line) for line in (tmp_path / "story_retrieval" / length / "test.jsonl").open()]
        assert len(rows) == 2
        assert all(r["seed"] == 7 and json.loads(r["params"])["num_queries"] == 3 for r in rows)
        assert all(len(r["answer"]) == 3 for r in rows)


def test_help_explains_every_option():
    result = run_cli("generate", "--help")
    assert result.returncode == 0
    for option in ("--len", "--samples", "--seed", "--tokenizer", "--param", "--out", "--format", "--overwrite"):
        assert option in result.stdout
    assert "generate" in run_cli("--help").stdout


def test_list_shows_tasks():
    result = run_cli("generate", "--list")
    assert result.returncode == 0
    for task in ("story_retrieval", "story_multihop", "story_aggregation"):
        assert task in result.stdout


@pytest.mark.parametrize("args,message", [
    (["generate", "no_such_task", "--len", "4k"], "unknown task"),
    (["generate", "story_multihop", "--len", "64q"], "bad length"),
    (["generate", "story_multihop", "--len", "-1"], "bad length"),
    (["generate", "story_multihop", "--len", "0"], "length"),
    (["generate", "story_multihop", "--len", "4k", "--samples", "0"], "--samples"),
    (["generate", "story_multihop", "--len", "4k", "--tokenizer", "/no/such/tokenizer"], "tokenizer"),
    (["generate", "story_multihop", "--len", "4k", "--param", "hops"], "NAME=VALUE"),
    (["generate", "story_multihop", "--len", "4k", "--param", "nonsense=1"], "unknown parameter"),
    (["generate", "story_retrieval", "--len", "1k", "--param", "num_queries=64"], "smallest length"),
    (["generate", "story_multihop", "--len", "4k", "--format", "csv"], "invalid choice"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    result = run_cli(*args, "--out", str(out))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() or not any(p.is_file() and not p.name.startswith(".") for p in out.rglob("*"))


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    args = ["generate", "story_multihop", "--len", "1k", "--samples", "1", "--format", "jsonl", "--out", str(tmp_path)]
    assert run_cli(*args).returncode == 0
    path = tmp_path / "story_multihop" / "1k" / "test.jsonl"
    before = path.read_bytes()
    again = run_cli(*args)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert path.read_bytes() == before
    assert run_cli(*args, "--overwrite", "--seed", "1").returncode == 0
    assert path.read_bytes() != before


def test_interrupted_run_resumes_without_redoing_samples(tmp_path, monkeypatch):
    import sftasks.generate as gen

    calls = []
    real_build = gen.get_task("story_multihop").build

    def flaky_build(target, rng, tok, params):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_build(target, rng, tok, params)

    monkeypatch.setattr(gen.get_task("story_multihop"), "build", flaky_build)
    with pytest.raises(KeyboardInterrupt):
        gen.write_task("story_multihop", "1k", tmp_path, samples=4, fmt="jsonl", progress=False)
    folder = tmp_path / "story_multihop" / "1k"
    assert not (folder / "test.jsonl").exists()
    resumed_calls = []

    def counting_build(target, rng, tok, params):
        resumed_calls.append(1)
        return real_build(target, rng, tok, params)

    monkeypatch.setattr(gen.get_task("story_multihop"), "build", counting_build)
    resumed = gen.write_task("story_multihop", "1k", tmp_path, samples=4, fmt="jsonl", progress=False)
    assert len(resumed_calls) == 2, "the two finished samples must not be rebuilt"
    monkeypatch.setattr(gen.get_task("story_multihop"), "build", real_build)
    fresh = gen.write_task("story_multihop", "1k", tmp_path / "fresh", samples=4, fmt="jsonl", progress=False)
    assert resumed.read_bytes() == fresh.read_bytes()


def test_default_tokenizer_works_offline(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    result = subprocess.run([sys.executable, "-m", "sftasks.cli", "generate", "story_aggregation", "--len", "2k",
                             "--samples", "1", "--out", str(tmp_path / "d")], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
