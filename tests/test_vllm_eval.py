"""`sftasks eval --backend vllm` end to end through the CLI, on two story tasks at 2k tokens.

The model is a tiny random Qwen2 with Qwen2.5's own tokenizer, so "2k" is 2k of the model's tokens.
The first run uses vLLM's multi-process engine (the plugin must load through its entry point in the
spawned engine and worker processes) and is killed mid-run; the rerun must resume, not redo.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_vllm_tiny_model import build_tiny_qwen2

ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(build_tiny_qwen2(tmp_path_factory.mktemp("tiny") / "qwen2", qwen_tokenizer=True))


def eval_command(model: str, out, task: str, method: str, *extra: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from sftasks.cli import main; sys.exit(main())", "eval",
            "--backend", "vllm", "--model", model, "--task", task, "--len", "2k", "--method", method,
            "--out", str(out), "--no-progress", *extra]


def lines(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip().endswith("}")]


def test_eval_resumes_after_a_kill(model, tmp_path):
    out = tmp_path / "quest"
    # No --dtype: the model's default, bfloat16 on vLLM's CPU build.
    cmd = eval_command(model, out, "story_multihop", "quest", "--param", "token_budget=256", "--samples", "3",
                       "--batch-size", "1", "--max-new-tokens", "48")
    env = {**os.environ, **ENV, "VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    predictions = out / "predictions.jsonl"
    deadline = time.time() + 300
    while len(lines(predictions)) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI, vLLM's engine core and its worker
    proc.wait()
    before = lines(predictions)
    assert 2 <= len(before) < 4, proc.stderr.read().decode()[-3000:]

    done = subprocess.run(cmd, env={**env, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    after = lines(predictions)
    assert [r["id"] for r in after[1:]] == [f"story_multihop-2k-0-{i}" for i in range(3)]
    assert after[1] == before[1]  # the sample finished before the kill was kept, not redone (same timings)
    meta = after[0]["meta"]
    assert meta["method"] == "quest" and meta["params"]["token_budget"] == 256
    assert meta["sparsity"] == pytest.approx(sum(r["sparsity"]["decode"]["overall"] for r in after[1:]) / 3)
    assert 0.8 < meta["sparsity"] < 1.0  # ~2k-token contexts read through a 256-token budget
    for row in after[1:]:
        assert 2000 <= row["num_input_tokens"] <= 2048 + 40  # the sample plus the chat template
        assert row["timings"]["decode_s"] > 0
    assert json.loads((out / "scores.json").read_text())["scored_samples"] == 3


def test_eval_compression_on_a_second_story_task(model, tmp_path):
    out = tmp_path / "snapkv"
    cmd = eval_command(model, out, "story_retrieval", "snapkv", "--task-param", "num_queries=4", "--samples", "2",
                       "--param", "token_capacity=512", "--max-new-tokens", "4", "--dtype", "float32")
    env = {**os.environ, **ENV, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = lines(out / "predictions.jsonl")
    assert len(rows) == 3 and json.loads((out / "scores.json").read_text())["scored_samples"] == 2
    for row in rows[1:]:
        compress = row["sparsity"]["compress"]
        n = row["num_input_tokens"]
        assert compress["overall"] == pytest.approx(1 - 512 / n)
        # 2 layers x 2 KV heads x (K and V) x 64 dims x 4 bytes (float32) per dropped token
        assert compress["kv_saved_bytes"] == 2 * 2 * 2 * 64 * 4 * (n - 512)
