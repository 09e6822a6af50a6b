"""QA tasks (qa_squad, qa_quality, qa_toefl): source loading in every accepted shape, exact lengths,
the same questions at every length, determinism, independent checker, evidence, refusals.

TOEFL uses the shared file ../shared/data/toeflqa.jsonl; SQuAD and QuALITY use small files of the
same shapes that the tests write (random words from the CWE word pool, so nothing is downloaded).
"""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sftasks.cli import main
from sftasks.errors import DataError, InputError, LengthError
from sftasks.generate import generate_records
from sftasks.generators.qa import tasks as qa
from sftasks.generators.qa.source import load_source, split_options
from sftasks.generators.ruler.words import word_pool
from sftasks.lengths import lower_bound, parse_length
from sftasks.tasks import get_task
from sftasks.tokenizers import get_tokenizer

TOEFL = Path(__file__).resolve().parents[2] / "shared" / "data" / "toeflqa.jsonl"


def _words(rng, n):
    pool = word_pool()
    return [pool[i] for i in rng.integers(0, len(pool), size=n)]


def _paragraph(rng, sentences):
    return " ".join(" ".join(_words(rng, int(rng.integers(6, 14)))).capitalize() + "." for _ in range(sentences))


@pytest.fixture(scope="module")
def squad_file(tmp_path_factory):
    """Official SQuAD v2 JSON: 1000 paragraphs, answers are spans; one unanswerable question each."""
    rng = np.random.default_rng(1)
    articles = []
    for a in range(100):
        paragraphs = []
        for _ in range(10):
            context = _paragraph(rng, 10)
            words = context.rstrip(".").split()
            start = int(rng.integers(0, len(words) - 3))
            span = " ".join(words[start:start + 3]).strip(".")
            paragraphs.append({"context": context, "qas": [
                {"id": f"q{a}-{len(paragraphs)}", "question": f"Which words follow {words[start - 1] if start else 'the start'}?",
                 "answers": [{"text": span, "answer_start": context.find(span)},
                             {"text": span.split()[0], "answer_start": context.find(span)}], "is_impossible": False},
                {"id": f"u{a}-{len(paragraphs)}", "question": "What is never said?", "answers": [], "is_impossible": True},
            ]})
        articles.append({"title": f"article {a}", "paragraphs": paragraphs})
    path = tmp_path_factory.mktemp("squad") / "squad_dev.json"
    path.write_text(json.dumps({"version": "v2.0", "data": articles}))
    return path


@pytest.fixture(scope="module")
def quality_file(tmp_path_factory):
    """QuALITY flat rows (one question per row, 1-based gold_label): 60 articles, every other one
    short (~1k tokens), the rest long (~4k tokens)."""
    rng = np.random.default_rng(2)
    rows = []
    for a in range(60):
        article = "\n\n".join(_paragraph(rng, 20) for _ in range(4 if a % 2 else 14))
        for q in range(2):
            options = [" ".join(_words(rng, 4)) for _ in range(4)]
            rows.append({"article_id": a, "article": article, "question": f"What does part {q} of story {a} say?",
                         "options": options, "gold_label": int(rng.integers(1, 5))})
    path = tmp_path_factory.mktemp("quality") / "quality_dev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def sources(squad_file, quality_file):
    return {"qa_squad": str(squad_file), "qa_quality": str(quality_file), "qa_toefl": str(TOEFL)}


def _loaded(task, path):
    spec = get_task(task)
    return spec.source(spec.make_params({"source": path}))


@pytest.mark.parametrize("length", ["2k", "16k", "128k"])
@pytest.mark.parametrize("task", ["qa_squad", "qa_quality", "qa_toefl"])
def test_exact_length_checker_and_evidence(task, length, sources):
    knobs = {"source": sources[task], "base_length": "2k"}
    source = _loaded(task, sources[task])
    target = parse_length(length)
    for record in generate_records(task, length, samples=2 if length != "128k" else 1, params=knobs):
        assert lower_bound(target) <= record["num_tokens"] <= target
        assert get_tokenizer().count(record["input"]) == record["num_tokens"]
        assert qa.check(record, source) == record["answer"]
        params = json.loads(record["params"])
        number = params["target_document"]
        assert f"Question about document {number}:" in record["question"]
        assert 1 <= number <= params["num_documents"]
        document = record["input"][record["evidence"][0]["start"]:record["evidence"][0]["end"]]
        assert document.startswith(f"Document {number}:\n")
        assert document[len(f"Document {number}:\n"):] in source.documents
        if task == "qa_squad":
            found = [record["input"][e["start"]:e["end"]] for e in record["evidence"][1:]]
            assert found and found[0] in record["answer"] and found[0] in document
        else:
            assert all(len(a) == 1 and a in "ABCD" for a in record["answer"])


def test_documents_are_numbered_and_distinct(sources):
    record = next(generate_records("qa_quality", "32k", params={"source": sources["qa_quality"], "base_length": "4k"}))
    numbers = [int(n) for n in re.findall(r"^Document (\d+):$", record["context"], re.MULTILINE)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 8
    assert json.loads(record["params"])["num_documents"] == len(numbers)


def test_same_questions_at_every_length(sources):
    knobs = {"source": sources["qa_toefl"], "base_length": "2k"}

    def asked(length):
        return [re.sub(r"document \d+", "document N", r["question"])
                for r in generate_records("qa_toefl", length, samples=4, seed=9, params=knobs)]

    short, long = asked("2k"), asked("16k")
    assert short == long and len(set(short)) == 4
    other_seed = [r["question"] for r in generate_records("qa_toefl", "2k", samples=4, seed=10, params=knobs)]
    assert other_seed != short


def test_pool_keeps_only_questions_whose_document_fits_base_length(sources):
    task = get_task("qa_quality")
    tok = get_tokenizer()
    small = qa._pool(task, task.make_params({"source": sources["qa_quality"], "base_length": "2k"}), tok)
    large = qa._pool(task, task.make_params({"source": sources["qa_quality"], "base_length": "8k"}), tok)
    short = {i.document for i in small}
    assert len(large) == 120 and len(small) == 60  # ~4k-token articles fit 8k but not 2k
    source = task.source(task.make_params({"source": sources["qa_quality"]}))
    assert all(len(source.documents[d]) < 8000 for d in short)
    with pytest.raises(DataError, match="raise base_length"):
        list(generate_records("qa_quality", "1k", params={"source": sources["qa_quality"], "base_length": "1k"}))


def test_record_and_card_name_the_source(sources):
    record = next(generate_records("qa_toefl", "8k", params={"source": sources["qa_toefl"]}))
    params = json.loads(record["params"])
    digest = hashlib.sha256(b"toeflqa.jsonl\0" + TOEFL.read_bytes()).hexdigest()
    assert params["source"] == "toeflqa.jsonl" and params["source_sha256"] == digest
    spec = get_task("qa_toefl")
    assert spec.card_info(spec.make_params({"source": sources["qa_toefl"]})) == {
        "source": "toeflqa.jsonl", "source_sha256": digest}
    assert str(TOEFL.parent) not in record["params"]  # no machine-specific paths in published records


_DIGEST = """
import hashlib, json, sys
from sftasks.generate import generate_records
h = hashlib.sha256()
for task, path in json.loads(sys.argv[1]).items():
    for r in generate_records(task, "4k", samples=2, seed=4, params={"source": path, "base_length": "4k"}):
        h.update(json.dumps(r, sort_keys=True).encode())
print(h.hexdigest())
"""


def test_deterministic_across_processes(sources):
    chosen = json.dumps({"qa_squad": sources["qa_squad"], "qa_toefl": sources["qa_toefl"]})
    runs = {subprocess.run([sys.executable, "-c", _DIGEST, chosen], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(runs) == 1 and len(runs.pop().strip()) == 64


def _cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "sftasks.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env})


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}])
@pytest.mark.parametrize("task", ["qa_squad", "qa_quality", "qa_toefl"])
def test_missing_source_is_one_line_exit_2(task, env, tmp_path):
    result = _cli("generate", task, "--len", "8k", "--samples", "1", "--out", str(tmp_path), **env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "--param source=" in result.stderr


@pytest.mark.parametrize("knobs,error,message", [
    ({"source": "/no/such/file.jsonl"}, InputError, "does not exist"),
    ({"base_length": "lots"}, InputError, "base_length of qa_toefl: bad length"),
    ({"base_length": "100"}, InputError, "at least 512"),
    ({"wrong": "1"}, InputError, "unknown parameter"),
])
def test_bad_knobs_are_refused(knobs, error, message):
    with pytest.raises(error, match=message):
        get_task("qa_toefl").make_params(knobs)


def test_lengths_outside_the_source_are_refused(sources):
    knobs = {"source": sources["qa_toefl"], "base_length": "4k"}
    with pytest.raises(LengthError, match="smallest length that works is 4096"):
        list(generate_records("qa_toefl", "2k", params=knobs))
    with pytest.raises(LengthError, match="can fill"):
        list(generate_records("qa_toefl", "1m", params=knobs))
    pool = len(qa._pool(get_task("qa_toefl"), get_task("qa_toefl").make_params(knobs),
                        get_tokenizer()))
    with pytest.raises(InputError, match=f"at most {pool} samples"):
        list(generate_records("qa_toefl", "4k", samples=pool + 1, start=pool, params=knobs))


def test_cli_generates_from_a_local_source(sources, tmp_path):
    code = main(["generate", "qa_squad", "--len", "4k", "--samples", "2", "--format", "jsonl", "--out", str(tmp_path),
                 "--param", f"source={sources['qa_squad']}", "--param", "base_length=4k"])
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "qa_squad" / "4k" / "test.jsonl").open()]
    assert len(rows) == 2 and all(len(r["answer"]) == 2 for r in rows)


def test_loader_accepts_every_documented_shape(tmp_path, squad_file, quality_file):
    official = load_source(str(squad_file), ("x", None, "y"), "squad")
    assert len(official.items) == 1000 and len(official.documents) == 1000  # unanswerable dropped
    flat = [{"context": p["context"], "question": qa_["question"], "answers": {"text": [a["text"] for a in qa_["answers"]]}}
            for art in json.loads(squad_file.read_text())["data"] for p in art["paragraphs"] for qa_ in p["qas"]]
    (tmp_path / "squad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in flat))
    assert load_source(str(tmp_path / "squad.jsonl"), ("x", None, "y"), "squad").items == official.items

    by_row = load_source(str(quality_file), ("x", None, "y"), "quality")
    rows = [json.loads(line) for line in quality_file.open()]
    articles = {}
    for r in rows:
        articles.setdefault(r["article"], []).append({"question": r["question"], "options": r["options"],
                                                      "gold_label": r["gold_label"]})
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "quality_parquet"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([{"article": a, "questions": q} for a, q in articles.items()]),
                   folder / "part-0.parquet")
    assert load_source(str(folder), ("x", None, "y"), "quality").items == by_row.items
    assert by_row.items[0].answers[0] == "ABCD"[rows[0]["gold_label"] - 1]

    (tmp_path / "broken.jsonl").write_text('{"context": "x"\n')
    with pytest.raises(DataError, match="cannot read"):
        load_source(str(tmp_path / "broken.jsonl"), ("x", None, "y"), "squad")
    (tmp_path / "other.jsonl").write_text('{"text": "no questions here"}\n')
    with pytest.raises(DataError, match="no usable"):
        load_source(str(tmp_path / "other.jsonl"), ("x", None, "y"), "squad")


def test_toefl_options_and_multi_letter_answers():
    source = load_source(str(TOEFL), ("x", None, "y"), "toefl")
    assert len(source.documents) == 198 and len(source.items) == 962
    assert all(len(i.options) == 4 for i in source.items) and source.multiple_correct
    assert split_options("Question: why? Options: A.one B.two C.vitamin C. D.four") == (
        "why?", ("one", "two", "vitamin C.", "four"))
    assert split_options("just a question") == ("just a question", ())


def test_build_sample_picks_the_question_from_seed_and_index_and_build_takes_any_generator(sources):
    spec, tok = get_task("qa_toefl"), get_tokenizer()
    params = spec.make_params({"source": sources["qa_toefl"], "base_length": "2k"})
    asked = spec.question(5, 3, tok, params)
    for target in (2048, 8192):
        sample = spec.build_sample(target, seed=5, index=3, tokenizer=tok, params=params)
        assert asked.question in sample.question and sample.answer == list(asked.answers)
    # build no longer needs a generator made by sample_rng: any seeded generator gives a valid sample
    sample = spec.build(4096, np.random.default_rng(0), tok, params)
    assert lower_bound(4096) <= sample.num_tokens <= 4096 and sample.answer


REPO = Path(__file__).resolve().parents[1]
SHARED_TOEFL = "../shared/data/toeflqa.jsonl"  # relative to the repository root, as users write it


def test_source_option_equals_param_source(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    common = ["generate", "qa_toefl", "--len", "4k", "--samples", "2", "--format", "jsonl", "--param", "base_length=4k"]
    assert main([*common, "--source", SHARED_TOEFL, "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--param", f"source={SHARED_TOEFL}", "--out", str(tmp_path / "b")]) == 0
    a, b = (tmp_path / x / "qa_toefl" / "4k" / "test.jsonl" for x in "ab")
    assert a.read_bytes() == b.read_bytes()
    assert json.loads(a.read_text().splitlines()[0])["params"].count("toeflqa.jsonl") == 1


@pytest.mark.parametrize("args,message", [
    (["generate", "ruler_cwe", "--len", "4k", "--source", SHARED_TOEFL], "--source does not apply to ruler_cwe"),
    (["publish", "story_multihop", "--lengths", "4k", "--source", SHARED_TOEFL], "--source does not apply"),
    (["generate", "qa_toefl", "--len", "4k", "--source", SHARED_TOEFL, "--param", "source=other.jsonl"], "disagree"),
    (["publish", "qa_toefl", "--lengths", "4k", "--source", "missing/toefl.jsonl"], "--source PATH"),
])
def test_source_option_refusals_are_one_line_exit_2(args, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", "sftasks.cli", *args, "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_publish_from_a_local_source_leaks_no_path_and_regenerates(tmp_path, monkeypatch, offline_hf):
    import datasets

    import sftasks
    from sftasks import publish, releases

    monkeypatch.chdir(REPO)
    out = tmp_path / "hub" / "qa_toefl"
    assert main(["publish", "qa_toefl", "--lengths", "4k,8k", "--samples", "2", "--source", SHARED_TOEFL,
                 "--param", "base_length=4k", "--out", str(out)]) == 0
    digest = hashlib.sha256(b"toeflqa.jsonl\0" + TOEFL.read_bytes()).hexdigest()
    manifest = json.loads((out / "sftasks.json").read_text())
    assert manifest["source"] == {"source": "toeflqa.jsonl", "source_sha256": digest}
    assert manifest["params"]["source"] == manifest["knobs"]["source"] == "toeflqa.jsonl"
    card = (out / "README.md").read_text()
    assert digest in card and "--source PATH/TO/toeflqa.jsonl --param base_length=4k" in card
    files = [p for p in out.rglob("*") if p.is_file()]
    everything = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in files)
    for path in (SHARED_TOEFL, "shared/data", str(TOEFL), str(TOEFL.parent), str(REPO), str(tmp_path)):
        assert path not in everything, path
    for parquet in out.rglob("*.parquet"):  # parquet may compress: check the decoded rows too
        rows = json.dumps(datasets.load_dataset("parquet", data_files=str(parquet), split="train").to_list())
        assert "shared/data" not in rows and str(REPO) not in rows
    # Regeneration with the same file (here: beside the user, under the published name) gives the same records.
    monkeypatch.setitem(releases.PINNED, "qa_toefl", manifest)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=f"local file toeflqa.jsonl \\(SHA-256 {digest[:16]}"):
        sftasks.load_dataset("sparse-frontier/qa_toefl", length="8k", progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "toeflqa.jsonl").symlink_to(TOEFL)
    monkeypatch.chdir(tmp_path / "mine")
    regenerated = sftasks.load_dataset("sparse-frontier/qa_toefl", length="8k", progress=False).to_list()
    assert publish.checksum(regenerated) == manifest["configs"]["8k"]["checksum"]
