"""Generation driver: task + length + seeds -> records, with exact-length checks and resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterator

from .errors import Error, InputError
from .io import append_jsonl, read_jsonl, write_jsonl, write_parquet
from .lengths import format_length, lower_bound, parse_length
from .records import make_record
from .tasks import get_task
from .tokenizers import get_tokenizer


def generate_records(
    task: str, length: str | int, *, samples: int = 1, seed: int = 0, tokenizer: str | None = None,
    params: dict[str, Any] | None = None, start: int = 0, progress: bool = False,
) -> Iterator[dict[str, Any]]:
    """Records `start .. samples-1` for one task and length; deterministic in all arguments.

    Arguments are checked now, not at the first iteration, so bad input fails before anything is written.
    """
    spec, target, tok, knobs = _prepare(task, length, samples, tokenizer, params)
    return _records(spec, target, tok, knobs, samples=samples, seed=seed, start=start, progress=progress)


def _prepare(task: str, length: str | int, samples: int, tokenizer: str | None, params: dict[str, Any] | None):
    target = parse_length(length)
    if samples <= 0:
        raise InputError(f"--samples must be a positive integer, got {samples}")
    spec = get_task(task)
    tok = get_tokenizer(tokenizer)
    knobs = spec.make_params(params)
    spec.check_length(target, knobs, tok)
    return spec, target, tok, knobs


def _records(spec, target: int, tok, knobs, *, samples: int, seed: int, start: int, progress: bool):
    name = format_length(target)
    indices = range(start, samples)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"{spec.name} {name}", unit="sample", initial=start, total=samples)
    for index in indices:
        sample = spec.build_sample(target, seed=seed, index=index, tokenizer=tok, params=knobs)
        if not lower_bound(target) <= sample.num_tokens <= target:
            raise Error(f"internal error: {spec.name} sample {index} has {sample.num_tokens} tokens for target {target}")
        yield make_record(
            task=spec.name, length=name, target_tokens=target, num_tokens=sample.num_tokens, tokenizer=tok.name,
            seed=seed, index=index, sample=sample, generator_version=spec.version,
        )


def output_dir(out: str | Path, task: str, length: str | int) -> Path:
    return Path(out) / task / format_length(parse_length(length))


def write_task(
    task: str, length: str | int, out: str | Path, *, samples: int, seed: int = 0, tokenizer: str | None = None,
    params: dict[str, Any] | None = None, fmt: str = "parquet", overwrite: bool = False, progress: bool = True,
) -> Path:
    """Generate and write `OUT/TASK/LENGTH/test.{parquet,jsonl}`; resumes an interrupted run.

    Finished samples go to a hidden `.partial.jsonl` one line at a time; the final file is written
    atomically at the end, so an existing file is replaced only by a complete one.
    """
    if fmt not in ("parquet", "jsonl"):
        raise InputError(f"unknown format {fmt!r}: use parquet or jsonl")
    spec, target, tok, knobs = _prepare(task, length, samples, tokenizer, params)
    folder = output_dir(out, task, target)
    final = folder / f"test.{fmt}"
    partial = folder / ".partial.jsonl"
    existing = [p for p in folder.iterdir() if p.name != partial.name] if folder.is_dir() else []
    if existing and not overwrite:
        raise InputError(f"{folder} already exists; pass --overwrite to replace it")
    key = {"task": task, "length": format_length(target), "seed": seed, "tokenizer": tok.name,
           "params": dataclasses.asdict(knobs), "version": spec.version}
    done = _resumable(partial, key)
    if done is None:
        folder.mkdir(parents=True, exist_ok=True)
        write_jsonl(partial, [{"resume_key": key}])
        done = []
    for record in _records(spec, target, tok, knobs, samples=samples, seed=seed, start=len(done), progress=progress):
        append_jsonl(partial, record)
        done.append(record)
    done = done[:samples]
    if fmt == "parquet":
        write_parquet(final, done)
    else:
        write_jsonl(final, done)
    for old in existing:
        if old != final and old.is_file():
            old.unlink()
    partial.unlink()
    return final


def _resumable(partial: Path, key: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Records already written by an interrupted run with the same key, or None to start afresh."""
    if not partial.exists():
        return None
    rows = read_jsonl(partial, tolerate_torn_tail=True)
    if not rows or json.dumps(rows[0].get("resume_key"), sort_keys=True) != json.dumps(key, sort_keys=True):
        partial.unlink()
        return None
    write_jsonl(partial, rows)  # drops a line torn by the crash, so appends start on a clean line
    return rows[1:]
