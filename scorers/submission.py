"""Reading predictions files, and validating untrusted leaderboard submissions.

A submission is plain JSONL, parsed with `json` only: nothing in it is executed, imported or unpickled.
Messages name line numbers and submitted ids, never gold answers or prediction text, so a checker's
output cannot leak the hidden answers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError

MAX_PREDICTION_BYTES = 64 * 1024
MAX_FILE_BYTES = 256 * 1024 * 1024
SHOWN_PROBLEMS = 20

# Meta fields and the JSON types they must have (sparsity: a number in [0, 1], or null when unknown).
META_FIELDS: dict[str, tuple[type, ...]] = {
    "method": (str,), "model": (str,), "params": (dict,), "sparsity": (float, int, type(None)),
    "code_version": (str,), "contact": (str,),
}
ROW_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (str,), "prediction": (str,), "sparsity": (dict,), "timings": (dict,), "num_input_tokens": (int,),
}
_TYPE_NAMES = {str: "a string", dict: "an object", int: "an integer", float: "a number", type(None): "null"}


@dataclass
class Problem:
    line: int | None  # 1-based line of the file; None for whole-file problems (coverage, size)
    message: str


@dataclass
class Submission:
    """What could be read: meta, then (line, row) for every well-formed prediction line."""

    meta: dict[str, Any] | None
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def show(value: Any, limit: int = 60) -> str:
    """An untrusted value, printable on one line: ASCII-escaped (no terminal control codes) and cut short."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages to people who wrote JSON."""
    for kind, name in ((bool, "boolean"), (str, "string"), (int, "integer"), (float, "number"), (dict, "object"),
                       (list, "array")):
        if isinstance(value, kind):
            return name
    return "null"


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _type_problem(where: str, value: Any, types: tuple[type, ...]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, types):
        wanted = " or ".join(_TYPE_NAMES[t] for t in types if not (t is int and float in types))
        return f"{where} must be {wanted}, got {json_type(value)}"
    return None


def check_meta(meta: Any) -> list[str]:
    """Problems with a meta object: missing fields, wrong types, sparsity outside [0, 1]."""
    if not isinstance(meta, dict):
        return [f"meta must be an object, got {json_type(meta)}"]
    problems = []
    for name, types in META_FIELDS.items():
        if name not in meta:
            problems.append(f"meta field {name!r} is missing")
        elif problem := _type_problem(f"meta field {name!r}", meta[name], types):
            problems.append(problem)
    sparsity = meta.get("sparsity")
    if isinstance(sparsity, (int, float)) and not isinstance(sparsity, bool) and not 0.0 <= sparsity <= 1.0:
        problems.append(f"meta field 'sparsity' must be in [0, 1], got {sparsity!r}")
    return problems


def _check_row(row: dict[str, Any], max_prediction_bytes: int, strict: bool) -> list[str]:
    """Problems of one prediction line; not `strict`: extra fields and a null prediction are let through."""
    problems = []
    for name in ("id", "prediction"):
        if name not in row:
            problems.append(f"field {name!r} is missing")
    for name, value in row.items():
        if name not in ROW_FIELDS:
            if strict:
                problems.append(f"unexpected field {show(name, 40)}; allowed: {', '.join(ROW_FIELDS)}")
        elif strict or not (name == "prediction" and value is None):
            if problem := _type_problem(f"field {name!r}", value, ROW_FIELDS[name]):
                problems.append(problem)
    if isinstance(row.get("id"), str) and not row["id"]:
        problems.append("field 'id' is empty")
    prediction = row.get("prediction")
    if isinstance(prediction, str):
        size = len(prediction.encode("utf-8", errors="surrogatepass"))
        if size > max_prediction_bytes:
            problems.append(f"prediction is {size} bytes; the limit is {max_prediction_bytes} bytes")
    return problems


def side_meta_path(path: Path) -> Path:
    """`preds.jsonl` -> `preds.meta.json`: where a meta object may live instead of the first line."""
    return path.with_name(path.name.removesuffix(".jsonl") + ".meta.json")


def parse_submission(path: str | os.PathLike, *, max_bytes: int = MAX_FILE_BYTES,
                     max_prediction_bytes: int = MAX_PREDICTION_BYTES, strict: bool = True) -> Submission:
    """Read a predictions file line by line, collecting every problem with its line number.

    `strict=False` (scoring one's own runs) takes whatever meta there is, or none, and ignores extra fields.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"no such file: {path}") from None
    if not path.is_file():
        raise DataError(f"{path} is not a file; pass the submission's .jsonl file")
    if size > max_bytes:
        return Submission(None, [], [Problem(None, f"file is {size} bytes; the limit is {max_bytes} bytes")])
    data = path.read_bytes()
    submission = Submission(meta=None)
    problems = submission.problems
    lines = data.split(b"\n")
    first_content = True
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a BOM is tolerated at the start
        except UnicodeDecodeError:
            problems.append(Problem(number, "not UTF-8 text"))
            first_content = False
            continue
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            problems.append(Problem(number, "not a JSON value"))
            first_content = False
            continue
        if first_content and isinstance(value, dict) and "meta" in value:
            first_content = False
            submission.meta = value["meta"]
            extra = sorted(set(value) - {"meta"})
            if strict and extra:
                problems.append(Problem(number, f"the meta line has unexpected fields {show(extra)}"))
            if strict:
                problems.extend(Problem(number, p) for p in check_meta(value["meta"]))
            continue
        first_content = False
        if not isinstance(value, dict):
            problems.append(Problem(number, f"must be a JSON object, got {json_type(value)}"))
            continue
        if "meta" in value:
            problems.append(Problem(number, "a meta object is only allowed on the first line"))
            continue
        row_problems = _check_row(value, max_prediction_bytes, strict)
        problems.extend(Problem(number, p) for p in row_problems)
        sample_id = value.get("id")
        if isinstance(sample_id, str) and sample_id:
            if sample_id in seen:
                problems.append(Problem(number, f"duplicate id {show(sample_id)} (first on line {seen[sample_id]})"))
                continue
            seen[sample_id] = number
        if not row_problems:
            submission.rows.append((number, value))
    if submission.meta is None and (strict or side_meta_path(path).is_file()):
        _read_side_meta(path, submission, strict)
    return submission


def _read_side_meta(path: Path, submission: Submission, strict: bool) -> None:
    side = side_meta_path(path)
    if not side.is_file():
        message = f"no meta: put {{\"meta\": {{...}}}} on the first line or in {side.name}"
        submission.problems.append(Problem(1, message))
        return
    try:
        value = json.loads(side.read_bytes().decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        submission.problems.append(Problem(None, f"{side.name} is not UTF-8 JSON"))
        return
    meta = value.get("meta", value) if isinstance(value, dict) else value
    submission.meta = meta
    if strict:
        submission.problems.extend(Problem(None, f"{side.name}: {p}") for p in check_meta(meta))


@dataclass
class CheckResult:
    """A validated submission: problems (line-numbered), and how much of the gold it covers."""

    submission: Submission
    gold_total: int
    covered: int
    missing: list[str]

    @property
    def problems(self) -> list[Problem]:
        return self.submission.problems

    @property
    def ok(self) -> bool:
        return not self.problems


def check_submission(path: str | os.PathLike, gold_ids: list[str], *, allow_missing: bool = False,
                     max_bytes: int = MAX_FILE_BYTES, max_prediction_bytes: int = MAX_PREDICTION_BYTES) -> CheckResult:
    """Every problem of a submission against the gold ids: format, meta, unknown / duplicate / missing ids."""
    submission = parse_submission(path, max_bytes=max_bytes, max_prediction_bytes=max_prediction_bytes)
    gold = set(gold_ids)
    known = []
    for number, row in submission.rows:
        if row["id"] in gold:
            known.append((number, row))
        else:
            submission.problems.append(Problem(number, f"unknown id {show(row['id'])}: not in the gold split"))
    submission.rows = known
    covered = {row["id"] for _, row in known}
    missing = sorted(gold - covered)
    if missing and not allow_missing:
        submission.problems.append(Problem(None, f"{len(missing)} gold ids have no prediction (missing ids score 0), "
                                                 f"e.g. {', '.join(show(m) for m in missing[:3])}"))
    submission.problems.sort(key=lambda p: (p.line is None, p.line or 0))
    return CheckResult(submission, len(gold), len(covered), missing)


def format_problems(path: str | os.PathLike, problems: list[Problem], shown: int = SHOWN_PROBLEMS) -> list[str]:
    """`path:line: message` for the first `shown` problems, then one line with how many more."""
    lines = [f"{path}:{p.line}: {p.message}" if p.line is not None else f"{path}: {p.message}"
             for p in problems[:shown]]
    if len(problems) > shown:
        lines.append(f"... and {len(problems) - shown} more problems")
    return lines


def read_predictions(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(meta, {id: row}) of a predictions file for scoring; the first problem raises DataError.

    Lenient (scoring your own runs): meta is optional, extra fields are ignored, a null prediction
    scores 0, and a last line torn by a crashed run is ignored.
    """
    submission = parse_submission(path, max_bytes=2**62, max_prediction_bytes=2**62, strict=False)
    problems = submission.problems
    lines = Path(path).read_bytes().rstrip(b"\n").count(b"\n") + 1
    if problems and problems[-1].line == lines and problems[-1].message == "not a JSON value":
        problems.pop()  # torn tail of an interrupted run: that sample is simply missing
    if problems:
        first = problems[0]
        where = f"{path}:{first.line}" if first.line is not None else str(path)
        raise DataError(f"{where}: {first.message}; fix the file (`sftasks submit-check` lists every problem)")
    meta = submission.meta if isinstance(submission.meta, dict) else {}
    return meta, {row["id"]: row for _, row in submission.rows}
