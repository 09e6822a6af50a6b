"""What the project publishes on the Hub, recorded in the package so a release can be regenerated offline.

Every registered task is published as `sparse-frontier/TASK` with the defaults below. When a release is
actually pushed, paste its folder's `sftasks.json` into `PINNED` (keyed by task): its per-config
checksums then let `sftasks.load_dataset` prove that a local regeneration equals the published bytes.
"""

from __future__ import annotations

from typing import Any

HUB_ORG = "sparse-frontier"
DEFAULT_LENGTHS = ("4k", "8k", "16k", "32k", "64k", "128k")
DEFAULT_SAMPLES = 100
DEFAULT_SEED = 0

# task -> the `sftasks.json` manifest of its published Hub folder (task, samples, seed, tokenizer,
# params, generator_version, configs with checksums). Empty until the first release is pushed.
PINNED: dict[str, dict[str, Any]] = {}


def release(task: str) -> dict[str, Any]:
    """The manifest of `sparse-frontier/TASK`: the pinned one, else the published defaults (no checksums)."""
    from .tokenizers import DEFAULT_TOKENIZER

    if task in PINNED:
        return PINNED[task]
    return {
        "task": task, "hidden": False, "samples": DEFAULT_SAMPLES, "seed": DEFAULT_SEED,
        "tokenizer": DEFAULT_TOKENIZER, "params": {}, "generator_version": None,
        "configs": {length: {} for length in DEFAULT_LENGTHS},
    }


def known_repos() -> list[str]:
    from .tasks import task_names

    return [f"{HUB_ORG}/{task}" for task in task_names()]
