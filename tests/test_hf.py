"""The transformers adapter on tiny random Qwen2 / Llama models built here (nothing downloads)."""

from __future__ import annotations

import math

import pytest
import torch

from sftasks.errors import Error, InputError
from sftasks.methods.hf import HFBackend, attach, load
from sftasks.methods.registry import get_method

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PROMPT = "Once upon a time the quick brown fox jumped over 12 lazy dogs. " * 4 + "Which animal jumped?"


def build_tiny_model(folder, arch: str = "qwen2") -> str:
    """A random 2-layer GQA model and a byte-level BPE tokenizer with a chat template, saved to `folder`."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([PROMPT, "answer chapter story item 0123456789"], vocab_size=320, min_frequency=1,
                            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    Config, Model = (Qwen2Config, Qwen2ForCausalLM) if arch == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    config = Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                    eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    Model(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("qwen2"), "qwen2")


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("llama"), "llama")


def greedy(model, ids, new_tokens=8):
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False,
                         output_logits=True, return_dict_in_generate=True, pad_token_id=0)
    return out.sequences[0, ids.shape[1]:], torch.stack(out.logits)


def prompt_ids(tok, text=PROMPT):
    return tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                   return_dict=True, return_tensors="pt")["input_ids"]


@pytest.mark.parametrize("arch", ["qwen", "llama"])
def test_dense_generation_is_token_identical_to_plain_transformers(arch, request):
    folder = request.getfixturevalue(arch)
    model, tok = load(folder)
    ids = prompt_ids(tok)
    plain_tokens, plain_logits = greedy(model, ids, 12)
    backend = HFBackend(folder, get_method("dense"))
    gen = backend.generate([PROMPT], max_new_tokens=12)[0]
    assert gen.text == tok.decode(plain_tokens, skip_special_tokens=True)
    assert gen.num_input_tokens == ids.shape[1]
    tokens, logits = greedy(backend.model, ids, 12)
    assert torch.equal(tokens, plain_tokens) and torch.equal(logits, plain_logits)


FULL_BUDGET = {
    "block_sparse": dict(chunk_size=16, top_chunks=64),
    "vertical_slash": {},
    "flexprefill": {},
    "quest": {},
    "snapkv": {},
    "ada_snapkv": {},
}


@pytest.mark.parametrize("name", sorted(FULL_BUDGET))
def test_every_method_with_a_covering_budget_generates_like_dense(qwen, name):
    model, tok = load(qwen)
    ids = prompt_ids(tok)  # ~100 tokens: shorter than every default budget and window
    dense_tokens, dense_logits = greedy(model, ids)
    method = get_method(name, **FULL_BUDGET[name])
    attach(model, method)
    tokens, logits = greedy(model, ids)
    assert torch.equal(tokens, dense_tokens)
    assert (logits - dense_logits).abs().max() < 1e-4
    assert all(entry["overall"] == pytest.approx(0.0) for entry in method.stats.summary().values())


def expected_quest_decode_sparsity(prompt_len, new_tokens, budget, page):
    read = total = 0
    for n in range(prompt_len + 1, prompt_len + new_tokens):  # cache length at each decode step
        pages = math.ceil(n / page)
        read += n if pages <= budget // page else budget - page + n - (pages - 1) * page
        total += n
    return 1 - read / total


@pytest.mark.parametrize("name,params", [
    ("quest", dict(token_budget=32, page_size=8)),
    ("snapkv", dict(token_capacity=40, local_window=8, approximation_window=16, kernel_size=5)),
    ("block_sparse", dict(chunk_size=8, top_chunks=3)),
    ("vertical_slash", dict(vertical_size=8, slash_size=64, approximation_size=16)),
])
def test_small_budgets_change_the_computation_and_report_their_sparsity(qwen, name, params):
    model, tok = load(qwen)
    ids = prompt_ids(tok)
    P = ids.shape[1]
    _, dense_logits = greedy(model, ids)
    method = get_method(name, **params)
    attach(model, method)
    _, logits = greedy(model, ids)
    assert (logits - dense_logits).abs().max() > 1e-3
    summary = method.stats.summary()
    if name == "quest":
        assert summary["decode"]["overall"] == pytest.approx(expected_quest_decode_sparsity(P, 8, 32, 8))
        assert summary["prefill"]["overall"] == 0.0
    elif name == "snapkv":
        assert summary["compress"]["overall"] == pytest.approx(1 - 40 / P)
        steps = range(P + 1, P + 8)  # decode reads the 40 kept prompt tokens and every generated one
        assert summary["decode"]["overall"] == pytest.approx(1 - sum(40 + n - P for n in steps) / sum(steps))
    else:
        assert 0.05 < summary["prefill"]["overall"] < 1
        assert set(summary["prefill"]["per_layer"]) == {0, 1} and len(summary["prefill"]["per_head"][0]) == 4


def test_backend_reports_timings_and_resets_stats_between_prompts(qwen):
    backend = HFBackend(qwen, get_method("block_sparse", chunk_size=8, top_chunks=3))
    short, long_ = backend.generate(["hi there", PROMPT], max_new_tokens=4)
    assert short.prefill_s > 0 and short.decode_s > 0 and long_.prefill_s > 0
    assert short.num_input_tokens < long_.num_input_tokens
    assert short.sparsity["prefill"]["overall"] < long_.sparsity["prefill"]["overall"]
    again = backend.generate(["hi there"], max_new_tokens=4)[0]
    assert again.sparsity == short.sparsity and again.text == short.text


def test_padded_batches_are_refused_with_a_clear_error(qwen):
    model, tok = load(qwen)
    attach(model, get_method("block_sparse", chunk_size=8, top_chunks=3))
    tok.padding_side = "left"
    batch = tok(["a short one", PROMPT], return_tensors="pt", padding=True)
    with pytest.raises(Error, match="one sequence at a time"):
        model.generate(**batch, max_new_tokens=2, do_sample=False)


def test_bad_model_paths_and_options(tmp_path, qwen):
    with pytest.raises(InputError, match="does not exist"):
        HFBackend(str(tmp_path / "missing"), get_method("dense"))
    with pytest.raises(InputError, match="vllm"):
        HFBackend(qwen, get_method("dense"), tp=2)


def test_evidence_retention_per_layer(qwen):
    from sftasks.methods.evidence import evidence_retention

    model, tok = load(qwen)
    filler = " the quick brown fox jumped over 12 lazy dogs." * 12
    early = {"id": "e", "input": "CODE 42." + filler + " Which code?", "evidence": [{"start": 0, "end": 8}]}
    middle_at = len(filler) // 2
    middle = {"id": "m", "input": filler[:middle_at] + "CODE 42." + filler[middle_at:],
              "evidence": [{"start": middle_at, "end": middle_at + 8}]}
    dense = evidence_retention(model, tok, get_method("dense"), middle)
    assert dense["per_layer"] == {0: 1.0, 1: 1.0} and dense["evidence_tokens"] >= 3
    # first and diagonal blocks only: evidence in the first block (after the short chat prefix) is kept,
    # evidence in the middle is not
    blocks = get_method("block_sparse", chunk_size=32, top_chunks=2)
    assert evidence_retention(model, tok, blocks, early)["overall"] == 1.0
    assert evidence_retention(model, tok, blocks, middle)["overall"] == 0.0
    assert blocks.stats.summary()["prefill"]["overall"] > 0.5


def test_detach_restores_plain_attention(qwen):
    from sftasks.methods.hf import detach

    model, tok = load(qwen)
    ids = prompt_ids(tok)
    _, dense_logits = greedy(model, ids)
    attach(model, get_method("quest", token_budget=32, page_size=8))
    detach(model)
    _, logits = greedy(model, ids)
    assert torch.equal(logits, dense_logits)
