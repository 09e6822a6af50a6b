"""`sftasks publish` folders and `sftasks.load_dataset`, on a tiny test-only task so the suite is fast.

Everything runs offline: the Hub is replaced by recorded calls to `huggingface_hub`'s client, and
loading goes through the real `datasets` library on the folders built here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

import sftasks
from sftasks import hub, publish, releases, tasks
from sftasks.cli import main
from sftasks.errors import DataError, InputError
from sftasks.generate import generate_records
from sftasks.records import Sample, features

TASK = "hubtest_codes"
WORDS = ("the", "cat", "dog", "river", "stone", "green", "blue", "house", "tree", "bird", "moon", "sun", "road")


@dataclasses.dataclass
class CodeParams:
    codes: int = 2


class CodeTask(tasks.Task):
    """Codes written backwards among filler words; the answer is each code forwards (never in the text)."""

    name = TASK
    version = "hubtest-1"
    Params = CodeParams
    description = "Read the codes written backwards and answer them forwards."

    def min_tokens(self, params, tokenizer) -> int:
        return 40 * params.codes

    def build(self, target_tokens, rng, tokenizer, params):
        from sftasks.lengths import lower_bound

        codes = [f"{rng.choice(WORDS)}{int(rng.integers(1000, 10000))}" for _ in range(params.codes)]
        facts = [f"Code {i + 1} is {code[::-1]}." for i, code in enumerate(codes)]
        question = "\nWrite every code forwards, one per line, inside <answer></answer>."
        fixed = tokenizer.count("\n".join(facts) + question)
        words = list(rng.choice(WORDS, size=max(target_tokens - fixed, 0)))
        while True:  # each " word" is one token, so counts are additive and this converges in a step or two
            context = " ".join(words) + "\n" + "\n".join(facts)
            text = context + question
            count = tokenizer.count(text)
            if count > target_tokens:
                del words[: count - target_tokens]
            elif count < lower_bound(target_tokens):
                words.extend(rng.choice(WORDS, size=lower_bound(target_tokens) - count))
            else:
                break
        start = text.index(facts[0])
        sample = Sample(input=text, context=context, question=question.strip(), answer=codes,
                        evidence=[(start, start + len(" ".join(facts)))], params={"codes": params.codes})
        sample.num_tokens = count
        return sample


@pytest.fixture(scope="module", autouse=True)
def code_task():
    tasks._load_builtin()
    tasks.register(CodeTask)
    yield
    tasks._REGISTRY.pop(TASK, None)


@pytest.fixture(autouse=True)
def offline(offline_hf):
    """Every test here runs offline (tests/conftest.py)."""
    return offline_hf


def publish_cli(*args: str) -> int:
    return main(["publish", TASK, *args])


def error_line(capsys) -> str:
    """The CLI's error: one line, the last thing on stderr (progress bars may come before it)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("sftasks: error:") == 1
    last = err.rstrip("\n").replace("\r", "\n").splitlines()[-1]
    assert last.startswith("sftasks: error:")
    return last


def expected(length, samples, seed=0, **params):
    return list(generate_records(TASK, length, samples=samples, seed=seed, params=params))


def front_matter(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One published folder (two configs, a knob set) shared by the read-only tests."""
    out = tmp_path_factory.mktemp("hub") / TASK
    assert main(["publish", TASK, "--lengths", "256,1k", "--samples", "3", "--seed", "5",
                 "--param", "codes=3", "--out", str(out)]) == 0
    return out


def test_folder_loads_with_plain_datasets_and_matches_generation(built):
    for config, target in (("256", 256), ("1k", 1024)):
        ds = datasets.load_dataset(str(built), config, split="test")
        assert ds.features == features()
        assert ds.to_list() == expected(target, 3, seed=5, codes=3)
    assert sorted(p.name for p in built.iterdir()) == ["1k", "256", "README.md", "sftasks.json"]
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".")], "build leftovers beside the folder"


def test_card_front_matter_lists_every_config_and_the_schema(built):
    meta = front_matter(built / "README.md")
    configs = {c["config_name"]: c["data_files"] for c in meta["configs"]}
    assert configs == {"256": [{"split": "test", "path": "256/test.parquet"}],
                       "1k": [{"split": "test", "path": "1k/test.parquet"}]}
    for files in configs.values():
        assert (built / files[0]["path"]).is_file()
    assert meta["license"] and meta["language"] == ["en"] and meta["size_categories"] == ["n<1K"]
    assert meta["pretty_name"] and "long-context" in meta["tags"] and meta["task_categories"]
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    assert set(infos) == {"256", "1k"}
    for info in infos.values():
        assert datasets.Features._from_yaml_list(info["features"]) == features()
        config = json.loads((built / "sftasks.json").read_text())["configs"][info["config_name"]]
        assert info["splits"] == [{"name": "test", "num_bytes": config["num_bytes"], "num_examples": 3}]
        assert info["download_size"] == (built / config["data_file"]).stat().st_size


def test_card_prose_has_scoring_token_counts_checksums_and_citation(built):
    card = (built / "README.md").read_text(encoding="utf-8")
    manifest = json.loads((built / "sftasks.json").read_text())
    assert CodeTask.description in card
    assert f"sftasks score --predictions preds.jsonl --gold sparse-frontier/{TASK} --length 256" in card
    assert "2504.17768" in card and "@article" in card
    assert "`codes` | `3`" in card and "--param codes=3" in card and "hubtest-1" in card
    for name, target in (("256", 256), ("1k", 1024)):
        records = expected(target, 3, seed=5, codes=3)
        counts = sorted(r["num_tokens"] for r in records)
        config = manifest["configs"][name]
        assert config["checksum"] == publish.checksum(records)
        assert config["num_tokens"] == {"min": counts[0], "median": counts[1], "max": counts[2]}
        assert f"| `{name}` | {target} | 3 | {counts[0]} | {counts[1]} | {counts[2]} | `{config['checksum']}` |" in card
    assert manifest["task"] == TASK and manifest["seed"] == 5 and manifest["samples"] == 3
    assert manifest["params"] == {"codes": 3} and manifest["generator_version"] == "hubtest-1"


def test_checksum_compares_records_not_bytes():
    records = expected(256, 2)
    reordered = [dict(reversed(list(r.items()))) for r in records]
    assert publish.checksum(reordered) == publish.checksum(records)
    changed = [dict(records[0], input=records[0]["input"] + " "), records[1]]
    assert publish.checksum(changed) != publish.checksum(records)
    assert publish.checksum(records[::-1]) != publish.checksum(records)
    lines = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
    assert publish.checksum(records) == "sha256:" + hashlib.sha256(lines.encode("utf-8")).hexdigest()
    assert 'separators=(",", ":")' in publish.CHECKSUM_DEFINITION  # the card states the same definition


def test_load_dataset_from_folder_any_length_spelling(built):
    want = expected(1024, 3, seed=5, codes=3)
    for length in ("1k", 1024, "1024"):
        ds = sftasks.load_dataset(str(built), length=length)
        assert isinstance(ds, datasets.Dataset) and ds.to_list() == want
    both = sftasks.load_dataset(str(built))
    assert both.to_list() == expected(256, 3, seed=5, codes=3) + want
    assert sftasks.load_dataset(str(built), length="1k", split="test[:1]").to_list() == want[:1]
    with pytest.raises(InputError, match="one split, 'test'"):
        sftasks.load_dataset(str(built), length="1k", split="train")


def test_unpublished_length_and_other_tokenizer_are_regenerated(built, tmp_path):
    ds = sftasks.load_dataset(str(built), length=300)
    assert ds.to_list() == expected(300, 3, seed=5, codes=3)
    tokenizer = tmp_path / "wordlevel"
    tokenizer.mkdir()
    from tokenizers import Tokenizer, models, pre_tokenizers

    backend = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.save(str(tokenizer / "tokenizer.json"))
    rows = sftasks.load_dataset(str(built), length="256", tokenizer=str(tokenizer)).to_list()
    assert rows == list(generate_records(TASK, 256, samples=3, seed=5, tokenizer=str(tokenizer), params={"codes": 3}))
    assert all(r["tokenizer"] == str(tokenizer) and r["num_tokens"] == len(r["input"].split()) for r in rows)
    assert rows != expected(256, 3, seed=5, codes=3)


def test_regeneration_equals_published_records_and_checks_the_checksum(built, monkeypatch):
    manifest = json.loads((built / "sftasks.json").read_text())
    monkeypatch.setitem(releases.PINNED, TASK, manifest)
    from_folder = sftasks.load_dataset(str(built), length="1k").to_list()
    for name in (f"sparse-frontier/{TASK}", TASK):
        assert sftasks.load_dataset(name, length="1k").to_list() == from_folder
    cached = list((Path(hub.cache_root()) / "sftasks").glob(f"{TASK}-*/{TASK}/1k/test.parquet"))
    assert len(cached) == 1, "regeneration is cached under the datasets cache"
    monkeypatch.setattr(CodeTask, "version", "hubtest-2")
    with pytest.raises(DataError, match="hubtest-1.*hubtest-2"):
        sftasks.load_dataset(f"sparse-frontier/{TASK}", length="1k")


def test_unknown_names_list_the_known_ones():
    for name in ("sparse-frontier/no_such_task", "someone/else", "no_such_task"):
        with pytest.raises(InputError, match=f"known datasets: .*sparse-frontier/{TASK}"):
            sftasks.load_dataset(name, length="4k")
    with pytest.raises(InputError, match="not a dataset folder"):
        sftasks.load_dataset("./no/such/folder", length="4k")


def test_hub_is_used_when_reachable_and_regeneration_is_the_fallback(monkeypatch):
    calls = []

    def fake_load(path, config=None, split=None, **kwargs):
        calls.append((path, config, split))
        if path == "parquet":
            return real_load(path, config, split=split, **kwargs)
        if config == "8k":
            raise ConnectionError("Hub went away")
        return "from the hub"

    real_load = datasets.load_dataset
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setitem(releases.PINNED, TASK, dict(releases.release(TASK), configs={"4k": {}, "8k": {}}, samples=1))
    assert sftasks.load_dataset(f"sparse-frontier/{TASK}", length="4k") == "from the hub"
    assert calls[-1] == (f"sparse-frontier/{TASK}", "4k", "test")
    assert sftasks.load_dataset("other/repo", length=4096) == "from the hub"
    assert calls[-1] == ("other/repo", "4k", "test")
    calls.clear()
    assert sftasks.load_dataset(f"sparse-frontier/{TASK}", length=300).to_list() == expected(300, 1)
    assert [c[0] for c in calls] == ["parquet"], "an unpublished length never asks the Hub"
    assert sftasks.load_dataset(f"sparse-frontier/{TASK}", length="8k").to_list() == expected(8192, 1)
    with pytest.raises(DataError, match="Hub went away"):
        sftasks.load_dataset("other/repo", length="8k")


def test_hub_probe_is_offline_aware_and_fails_fast(monkeypatch):
    import http.server
    import threading

    assert hub.hub_reachable() is False  # HF_HUB_OFFLINE=1 from the fixture: no connection attempted
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    assert hub.hub_reachable(timeout=5) is True
    server.shutdown()
    server.server_close()
    assert hub.hub_reachable(timeout=5) is False  # nothing listens there now: refused
    with socket.socket() as silent:  # accepts connections, never answers: a hung network
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        assert hub.hub_reachable(timeout=0.5) is False


def public_text(folder: Path) -> str:
    """Every file of a folder as text, parquet decoded to its rows and raw bytes included."""
    parts = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", errors="replace"))
            if path.suffix == ".parquet":
                parts.append(json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False))
                parts.append(json.dumps(pq.read_table(path).to_pylist()))
    return "\n".join(parts)


@pytest.mark.parametrize("seed", ["918273645", None])
def test_hidden_split_leaks_no_answer_evidence_or_seed(tmp_path, seed):
    out, gold_path = tmp_path / "public", tmp_path / "private" / "gold.jsonl"
    args = ["--lengths", "256,512", "--samples", "3", "--hidden", "--gold-out", str(gold_path), "--out", str(out)]
    assert publish_cli(*args, *(["--seed", seed] if seed else [])) == 0
    gold = [json.loads(line) for line in gold_path.read_text().splitlines()]
    secret = gold[0]["seed"]
    assert all(g["seed"] == secret for g in gold) and (seed is None or secret == int(seed))
    for length, target in (("256", 256), ("512", 512)):
        truth = list(generate_records(TASK, target, samples=3, seed=secret))
        mine = [g for g in gold if g["length"] == length]
        assert [dict(g, id=t["id"]) for g, t in zip(mine, truth)] == truth
        assert [g["id"] for g in mine] == [f"{TASK}-{length}-hidden-{i}" for i in range(3)]
        public = datasets.load_dataset(str(out), length, split="test").to_list()
        assert [p["id"] for p in public] == [g["id"] for g in mine]
        assert all(p["answer"] == [] and p["evidence"] == [] and p["seed"] == -1 for p in public)
        assert [p["input"] for p in public] == [g["input"] for g in mine]
    text = public_text(out)
    assert str(secret) not in text
    for g in gold:
        for answer in g["answer"]:
            assert answer not in text
        spans = g["evidence"]
        assert json.dumps(spans) not in text and json.dumps(spans, separators=(",", ":")) not in text
    card = (out / "README.md").read_text()
    assert "Answers are held back" in card and "sftasks score --predictions" not in card
    assert f"sftasks submit-check preds.jsonl --gold sparse-frontier/{TASK}-hidden" in card
    assert json.loads((out / "sftasks.json").read_text())["seed"] is None
    with pytest.raises(InputError, match="hidden split"):
        sftasks.load_dataset(str(out), length="1k")


def test_push_uploads_the_folder_with_the_token(tmp_path, monkeypatch, capsys):
    from huggingface_hub import HfApi

    calls = []
    monkeypatch.setattr(HfApi, "create_repo",
                        lambda self, repo_id, **kw: calls.append(("create", repo_id, kw, self.token)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw)))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    out = tmp_path / "hub" / TASK
    assert publish_cli("--lengths", "256", "--samples", "1", "--out", str(out), "--push-to", "me/codes") == 0
    assert calls[0] == ("create", "me/codes", {"repo_type": "dataset", "exist_ok": True}, "hf_test_token")
    assert calls[1][0] == "upload"
    upload = calls[1][1]
    assert upload["repo_id"] == "me/codes" and upload["repo_type"] == "dataset"
    assert Path(upload["folder_path"]) == out
    assert 'load_dataset("me/codes", "256", split="test")' in (out / "README.md").read_text()
    assert "https://huggingface.co/datasets/me/codes" in capsys.readouterr().out


def test_failed_upload_is_one_line_and_a_rerun_retries_without_rebuilding(tmp_path, monkeypatch, capsys):
    from huggingface_hub import HfApi

    def refuse(self, repo_id, **kwargs):
        raise PermissionError("403 Forbidden: you cannot write to me/codes\nmore detail")

    monkeypatch.setattr(HfApi, "create_repo", refuse)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    out = tmp_path / TASK
    args = ("--lengths", "256", "--samples", "1", "--out", str(out), "--push-to", "me/codes")
    assert publish_cli(*args) == 2
    assert "403 Forbidden" in error_line(capsys)
    assert (out / "256" / "test.parquet").is_file(), "the built folder is kept for a retry"
    uploads = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: None)
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: uploads.append(kw))
    monkeypatch.setattr(publish, "write_task", lambda *a, **k: pytest.fail("an identical build is not redone"))
    assert publish_cli(*args) == 0 and len(uploads) == 1


def test_interrupted_build_resumes_and_leaves_no_half_folder(tmp_path, monkeypatch):
    out = tmp_path / TASK
    real = publish.write_task
    done = []

    def crash_on_second(task, length, *args, **kwargs):
        if done:
            raise KeyboardInterrupt
        done.append(length)
        return real(task, length, *args, **kwargs)

    monkeypatch.setattr(publish, "write_task", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        publish.build_folder(TASK, ["256", "512"], out, samples=2, progress=False)
    assert not out.exists()
    resumed = []
    monkeypatch.setattr(publish, "write_task",
                        lambda task, length, *a, **k: resumed.append(length) or real(task, length, *a, **k))
    manifest = publish.build_folder(TASK, ["256", "512"], out, samples=2, progress=False)
    assert resumed == [512], "the finished length is reused"
    assert manifest["configs"]["256"]["checksum"] == publish.checksum(expected(256, 2))
    assert manifest["configs"]["512"]["checksum"] == publish.checksum(expected(512, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == [TASK]


def test_overwrite_replaces_the_whole_folder(tmp_path):
    out = tmp_path / TASK
    assert publish_cli("--lengths", "256,512", "--samples", "1", "--out", str(out)) == 0
    assert publish_cli("--lengths", "300", "--samples", "2", "--out", str(out), "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["300", "README.md", "sftasks.json"]
    assert datasets.load_dataset(str(out), "300", split="test").to_list() == expected(300, 2)


@pytest.mark.parametrize("args,message", [
    (["--lengths", "4q"], "bad length"),
    (["--lengths", "0"], "length"),
    (["--lengths", "10"], "smallest length"),
    (["--samples", "0"], "--samples"),
    (["--param", "codes"], "NAME=VALUE"),
    (["--param", "colour=red"], "unknown parameter"),
    (["--push-to", "me/codes"], "token"),
    (["--push-to", "not a repo!"], "ORG/NAME"),
    (["--hidden"], "--gold-out"),
    (["--gold-out", "gold.jsonl"], "--hidden"),
    (["--hidden", "--gold-out", "OUT/gold.jsonl"], "inside the public folder"),
    (["--tokenizer", "/no/such/tokenizer"], "tokenizer"),
    (["--seed", "-3"], "--seed"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    args = [a.replace("OUT", str(out)) for a in args]
    assert publish_cli("--samples", "1", "--lengths", "256", "--out", str(out), *args) == 2
    assert message in error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_unknown_task_and_non_empty_folder_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["publish", "no_such_task", "--out", str(out)]) == 2
    assert "unknown task" in error_line(capsys) and not out.exists()
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert publish_cli("--lengths", "256", "--samples", "1", "--out", str(out)) == 2
    assert "--overwrite" in error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    gold = tmp_path / "gold.jsonl"
    gold.write_text("earlier answers\n")
    assert publish_cli("--lengths", "256", "--samples", "1", "--out", str(tmp_path / "new"),
                       "--hidden", "--gold-out", str(gold)) == 2
    assert "already exists" in error_line(capsys) and gold.read_text() == "earlier answers\n"


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["publish", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--lengths", "--samples", "--seed", "--tokenizer", "--param", "--out", "--hidden", "--gold-out",
                   "--push-to", "--overwrite"):
        assert option in text
