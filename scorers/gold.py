"""Gold records for scoring: a folder of records (`sftasks generate` output or a Hub-style folder of
per-length parquet files), a single records file, or a dataset name for `sftasks.load_dataset`.

The long `input` / `context` columns are never read: scorers need only ids, tasks, lengths and answers.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError, InputError
from ..lengths import format_length, parse_length

_SKIPPED_COLUMNS = ("input", "context")
_REQUIRED = ("id", "task", "length", "answer")
_SUFFIXES = (".parquet", ".jsonl", ".json")


def load_gold(source: str, *, length: str | None = None, split: str = "test",
              require_answers: bool = True) -> list[dict]:
    """Gold records from `source`, optionally only those of one `length` (e.g. "64k").

    A folder is searched recursively for `*.parquet` / `*.jsonl` files; files named after `split`
    (`test.parquet`, `test-00000-of-00001.parquet`) are preferred when there are any.
    `require_answers=False` accepts a hidden split (empty answers), enough for checking submissions.
    """
    path = Path(source)
    if path.exists():
        files = _record_files(path, split)
        records = [r for f in files for r in _read_records(f)]
    else:
        records = _load_named(source, length, split)
    if length is not None:
        wanted = format_length(parse_length(length))
        records = [r for r in records if r["length"] == wanted]
        if not records:
            raise DataError(f"no gold records of length {wanted} in {source}; drop --length or pick another")
    if not records:
        raise DataError(f"no gold records found in {source}")
    seen: set[str] = set()
    for record in records:
        if record["id"] in seen:
            raise DataError(f"gold id {record['id']!r} appears twice in {source}; point --gold at one split")
        seen.add(record["id"])
    if require_answers and not any(len(r["answer"]) for r in records):
        raise DataError(f"the gold records in {source} have no answers (a hidden split?); "
                        "score with the answered gold file")
    return records


def _record_files(path: Path, split: str) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    named = [p for p in files if p.name.startswith(split)]
    files = named or files
    if not files:
        raise DataError(f"no .parquet or .jsonl record files under {path}; run `sftasks generate` or point at data/")
    return files


def _read_records(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
            table = pq.read_table(path, columns=[c for c in names if c not in _SKIPPED_COLUMNS])
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(f"cannot read {path} as parquet ({type(exc).__name__}); regenerate it") from None
        rows = table.to_pylist()
    else:
        from ..io import read_jsonl

        rows = read_jsonl(path)
        for row in rows:
            for column in _SKIPPED_COLUMNS:
                row.pop(column, None)
    for row in rows:
        missing = [c for c in _REQUIRED if c not in row]
        if missing:
            raise DataError(f"{path} is not a records file (no {', '.join(missing)} field); point --gold at data/")
        row["answer"] = [str(a) for a in (row["answer"] or [])]
    return rows


def _load_named(name: str, length: str | None, split: str) -> list[dict]:
    """A dataset name (not a local path): `sftasks.load_dataset`, imported only now (it may need the Hub)."""
    try:
        from ..hub import load_dataset
    except ModuleNotFoundError as exc:
        if exc.name == "sftasks.hub":
            raise InputError(f"{name} is not a folder or file; "
                             "pass the data/ folder written by `sftasks generate`") from None
        raise
    dataset = load_dataset(name, length=length, split=split)
    drop = [c for c in _SKIPPED_COLUMNS if c in dataset.column_names]
    rows = dataset.remove_columns(drop).to_list() if drop else dataset.to_list()
    for row in rows:
        row["answer"] = [str(a) for a in (row.get("answer") or [])]
    return rows
