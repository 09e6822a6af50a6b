"""Build a Hub-ready dataset folder for one task (one config per length) and push it.

Layout of the folder (what `datasets.load_dataset(FOLDER, "64k", split="test")` reads):

    README.md           card: YAML front matter (configs, features, ...) + prose (cards/dataset_card.md.jinja)
    sftasks.json        manifest: everything needed to regenerate, and a checksum per config
    4k/test.parquet     one parquet file per length (config), split `test`

The folder is built in `.NAME.sftasks-build/` beside the target and renamed into place at the end, so an
interrupted run leaves no half-written folder; rerunning the same command resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import statistics
from pathlib import Path
from typing import Any, Iterable

from . import __version__
from .errors import DataError, InputError
from .generate import write_task
from .io import read_jsonl, write_jsonl, write_parquet, write_text
from .lengths import format_length, parse_length
from .releases import HUB_ORG
from .tasks import get_task
from .tokenizers import get_tokenizer

MANIFEST = "sftasks.json"
MANIFEST_FORMAT = 1
CHECKSUM_DEFINITION = (
    "SHA-256 over the records in file order, each serialised as one UTF-8 line "
    '`json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\\n"`'
)


def checksum(records: Iterable[dict[str, Any]]) -> str:
    """SHA-256 of the canonical JSON lines of `records`: equal iff the records are equal, whatever the file bytes."""
    digest = hashlib.sha256()
    for record in records:
        line = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
        digest.update(line.encode("utf-8"))
    return "sha256:" + digest.hexdigest()


def read_parquet_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _parquet_summary(target: int, folder: Path, data_file: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the manifest entry of one config, its first record): sizes, token counts, checksum."""
    import pyarrow.parquet as pq

    table = pq.read_table(folder / data_file)
    records = table.to_pylist()
    counts = [r["num_tokens"] for r in records]
    summary = {
        "target_tokens": target, "data_file": data_file, "num_samples": len(records),
        "num_bytes": table.nbytes, "download_size": (folder / data_file).stat().st_size,
        "num_tokens": {"min": min(counts), "median": statistics.median(counts), "max": max(counts)},
        "checksum": checksum(records),
    }
    return summary, records[0]


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(f"{path} is not valid JSON; rebuild the folder with `sftasks publish`") from None
    if not isinstance(manifest, dict) or "task" not in manifest or "configs" not in manifest:
        raise DataError(f"{path} is not an sftasks manifest; rebuild the folder with `sftasks publish`")
    return manifest


def hidden_id(task: str, length: str, index: int) -> str:
    """Ids of a hidden split carry no seed (the seed would let anyone regenerate the answers)."""
    return f"{task}-{length}-hidden-{index}"


def build_folder(
    task: str, lengths: Iterable[str | int], out: str | os.PathLike, *, samples: int, seed: int | None = None,
    tokenizer: str | None = None, params: dict[str, Any] | None = None, hidden: bool = False,
    gold_out: str | os.PathLike | None = None, overwrite: bool = False, progress: bool = True,
    repo_id: str | None = None,
) -> dict[str, Any]:
    """Write the Hub folder `out` for `task` and return its manifest. Every check runs before any write."""
    spec = get_task(task)
    if samples <= 0:
        raise InputError(f"--samples must be a positive integer, got {samples}")
    targets = _unique(parse_length(length) for length in lengths)
    if not targets:
        raise InputError("name at least one length, e.g. --lengths 4k,8k")
    tok = get_tokenizer(tokenizer)
    knobs = spec.make_params(params)
    for target in targets:
        spec.check_length(target, knobs, tok)
    out = Path(out).expanduser()
    gold_path = _check_hidden(hidden, gold_out, out, overwrite)
    if seed is not None and seed < 0:
        raise InputError(f"--seed must be >= 0, got {seed}")

    source = spec.card_info(knobs) if hasattr(spec, "card_info") else None
    overrides = _shown({name: getattr(knobs, name) for name in (params or {})}, source)
    key = {
        "task": task, "lengths": [format_length(t) for t in targets], "samples": samples,
        "tokenizer": tok.name, "params": overrides, "source": source, "generator_version": spec.version,
        "hidden": hidden,
        "seed": seed if seed is not None or hidden else 0,
        "repo": repo_id or f"{HUB_ORG}/{task}" + ("-hidden" if hidden else ""),
    }
    existing = read_manifest(out) if out.is_dir() else None
    if not hidden and existing is not None and _build_key(existing) == key and not overwrite:
        return existing  # the same build is already there: nothing to redo (e.g. retrying a failed push)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise InputError(f"{out} already exists and is not empty; pass --overwrite to replace it")

    work = out.parent / f".{out.name}.sftasks-build"
    key["seed"] = _resume_or_reset(work, key)
    stage = work / task  # write_task writes OUT/TASK/LENGTH/test.*, so OUT = work gives stage/LENGTH/...
    gold_rows: list[dict[str, Any]] = []
    configs: dict[str, dict[str, Any]] = {}
    example = None
    for target in targets:
        name = format_length(target)
        public_file = stage / name / "test.parquet"
        if hidden:
            gold_file = work / ".gold" / task / name / "test.jsonl"
            if not gold_file.exists():
                write_task(task, target, work / ".gold", samples=samples, seed=key["seed"], tokenizer=tokenizer,
                           params=params, fmt="jsonl", overwrite=True, progress=progress)
            gold, public = _hide(read_jsonl(gold_file), task, name)
            gold_rows.extend(gold)
            write_parquet(public_file, public)
        elif not public_file.exists():
            write_task(task, target, work, samples=samples, seed=key["seed"], tokenizer=tokenizer,
                       params=params, fmt="parquet", overwrite=True, progress=progress)
        configs[name], first = _parquet_summary(target, stage, f"{name}/test.parquet")
        example = example or first

    manifest = {
        "sftasks_manifest": MANIFEST_FORMAT, "task": task, "description": spec.description,
        "repo": key["repo"], "hidden": hidden, "samples": samples, "seed": None if hidden else key["seed"],
        "tokenizer": tok.name,
        "params": overrides, "knobs": _shown(dataclasses.asdict(knobs), source), "source": source,
        "generator_version": spec.version,
        "sftasks_version": __version__, "checksum": CHECKSUM_DEFINITION, "configs": configs,
    }
    from .card import render_card

    write_text(stage / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    write_text(stage / "README.md", render_card(manifest, spec, example))
    if hidden:
        write_jsonl(gold_path, gold_rows)
    _swap_into_place(stage, out)
    shutil.rmtree(work, ignore_errors=True)
    return manifest


def _shown(knobs: dict[str, Any], source: dict[str, str] | None) -> dict[str, Any]:
    """Knobs as the card and manifest show them: a `source` knob becomes the name the task's
    `card_info` gives (a Hub name, or a local file's name without its folder: no local path is
    published; the file's SHA-256 is in `source`)."""
    if source and "source" in knobs:
        return {**knobs, "source": source.get("source", "")}
    return knobs


def _unique(values: Iterable[int]) -> list[int]:
    result: list[int] = []
    for value in values:
        if value not in result:
            result.append(value)
    return result


def _check_hidden(hidden: bool, gold_out, out: Path, overwrite: bool) -> Path | None:
    if not hidden:
        if gold_out is not None:
            raise InputError("--gold-out only makes sense with --hidden")
        return None
    if gold_out is None:
        raise InputError("--hidden needs --gold-out PATH (a .jsonl file outside the public folder) for the answers")
    gold_path = Path(gold_out).expanduser().resolve()
    if gold_path == out.resolve() or out.resolve() in gold_path.parents:
        raise InputError(f"--gold-out {gold_out} is inside the public folder {out}; put the answers elsewhere")
    if gold_path.is_dir():
        raise InputError(f"--gold-out {gold_out} is a folder; name a file, e.g. gold/TASK.jsonl")
    if gold_path.exists() and not overwrite:
        raise InputError(f"--gold-out {gold_out} already exists (answers of an earlier split?); "
                         "pass --overwrite to replace it")
    return gold_path


def _build_key(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "task": manifest.get("task"), "lengths": list(manifest.get("configs", {})),
        "samples": manifest.get("samples"), "tokenizer": manifest.get("tokenizer"),
        "params": manifest.get("params"), "source": manifest.get("source"),
        "generator_version": manifest.get("generator_version"),
        "hidden": manifest.get("hidden"), "seed": manifest.get("seed"), "repo": manifest.get("repo"),
    }


def _resume_or_reset(work: Path, key: dict[str, Any]) -> int:
    """Keep an interrupted build of the same key (its finished lengths are reused); return the seed to use.

    A hidden build without --seed draws a secret seed once and keeps it in the build folder, so a resumed
    build continues with the same seed; the seed leaves the build only inside the gold file.
    """
    state = work / "build.json"
    if state.is_file():
        try:
            saved = json.loads(state.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            saved = None
        wanted = dict(key, seed=saved.get("seed") if saved and key["seed"] is None else key["seed"])
        if saved == wanted:
            return saved["seed"]
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    seed = key["seed"] if key["seed"] is not None else secrets.randbelow(2**62)
    write_text(state, json.dumps(dict(key, seed=seed)))
    return seed


def _hide(rows: list[dict[str, Any]], task: str, length: str) -> tuple[list[dict], list[dict]]:
    """(gold, public) records: both get seedless ids; public loses answers, evidence and the seed."""
    gold, public = [], []
    for index, row in enumerate(rows):
        row = dict(row, id=hidden_id(task, length, index))
        gold.append(row)
        public.append(dict(row, seed=-1, answer=[], evidence=[]))
    return gold, public


def _swap_into_place(stage: Path, out: Path) -> None:
    """Rename the finished folder to `out`; an old `out` (with --overwrite) is removed only afterwards."""
    trash = out.parent / f".{out.name}.sftasks-old"
    shutil.rmtree(trash, ignore_errors=True)
    if out.exists():
        os.replace(out, trash)
    os.replace(stage, out)
    shutil.rmtree(trash, ignore_errors=True)


def check_push(repo_id: str) -> str:
    """The Hugging Face token for pushing to `repo_id`; raises before any work is done when there is none."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise InputError(f"--push-to {repo_id!r} is not a Hub repo id; write ORG/NAME") from None
    try:
        token = get_token()
    except Exception as exc:  # e.g. a failed OIDC token exchange (HF_OIDC_RESOURCE set)
        raise InputError(f"--push-to {repo_id}: cannot get a Hugging Face token ({exc}); set HF_TOKEN") from None
    if not token:
        raise InputError(f"--push-to {repo_id} needs a Hugging Face token: set HF_TOKEN or run `hf auth login`")
    return token


def push_folder(folder: str | os.PathLike, repo_id: str, token: str) -> str:
    """Create the dataset repo if needed and upload the folder; returns the repo URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    manifest = read_manifest(folder) or {}
    message = f"sftasks {__version__}: {manifest.get('task', 'dataset')} {', '.join(manifest.get('configs', {}))}"
    try:
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(folder), commit_message=message)
    except Exception as exc:  # huggingface_hub raises many types (HTTP, offline, auth); all mean "not uploaded"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(
            f"upload of {folder} to {repo_id} failed ({type(exc).__name__}: {reason}); "
            "the folder is kept, rerun the same command to retry"
        ) from None
    return f"https://huggingface.co/datasets/{repo_id}"
