"""RULER-style tasks (ruler_niah, ruler_vt, ruler_cwe): exact lengths, determinism, independent
checkers, evidence spans, knob validation and length refusals."""

import collections
import json
import os
import subprocess
import sys

import pytest

from sftasks.cli import main
from sftasks.errors import InputError, LengthError
from sftasks.generate import generate_records
from sftasks.generators.ruler import cwe, niah, vt
from sftasks.generators.ruler.words import word_pool
from sftasks.lengths import lower_bound, parse_length
from sftasks.tasks import get_task
from sftasks.tokenizers import get_tokenizer

CHECKERS = {"ruler_niah": niah.check, "ruler_vt": vt.check, "ruler_cwe": cwe.check}
# (task, knobs): both NIAH haystacks; CWE at 2k needs fewer repetitions to fit at all.
CASES = [("ruler_niah", {}), ("ruler_niah", {"haystack": "prose"}), ("ruler_vt", {}), ("ruler_cwe", {})]


def _knobs(task, knobs, length):
    if task == "ruler_cwe" and length == "2k":
        return {**knobs, "common_word_frequency": 10}
    return knobs


@pytest.mark.parametrize("length", ["2k", "16k", "128k"])
@pytest.mark.parametrize("task,knobs", CASES)
def test_exact_length_checker_and_evidence(task, knobs, length):
    records = list(generate_records(task, length, samples=2 if length != "128k" else 1, seed=3,
                                    params=_knobs(task, knobs, length)))
    target = parse_length(length)
    for record in records:
        assert lower_bound(target) <= record["num_tokens"] <= target
        assert get_tokenizer().count(record["input"]) == record["num_tokens"]
        assert CHECKERS[task](record) == record["answer"]
        spans = [record["input"][e["start"]:e["end"]] for e in record["evidence"]]
        assert record["context"] in record["input"] and record["question"] in record["input"]
        if task == "ruler_niah":
            keys = json.loads(record["params"])["keys"]
            assert len(spans) == len(record["answer"]) == len(keys)
            for key, value, span in zip(keys, record["answer"], spans):
                assert key in span and value in span
        elif task == "ruler_vt":
            # Every gold variable is assigned in exactly one evidence span; the first sets the value.
            value = json.loads(record["params"])["value"]
            assert value in spans[0]
            assigned = sorted(s.split()[1] for s in spans)
            assert assigned == record["answer"]
        else:
            counts = collections.Counter(s.split(". ", 1)[1] for s in spans)
            frequency = json.loads(record["params"])["common_word_frequency"]
            assert sorted(counts) == record["answer"] and set(counts.values()) == {frequency}


def test_knobs_change_the_samples():
    record = next(generate_records("ruler_niah", "4k", params={"num_queries": 7}))
    assert len(record["answer"]) == 7 and niah.check(record) == record["answer"]
    record = next(generate_records("ruler_vt", "4k", params={"num_chains": 3, "num_hops": 6}))
    assert len(record["answer"]) == 7 and vt.check(record) == record["answer"]
    assert record["context"].count(" = VAR ") == 3 * 6
    record = next(generate_records("ruler_cwe", "4k", params={"num_common_words": 5, "common_word_frequency": 12,
                                                              "rare_word_frequency": 2}))
    assert len(record["answer"]) == 5 and cwe.check(record) == record["answer"]
    prose = next(generate_records("ruler_niah", "4k", params={"haystack": "prose", "num_distractors": 5}))
    assert prose["input"].count("The value of key") == 4 + 5


def test_needles_haystack_is_all_needles_and_prose_is_mostly_prose():
    needles = next(generate_records("ruler_niah", "8k"))
    prose = next(generate_records("ruler_niah", "8k", params={"haystack": "prose"}))
    assert needles["context"].count("The value of key") > 60
    assert prose["context"].count("The value of key") == 4 + 8
    assert len(set(prose["context"].split(". "))) > 100  # varied sentences, not one repeated line


def test_samples_differ_by_seed_and_index():
    a, b = generate_records("ruler_vt", "2k", samples=2, seed=0)
    c = next(generate_records("ruler_vt", "2k", seed=1))
    assert len({a["input"], b["input"], c["input"]}) == 3


_DIGEST = """
import hashlib, json, sys
from sftasks.generate import generate_records
h = hashlib.sha256()
for task, knobs in [("ruler_niah", {}), ("ruler_niah", {"haystack": "prose"}), ("ruler_vt", {}), ("ruler_cwe", {})]:
    for r in generate_records(task, "4k", samples=2, seed=11, params=knobs):
        h.update(json.dumps(r, sort_keys=True).encode())
print(h.hexdigest())
"""


def test_deterministic_across_processes():
    runs = {subprocess.run([sys.executable, "-c", _DIGEST], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}, check=True).stdout for seed in ("1", "2")}
    assert len(runs) == 1 and len(runs.pop().strip()) == 64


@pytest.mark.parametrize("task,knobs,message", [
    ("ruler_niah", {"num_queries": "0"}, "num_queries"),
    ("ruler_niah", {"haystack": "books"}, "haystack"),
    ("ruler_niah", {"num_distractors": "-1"}, "num_distractors"),
    ("ruler_vt", {"num_chains": "0"}, "num_chains"),
    ("ruler_vt", {"num_hops": "x"}, "num_hops"),
    ("ruler_cwe", {"common_word_frequency": "3"}, "greater than rare_word_frequency"),
    ("ruler_cwe", {"rare_word_frequency": "0"}, "rare_word_frequency"),
    ("ruler_cwe", {"num_common_words": "0"}, "num_common_words"),
    ("ruler_cwe", {"common_word_frequency": "500"}, "common_word_frequency"),
])
def test_bad_knobs_are_refused(task, knobs, message):
    with pytest.raises(InputError, match=message):
        get_task(task).make_params(knobs)


@pytest.mark.parametrize("task,knobs,length", [
    ("ruler_niah", {"num_queries": "30"}, "2k"),
    ("ruler_niah", {"haystack": "prose", "num_distractors": "100"}, "4k"),
    ("ruler_vt", {"num_chains": "100"}, "2k"),
    ("ruler_cwe", {}, "2k"),
])
def test_too_short_lengths_name_the_smallest_that_works(task, knobs, length):
    with pytest.raises(LengthError, match="smallest length that works is (\\d+) tokens") as info:
        list(generate_records(task, length, params=knobs))
    smallest = int(info.value.args[0].split("works is ")[1].split(" ")[0])
    record = next(generate_records(task, smallest, params=knobs))  # and the named length does work
    assert CHECKERS[task](record) == record["answer"]


def test_cwe_fills_1m_with_compound_words_beyond_its_plain_pool():
    record = next(generate_records("ruler_cwe", "1m", seed=2))
    assert lower_bound(parse_length("1m")) <= record["num_tokens"] <= parse_length("1m")
    assert cwe.check(record) == record["answer"]
    counts = collections.Counter(line.split(". ", 1)[1] for line in record["context"].split("\n"))
    plain = set(word_pool())
    assert set(record["answer"]) <= plain and plain - set(record["answer"]) <= set(counts)  # every plain word used
    compounds = [w for w in counts if w not in plain]
    assert len(compounds) > 20000 and all(counts[w] == 3 for w in compounds)
    made, parts = cwe.compound_words(1 << 16)  # the compounds come from the start of the fixed order
    pieces = {w: (word_pool()[a], word_pool()[b]) for w, (a, b) in zip(made, parts.tolist())}
    assert all(w in pieces and not set(pieces[w]) & set(record["answer"]) for w in compounds)
    spans = [record["input"][e["start"]:e["end"]] for e in record["evidence"]]
    assert sorted({s.split(". ", 1)[1] for s in spans}) == record["answer"] and len(spans) == 10 * 30


def test_compound_words_are_distinct_and_share_one_order():
    words, parts = cwe.compound_words(50000)
    plain = word_pool()
    assert len(set(words)) == 50000 and not set(words) & set(plain)
    assert all(w == plain[a] + plain[b] and w.isalpha() for w, (a, b) in zip(words, parts.tolist()))
    assert cwe.compound_words(1000)[0] == words[:1000]


def test_cwe_refuses_lengths_beyond_every_compound_quickly():
    with pytest.raises(LengthError, match="word pool"):
        list(generate_records("ruler_cwe", "1024m"))


def test_cli_refuses_bad_knob_with_exit_2(tmp_path, capsys):
    assert main(["generate", "ruler_cwe", "--len", "4k", "--param", "rare_word_frequency=40",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rare_word_frequency" in err


def test_word_pool_is_plain_distinct_words():
    pool = word_pool()
    assert len(pool) > 7000 and len(set(pool)) == len(pool) and list(pool) == sorted(pool)
    assert all(w.isalpha() and w.islower() for w in pool)


@pytest.fixture(scope="module")
def bpe_without_pretokenizer():
    """A small BPE with no pre-tokenizer: merges cross spaces, so piece counts do NOT add up."""
    import numpy as np
    from tokenizers import Tokenizer, models, trainers

    from sftasks.generators.ruler.prose import prose_sentences
    from sftasks.tokenizers import HFTokenizer

    backend = Tokenizer(models.BPE(unk_token="[UNK]"))
    pool = word_pool()
    corpus = prose_sentences(np.random.default_rng(0), 2000) + [" ".join(pool[i::40]) for i in range(40)]
    corpus += ["VAR ABCDE = 12345. VAR FGHIJ = VAR ABCDE. The value of key k3j9-x is 0pq8-w.\n1. word\n12. word"] * 20
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=600, special_tokens=["[UNK]"]))
    return HFTokenizer("local-bpe", backend)


@pytest.mark.parametrize("task,knobs", CASES + [("qa_toefl", {"source": "../shared/data/toeflqa.jsonl",
                                                               "base_length": "4k"})])
def test_exact_under_a_tokenizer_that_is_not_additive(task, knobs, bpe_without_pretokenizer):
    from pathlib import Path

    tok = bpe_without_pretokenizer
    if "source" in knobs:
        knobs = {**knobs, "source": str(Path(__file__).resolve().parents[2] / "shared" / "data" / "toeflqa.jsonl")}
    spec = get_task(task)
    params = spec.make_params(knobs)
    target = 16384
    spec.check_length(target, params, tok)
    sample = spec.build_sample(target, seed=0, index=0, tokenizer=tok, params=params)
    assert lower_bound(target) <= tok.count(sample.input) == sample.num_tokens <= target
