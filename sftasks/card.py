"""The dataset card (`README.md`) of a Hub folder: YAML front matter built with the libraries that read it
(`huggingface_hub`'s DatasetCardData, `datasets`' configs and features), prose from one shared Jinja2
template, `cards/dataset_card.md.jinja`, for every task.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from .records import features

TEMPLATE = "dataset_card.md.jinja"
DEFAULT_LICENSE = "apache-2.0"
EXAMPLE_CHARS = 600

# What each field of a record means (DESIGN.md's schema), for the card's field table.
FIELD_DOCS = {
    "id": "stable sample id: `{task}-{length}-{seed}-{index}` (`{task}-{length}-hidden-{index}` in a hidden split)",
    "task": "task name",
    "length": "config name of the target length, e.g. `64k` (1k = 1024 tokens)",
    "target_tokens": "the target length in tokens",
    "num_tokens": "tokens of `input` under `tokenizer`; always `target*(1-0.005) <= num_tokens <= target`",
    "tokenizer": "the tokenizer lengths are measured with",
    "seed": "the seed the sample came from (-1 in a hidden split)",
    "input": "the whole prompt: instructions, context, question(s); feed it as the user message",
    "context": "the long context alone, for building your own prompt",
    "question": "the question(s) alone",
    "answer": "gold answer(s) (empty in a hidden split)",
    "evidence": "character spans `{start, end}` of `input` that support the answer (empty in a hidden split)",
    "params": "the task's knobs for this sample, canonical JSON",
    "generator_version": "changes whenever the generated output for a seed changes",
}

# The main metric per task (the scorers' `Score.value`); a task class may set `metric` to override.
METRICS = {
    "story_retrieval": "fraction of the sample's questions answered correctly, averaged over samples",
    "story_multihop": "exact match of the item name (after normalisation)",
    "story_aggregation": "intersection over union of the predicted and gold chapter sets "
                         "(precision and recall reported too)",
    "ruler_niah": "recall of the needle values",
    "ruler_vt": "recall of the variable names",
    "ruler_cwe": "overlap with the 10 most common words",
    "qa_squad": "exact match and token F1 against every acceptable answer",
    "qa_quality": "accuracy of the option letter",
    "qa_toefl": "accuracy of the option letter",
}


def size_category(n: int) -> str:
    """Hugging Face's `size_categories` bucket for `n` examples."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def card_data(manifest: dict[str, Any], license_id: str):
    """Front matter: configs (one per length, split `test`) and per-config features/splits, as `datasets` reads them."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    task = manifest["task"]
    total = sum(cfg["num_samples"] for cfg in manifest["configs"].values())
    data = DatasetCardData(
        license=license_id, language=["en"], task_categories=["question-answering", "text-generation"],
        size_categories=[size_category(total)], pretty_name=f"sftasks {task}",
        tags=["long-context", "sparse-attention", "synthetic", "sftasks", task]
        + (["hidden-answers"] if manifest["hidden"] else []),
    )
    MetadataConfigs({
        name: {"data_files": [{"split": "test", "path": cfg["data_file"]}]} for name, cfg in manifest["configs"].items()
    }).to_dataset_card_data(data)
    infos = {}
    for name, cfg in manifest["configs"].items():
        splits = SplitDict()
        splits.add(SplitInfo(name="test", num_bytes=cfg["num_bytes"], num_examples=cfg["num_samples"]))
        infos[name] = DatasetInfo(features=features(), splits=splits, download_size=cfg["download_size"],
                                  dataset_size=cfg["num_bytes"])
    DatasetInfosDict(infos).to_dataset_card_data(data)
    return data


def render_card(manifest: dict[str, Any], task, example: dict[str, Any]) -> str:
    """The README.md of a Hub folder for `manifest` (see sftasks.publish), rendered from the shared template."""
    from huggingface_hub import DatasetCard

    template = resources.files("sftasks.cards").joinpath(TEMPLATE).read_text(encoding="utf-8")
    license_id = getattr(task, "license", DEFAULT_LICENSE)
    first = next(iter(manifest["configs"]))
    card = DatasetCard.from_template(
        card_data(manifest, license_id), template_str=template,
        m=manifest, repo=manifest["repo"], first_config=first, license_name=license_id,
        metric=getattr(task, "metric", None) or METRICS.get(manifest["task"], "see `sftasks score --help`"),
        fields=[(name, dtype, FIELD_DOCS[name]) for name, dtype in _field_types()],
        knobs=manifest["knobs"], example=_example_view(example),
    )
    return str(card)


def _field_types() -> list[tuple[str, str]]:
    """(name, readable type) of each record field, from the published `datasets` schema."""
    from datasets import Value

    def readable(feature) -> str:
        if isinstance(feature, Value):
            return feature.dtype
        inner = feature.feature  # a datasets.List
        if isinstance(inner, dict):
            return "list of {" + ", ".join(f"{k}: {v.dtype}" for k, v in inner.items()) + "}"
        return f"list of {readable(inner)}"

    return [(name, readable(feature)) for name, feature in features().items()]


def _example_view(record: dict[str, Any]) -> dict[str, Any]:
    """A record with its long text fields shortened, for showing in the card."""
    view = {}
    for key, value in record.items():
        if key in ("input", "context") and len(value) > EXAMPLE_CHARS:
            half = EXAMPLE_CHARS // 2
            value = f"{value[:half]} [... {len(value) - EXAMPLE_CHARS} characters ...] {value[-half:]}"
        view[key] = value
    return {"json": json.dumps(view, indent=2, ensure_ascii=False), "question": record["question"],
            "answer": record["answer"]}
