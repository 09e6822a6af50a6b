"""The eval runner: records -> backend (an engine with a sparse method attached) -> predictions file -> scores.

Engines plug in through the Backend protocol; the runner owns everything they share: the
predictions file (TEAM.md format), resume, progress bar and scoring.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol

from .errors import DataError, InputError
from .io import append_jsonl, read_jsonl, write_jsonl, write_text

PREDICTIONS = "predictions.jsonl"
RUN_KEY = "run.json"  # what was asked for, so a rerun resumes only the same run
SCORES = "scores.json"
EVIDENCE = "evidence.jsonl"  # optional diagnostic (--evidence), one line per sample
BACKENDS = {"hf": "sftasks.methods.hf:HFBackend", "vllm": "sftasks.methods.vllm:VLLMBackend"}


@dataclass
class Generation:
    """One finished prompt: the text, the method's sparsity summary (SparsityStats.summary()), timings."""

    text: str
    sparsity: dict = field(default_factory=dict)
    prefill_s: float = 0.0
    decode_s: float = 0.0
    num_input_tokens: int = 0


class Backend(Protocol):
    """An engine running one Method: `Backend(model, method, **options)`.

    `generate` applies the model's chat template to each prompt, decodes greedily, and returns one
    Generation per prompt, in order; the method's stats in each Generation cover that prompt only.
    """

    def __init__(self, model: str, method: Any, **options: Any) -> None: ...

    def generate(self, prompts: list[str], max_new_tokens: int) -> list[Generation]: ...


def get_backend(name: str) -> type:
    """The Backend class for "hf" or "vllm", imported only when asked for (each has heavy deps)."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise InputError(f"unknown backend {name!r}; use one of: {', '.join(BACKENDS)}") from None
    module_name, _, cls = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InputError(f"backend {name!r} is not available ({exc}); install it with "
                         f"pip install 'sftasks[{'vllm' if name == 'vllm' else 'hf'}]'") from None
    return getattr(module, cls)


def check_model_path(model: str) -> None:
    """A model that names a local path must exist (Hub names, `org/name`, pass through to the engine)."""
    looks_local = model.startswith((".", "/", "~")) or model.count("/") != 1
    if looks_local and not Path(model).expanduser().exists():
        raise InputError(f"model path {model} does not exist; pass a model folder (with config.json) or a Hub name")


def primary_hook(method) -> str:
    """The hook whose sparsity describes the method (the first it changes; prefill for dense)."""
    return next((h for h in ("prefill", "compress", "decode") if method.overrides(h)), "prefill")


@dataclass
class EvalRun:
    """One `sftasks eval` run: which records, which engine, which method, where to write."""

    backend: str
    model: str
    method: Any  # a Method instance
    task: str
    length: str
    samples: int
    out: Path
    seed: int = 0
    tokenizer: str | None = None
    task_params: dict = field(default_factory=dict)
    max_new_tokens: int = 128
    batch_size: int = 8
    backend_options: dict = field(default_factory=dict)
    contact: str = ""
    evidence: bool = False  # also write evidence retention per layer (backends with an `evidence` method)

    def key(self, records: list[dict]) -> dict:
        """Everything that changes a prediction: a rerun resumes only when this matches."""
        inputs = hashlib.sha256()
        for record in records:
            inputs.update(f"{record['id']}\0{record['input']}\0".encode())
        return {"backend": self.backend, "model": self.model, "method": self.method.name,
                "params": self.method.params(), "task": self.task, "length": self.length, "seed": self.seed,
                "tokenizer": self.tokenizer, "task_params": self.task_params, "inputs_sha256": inputs.hexdigest(),
                "max_new_tokens": self.max_new_tokens, "backend_options": self.backend_options}

    def meta(self, sparsity: float | None) -> dict:
        from . import __version__

        return {"meta": {"method": self.method.name, "model": self.model, "params": self.method.params(),
                         "sparsity": sparsity, "code_version": __version__, "contact": self.contact}}


def run_eval(run: EvalRun, records: list[dict], *, progress: bool = True) -> dict:
    """Predict every record not yet in OUT/predictions.jsonl, then score; returns the summary."""
    path = run.out / PREDICTIONS
    done = _resume(run, records)
    todo = [r for r in records if r["id"] not in done]
    if todo:
        backend = get_backend(run.backend)(run.model, run.method, **run.backend_options)
        if run.evidence and not hasattr(backend, "evidence"):
            raise InputError(f"--evidence needs a backend that exposes attention patterns (hf), not {run.backend}")
        _predict(backend, todo, path, run, len(records) - len(todo), len(records), progress)
    rows = read_jsonl(path, tolerate_torn_tail=True)[1:]
    summary = {"predictions": str(path), "samples": len(rows), "sparsity": mean_sparsity(rows, primary_hook(run.method))}
    write_jsonl(path, [run.meta(summary["sparsity"]), *rows])
    summary.update(score(rows, records, run.out))
    return summary


def _resume(run: EvalRun, records: list[dict]) -> set[str]:
    """Ids already predicted by an interrupted run of the same key; a fresh file otherwise."""
    run.out.mkdir(parents=True, exist_ok=True)
    path, key_path = run.out / PREDICTIONS, run.out / RUN_KEY
    key = json.loads(json.dumps(run.key(records)))
    if path.exists():
        try:
            old = json.loads(key_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            old = None
        if old != key:
            raise InputError(f"{run.out} holds predictions of a different run; pass another --out "
                             f"(or delete {path} to start over)")
        rows = read_jsonl(path, tolerate_torn_tail=True)
        if not rows or "meta" not in rows[0]:
            raise DataError(f"{path} has no meta line; delete it to start over")
        write_jsonl(path, rows)  # drop a line torn by a crash so appends start clean
        return {row["id"] for row in rows[1:]}
    write_text(key_path, json.dumps(key, indent=1) + "\n")
    write_jsonl(path, [run.meta(None)])
    return set()


def _predict(backend, todo: list[dict], path: Path, run: EvalRun, done: int, total: int, progress: bool) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=done, desc=f"{run.method.name} {run.task} {run.length}", unit="sample",
               disable=not progress)
    for start in range(0, len(todo), run.batch_size):
        batch = todo[start : start + run.batch_size]
        generations = backend.generate([r["input"] for r in batch], run.max_new_tokens)
        if len(generations) != len(batch):
            raise DataError(f"backend {run.backend} returned {len(generations)} outputs for {len(batch)} prompts")
        for record, gen in zip(batch, generations):
            if run.evidence:  # before the prediction line: a finished prediction implies its evidence line
                append_jsonl(run.out / EVIDENCE, {"id": record["id"], **backend.evidence(record)})
            append_jsonl(path, prediction_row(record["id"], gen))
        bar.update(len(batch))
    bar.close()


def prediction_row(record_id: str, gen: Generation) -> dict:
    return {"id": record_id, "prediction": gen.text, "sparsity": gen.sparsity,
            "timings": {"prefill_s": round(gen.prefill_s, 6), "decode_s": round(gen.decode_s, 6)},
            "num_input_tokens": int(gen.num_input_tokens)}


def mean_sparsity(rows: Iterable[dict], hook: str) -> float | None:
    """Mean over samples of each sample's overall sparsity for `hook` (0 where the hook never ran)."""
    values = [float((row.get("sparsity") or {}).get(hook, {}).get("overall", 0.0)) for row in rows]
    return sum(values) / len(values) if values else None


def score(rows: list[dict], records: list[dict], out: Path) -> dict:
    """Score predictions with the project's scorers into OUT/scores.json; a missing scorer is reported."""
    try:
        from .scorers.base import score_record
    except ImportError:
        return {"scored": False, "note": "sftasks.scorers is not installed; predictions kept for `sftasks score`"}
    by_id = {r["id"]: r for r in records}
    try:
        scores = [score_record(row["prediction"], by_id[row["id"]]) for row in rows if row["id"] in by_id]
    except InputError as exc:
        return {"scored": False, "note": f"{exc}; predictions kept for `sftasks score`"}
    result = {"scored": True, "score": sum(s.value for s in scores) / max(1, len(scores)),
              "parsed": sum(s.parsed for s in scores) / max(1, len(scores)), "scored_samples": len(scores)}
    write_text(out / SCORES, json.dumps(result, indent=1) + "\n")
    return result

