"""`sftasks.load_dataset`: a published task at one length as a `datasets.Dataset`, from wherever it can be had.

Resolution order:
1. a local folder of that name (as written by `sftasks publish`);
2. the Hub, through `datasets`, when it is reachable (`HF_HUB_OFFLINE` / `HF_DATASETS_OFFLINE` are
   respected and a 3-second connection probe stops a missing network from hanging the call);
3. local generation with the parameters recorded in the package (`sftasks.releases`) or in the folder's
   `sftasks.json`, cached under the Hugging Face datasets cache. When the published checksum of that
   config is known, the regenerated records are checked against it, so they are the published bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from .errors import DataError, InputError
from .lengths import format_length, parse_length
from .publish import checksum, read_manifest, read_parquet_records
from .releases import HUB_ORG, known_repos, release

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 3.0


def load_dataset(name: str, length: str | int | None = None, split: str = "test", *, tokenizer: str | None = None,
                 progress: bool = True, **kwargs: Any):
    """Records of dataset `name` at `length` (`"64k"`, 65536, any length; None: every published length).

    `name` is a local folder, a Hub repo (`sparse-frontier/story_multihop`) or a bare task name.
    `tokenizer=` regenerates the same samples measured with another tokenizer. Other keyword
    arguments go to `datasets.load_dataset`.
    """
    lengths = None if length is None else [format_length(parse_length(length))]
    kwargs.setdefault("cache_dir", str(cache_root()))
    folder = Path(name).expanduser()
    if folder.is_dir():
        return _from_folder(folder, lengths, split, tokenizer, progress, kwargs)
    if folder.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise InputError(f"{name} is not a dataset folder or a Hub repo; known datasets: {', '.join(known_repos())}")

    repo = name if "/" in name else f"{HUB_ORG}/{name}"
    org, _, task = repo.partition("/")
    manifest = release(task) if org == HUB_ORG and task in _task_names() else None
    published = manifest is None or (
        _same_tokenizer(tokenizer, manifest) and all(n in manifest["configs"] for n in lengths or []))
    if published and hub_reachable():
        try:
            return _from_hub(repo, lengths, split, kwargs)
        except Exception as exc:  # datasets raises many types (HTTP, missing config, ...)
            if manifest is None:
                raise DataError(f"cannot load {repo} from the Hub ({_first_line(exc)}); "
                                f"known datasets: {', '.join(known_repos())}") from None
            log.warning("cannot load %s from the Hub (%s); regenerating it locally", repo, _first_line(exc))
    if manifest is None:
        raise InputError(f"unknown dataset {name!r}: not a local folder, and the Hub is not reachable (offline); "
                         f"known datasets: {', '.join(known_repos())}")
    return _regenerate(manifest, lengths, split, tokenizer, progress, kwargs)


def cache_root() -> Path:
    """The Hugging Face datasets cache (env `HF_DATASETS_CACHE` wins, even when set after import)."""
    import datasets

    return Path(os.environ.get("HF_DATASETS_CACHE") or datasets.config.HF_DATASETS_CACHE)


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """False when offline mode is set or the Hub endpoint gives no HTTP answer within `timeout` seconds."""
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or any(_truthy(os.environ.get(v)) for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return False
    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    answered: list[bool] = []

    def probe() -> None:  # in a thread: name resolution ignores timeouts and may block for long
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
            answered.append(True)
        except urllib.error.HTTPError:  # any HTTP status means the endpoint is there
            answered.append(True)
        except (OSError, ValueError):  # no route, refused, timed out, TLS failure, bad URL
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _task_names() -> list[str]:
    from .tasks import task_names

    return task_names()


def _same_tokenizer(tokenizer: str | None, manifest: dict[str, Any]) -> bool:
    from .tokenizers import get_tokenizer

    return tokenizer is None or get_tokenizer(tokenizer).name == get_tokenizer(manifest["tokenizer"]).name


def _check_split(split: str) -> None:
    if split.split("[", 1)[0].strip() != "test":
        raise InputError(f"split {split!r} does not exist: sftasks datasets have one split, 'test' "
                         "(slices like 'test[:10]' work)")


def _read(path: str, config: str | None, split: str, kwargs: dict[str, Any]):
    import datasets

    try:
        return datasets.load_dataset(path, config, split=split, **kwargs)
    except ValueError as exc:  # unknown config or split: datasets says which exist
        raise DataError(f"cannot load {path} config {config} split {split}: {_first_line(exc)}") from None


def _concat(parts: list):
    import datasets

    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _from_folder(folder: Path, lengths, split, tokenizer, progress, kwargs):
    manifest = read_manifest(folder)
    if manifest is None:  # not built by sftasks: let datasets read it as it is
        return _concat([_read(str(folder), n, split, kwargs) for n in lengths or [None]])
    wanted = lengths or list(manifest["configs"])
    if _same_tokenizer(tokenizer, manifest) and all(n in manifest["configs"] for n in wanted):
        _check_split(split)
        return _concat([_read(str(folder), n, split, kwargs) for n in wanted])
    return _regenerate(manifest, wanted, split, tokenizer, progress, kwargs)


def _from_hub(repo: str, lengths, split, kwargs):
    import datasets

    configs = lengths or datasets.get_dataset_config_names(repo)
    return _concat([datasets.load_dataset(repo, n, split=split, **kwargs) for n in configs])


def _regenerate(manifest: dict[str, Any], lengths, split, tokenizer, progress, kwargs):
    """Generate the records locally (cached), check them against the published checksum, load them."""
    import datasets

    from .generate import write_task
    from .records import features
    from .tasks import get_task
    from .tokenizers import get_tokenizer

    task = manifest["task"]
    if manifest.get("hidden") or manifest.get("seed") is None:
        raise InputError(f"{task} here is a hidden split: its seed is not published, so it cannot be regenerated; "
                         "load one of its published lengths with the published tokenizer")
    _check_split(split)
    origin = manifest.get("source") or {}
    if origin.get("source_sha256") and not Path(str(manifest["params"].get("source", ""))).expanduser().exists():
        raise InputError(f"{task} was generated from the local file {origin['source']} (SHA-256 "
                         f"{origin['source_sha256'][:16]}...), which is not in the working directory: put your copy "
                         "there, or rebuild with the card's `sftasks publish ... --source PATH` command")
    spec = get_task(task)
    tok = get_tokenizer(tokenizer or manifest["tokenizer"])
    same_tokenizer = tok.name == get_tokenizer(manifest["tokenizer"]).name
    key = {"task": task, "samples": manifest["samples"], "seed": manifest["seed"], "tokenizer": tok.name,
           "params": manifest["params"], "generator_version": spec.version}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cache = cache_root() / "sftasks" / f"{task}-{digest}"
    files = []
    for name in lengths or list(manifest["configs"]):
        path = cache / task / name / "test.parquet"
        if not path.exists():
            write_task(task, name, cache, samples=manifest["samples"], seed=manifest["seed"], tokenizer=tok.name,
                       params=manifest["params"], overwrite=True, progress=progress)
        expected = manifest["configs"].get(name, {}).get("checksum") if same_tokenizer else None
        if expected and checksum(read_parquet_records(path)) != expected:
            raise DataError(
                f"regenerated {task} {name} differs from the published records (checksum mismatch): published with "
                f"generator_version {manifest.get('generator_version')}, this sftasks has {spec.version}; "
                "install the sftasks release that published it, or load the published files"
            )
        files.append(str(path))
    return datasets.load_dataset("parquet", data_files={"test": files}, split=split, features=features(), **kwargs)
