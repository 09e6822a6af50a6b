"""`sftasks submit-check`: every malformed submission is caught with its line number, nothing in the file
is executed, and the gold answers never appear in any output."""

import json

import pytest
from test_scoring_gold import META, gold_record, write_gold, write_predictions

from sftasks.cli import main
from sftasks.scorers.submission import check_meta, check_submission, format_problems, parse_submission, read_predictions

SECRETS = ["zanzibar quartz chalice", "obsidian whistle of tyre"]


@pytest.fixture
def gold(tmp_path):
    """Two samples whose answers are distinctive strings we can search every output for."""
    records = [gold_record("story_multihop", i, answer=[SECRETS[i]]) for i in range(2)]
    write_gold(tmp_path / "gold", records)
    return tmp_path / "gold", [r["id"] for r in records]


def check(gold, tmp_path, capsys, lines, *extra):
    path = tmp_path / "sub.jsonl"
    if isinstance(lines, bytes):
        path.write_bytes(lines)
    else:
        path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
                        encoding="utf-8")
    code = main(["submit-check", str(path), "--gold", str(gold[0]), *extra])
    out = capsys.readouterr()
    for secret in SECRETS:
        assert secret not in out.out and secret not in out.err, "a gold answer leaked into the output"
    return code, out.out


def rows(ids, prediction="x"):
    return [{"id": i, "prediction": prediction} for i in ids]


def test_a_valid_submission_passes(gold, tmp_path, capsys):
    code, out = check(gold, tmp_path, capsys, [{"meta": META}, *rows(gold[1], SECRETS[0])])
    assert code == 0
    assert "coverage: 2/2 gold ids (100.0%)" in out and "OK" in out


@pytest.mark.parametrize("name,make,expected", [
    ("not json", lambda ids: [{"meta": META}, "{not json", *rows(ids)], ":2: not a JSON value"),
    ("nan", lambda ids: [{"meta": META}, '{"id": "%s", "prediction": NaN}' % ids[0], *rows(ids[1:])], ":2: not a JSON value"),
    ("deep nesting", lambda ids: [{"meta": META}, "[" * 100000 + "]" * 100000, *rows(ids)], ":2: not a JSON value"),
    ("not an object", lambda ids: [{"meta": META}, "[1, 2]", *rows(ids)], ":2: must be a JSON object, got array"),
    ("unknown id", lambda ids: [{"meta": META}, *rows(ids), *rows(["story_multihop-4k-0-99"])],
     ":4: unknown id 'story_multihop-4k-0-99'"),
    ("duplicate id", lambda ids: [{"meta": META}, *rows(ids), *rows(ids[:1])], ":4: duplicate id 'story_multihop-4k-0-0' (first on line 2)"),
    ("missing prediction", lambda ids: [{"meta": META}, {"id": ids[0]}, *rows(ids[1:])], ":2: field 'prediction' is missing"),
    ("missing id", lambda ids: [{"meta": META}, {"prediction": "x"}, *rows(ids)], ":2: field 'id' is missing"),
    ("prediction not a string", lambda ids: [{"meta": META}, {"id": ids[0], "prediction": 3}, *rows(ids[1:])],
     ":2: field 'prediction' must be a string, got integer"),
    ("id not a string", lambda ids: [{"meta": META}, {"id": 7, "prediction": "x"}, *rows(ids)], ":2: field 'id' must be a string"),
    ("empty id", lambda ids: [{"meta": META}, {"id": "", "prediction": "x"}, *rows(ids)], ":2: field 'id' is empty"),
    ("unexpected field", lambda ids: [{"meta": META}, {"id": ids[0], "prediction": "x", "code": "import os"}, *rows(ids[1:])],
     ":2: unexpected field 'code'"),
    ("bad optional field", lambda ids: [{"meta": META}, {"id": ids[0], "prediction": "x", "num_input_tokens": "12"},
                                        *rows(ids[1:])], ":2: field 'num_input_tokens' must be an integer, got string"),
    ("prediction over 64 KiB", lambda ids: [{"meta": META}, *rows(ids[:1], "é" * 40000), *rows(ids[1:])],
     ":2: prediction is 80000 bytes; the limit is 65536 bytes"),
    ("meta on a later line", lambda ids: [*rows(ids), {"meta": META}], ":3: a meta object is only allowed on the first line"),
    ("no meta at all", lambda ids: rows(ids), ":1: no meta"),
    ("meta not an object", lambda ids: [{"meta": "dense"}, *rows(ids)], ":1: meta must be an object, got string"),
    ("extra field on meta line", lambda ids: [{"meta": META, "x": 1}, *rows(ids)], ":1: the meta line has unexpected fields"),
])
def test_each_malformed_line_is_reported_with_its_line_number(gold, tmp_path, capsys, name, make, expected):
    code, out = check(gold, tmp_path, capsys, make(gold[1]))
    assert code == 1, out
    assert expected in out, out
    assert "FAILED" in out


def test_non_utf8_line(gold, tmp_path, capsys):
    data = (json.dumps({"meta": META}) + "\n").encode() + b'{"id": "\xff\xfe", "prediction": "x"}\n'
    data += "".join(json.dumps(r) + "\n" for r in rows(gold[1])).encode()
    code, out = check(gold, tmp_path, capsys, data)
    assert code == 1 and ":2: not UTF-8 text" in out


@pytest.mark.parametrize("field,value,message", [
    *[(f, None, f"meta field {f!r} is missing") for f in META],
    ("method", 3, "meta field 'method' must be a string, got integer"),
    ("model", ["x"], "meta field 'model' must be a string, got array"),
    ("params", "block=64", "meta field 'params' must be an object, got string"),
    ("sparsity", "0.5", "meta field 'sparsity' must be a number or null, got string"),
    ("sparsity", True, "meta field 'sparsity' must be a number or null, got boolean"),
    ("sparsity", 1.5, "meta field 'sparsity' must be in [0, 1]"),
    ("code_version", 1, "meta field 'code_version' must be a string, got integer"),
    ("contact", None, "meta field 'contact' is missing"),
])
def test_meta_fields_missing_or_of_the_wrong_type(gold, tmp_path, capsys, field, value, message):
    meta = dict(META)
    if value is None:
        del meta[field]
    else:
        meta[field] = value
    code, out = check(gold, tmp_path, capsys, [{"meta": meta}, *rows(gold[1])])
    assert code == 1 and f":1: {message}" in out, out


def test_null_sparsity_is_allowed():
    assert check_meta({**META, "sparsity": None}) == []
    assert check_meta({**META, "sparsity": 1}) == []


def test_missing_ids_report_coverage(gold, tmp_path, capsys):
    lines = [{"meta": META}, *rows(gold[1][:1])]
    code, out = check(gold, tmp_path, capsys, lines)
    assert code == 1
    assert "coverage: 1/2 gold ids (50.0%)" in out and "1 gold ids have no prediction" in out
    code, out = check(gold, tmp_path, capsys, lines, "--allow-missing")
    assert code == 0 and "coverage: 1/2 gold ids (50.0%)" in out


def test_file_over_the_size_limit_is_not_read(gold, tmp_path, capsys):
    code, out = check(gold, tmp_path, capsys, [{"meta": META}, *rows(gold[1])], "--max-bytes", "100")
    assert code == 1 and "the limit is 100 bytes" in out


def test_side_meta_file(gold, tmp_path, capsys):
    (tmp_path / "sub.meta.json").write_text(json.dumps(META), encoding="utf-8")
    code, out = check(gold, tmp_path, capsys, rows(gold[1]))
    assert code == 0, out
    (tmp_path / "sub.meta.json").write_text(json.dumps({**META, "model": 5}), encoding="utf-8")
    code, out = check(gold, tmp_path, capsys, rows(gold[1]))
    assert code == 1 and "sub.meta.json: meta field 'model' must be a string" in out


def test_only_the_first_20_problems_are_listed_then_a_count(gold, tmp_path, capsys):
    code, out = check(gold, tmp_path, capsys, [{"meta": META}, *rows(gold[1]), *["nope"] * 30])
    listed = [line for line in out.splitlines() if ": not a JSON value" in line]
    assert code == 1 and len(listed) == 20
    assert listed[0].endswith("sub.jsonl:4: not a JSON value")
    assert "... and 10 more problems" in out and "FAILED: 30 problems" in out


def test_nothing_in_a_submission_is_unpickled_or_executed(gold, tmp_path, capsys):
    marker = tmp_path / "pwned"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()  # a pickle that runs a shell command
    code, out = check(gold, tmp_path, capsys, payload + b"\n" + b'{"__import__": "os"}\n')
    assert code == 1 and not marker.exists()
    assert ":1: not a JSON value" in out


def test_untrusted_ids_are_printed_escaped_on_one_line(gold, tmp_path, capsys):
    code, out = check(gold, tmp_path, capsys, [{"meta": META}, *rows(["evil\x1b[2J\nid"]), *rows(gold[1])])
    assert code == 1 and "\x1b" not in out
    assert ":2: unknown id 'evil\\x1b[2J\\nid'" in out


def test_gold_answers_never_appear_even_in_the_python_api(gold, tmp_path):
    path = write_predictions(tmp_path / "p.jsonl", {gold[1][0]: SECRETS[0], "bad": SECRETS[1]})
    result = check_submission(path, gold[1])
    text = "\n".join(format_problems(path, result.problems))
    assert "unknown id 'bad'" in text and result.covered == 1
    assert all(secret not in text for secret in SECRETS)


def test_parse_keeps_only_well_formed_rows(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"meta": META}) + "\n\n" + '{"id": "a", "prediction": "x"}\n{"id": "b"}\n')
    parsed = parse_submission(path)
    assert parsed.meta == META
    assert [(n, r["id"]) for n, r in parsed.rows] == [(3, "a")]
    assert [p.line for p in parsed.problems] == [4]


def test_scoring_reads_own_runs_leniently_but_submissions_strictly(tmp_path):
    path = tmp_path / "run.jsonl"
    lines = [{"id": "a", "prediction": "x", "finish_reason": "length"}, {"id": "b", "prediction": None}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    meta, rows = read_predictions(path)
    assert meta == {} and set(rows) == {"a", "b"} and rows["b"]["prediction"] is None
    strict = parse_submission(path)
    messages = [(p.line, p.message.split(";")[0]) for p in strict.problems]
    assert (1, "unexpected field 'finish_reason'") in messages
    assert (2, "field 'prediction' must be a string, got null") in messages
    assert any(m.startswith("no meta") for _, m in messages)


def test_a_byte_order_mark_is_tolerated(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps({"meta": META}) + "\n" + '{"id": "a", "prediction": "x"}\n').encode())
    parsed = parse_submission(path)
    assert parsed.problems == [] and parsed.meta == META
