import json

import pytest
import torch

from paris_node.errors import UsageError
from paris_node.models.text import build_text_encoder


def test_hash_encoder_is_identical_across_instances():
    a, b = build_text_encoder("hash:64x16"), build_text_encoder("hash:64x16")
    ea, ma = a.encode(["a red square", "two blue circles"])
    eb, mb = b.encode(["a red square", "two blue circles"])
    assert torch.equal(ea, eb) and torch.equal(ma, mb)
    assert ea.shape == (2, 16, 64) and ea.dtype == torch.float32


def test_hash_encoder_distinguishes_prompts_and_word_order():
    enc = build_text_encoder("hash:64x16")
    e, m = enc.encode(["a red square", "a blue square", "square red a"])
    assert m[:, :4].all() and not m[:, 4:].any()  # BOS + 3 words
    assert not torch.allclose(e[0], e[1]) and not torch.allclose(e[0], e[2])
    # different words: nearly orthogonal token vectors, so a linear projection can tell them apart
    red, blue = e[0, 2], e[1, 2]
    assert abs(torch.nn.functional.cosine_similarity(red, blue, dim=0)) < 0.5


def test_empty_prompt_is_bos_only_and_seed_depends_on_spec():
    enc = build_text_encoder("hash:64x16")
    e, m = enc.encode([""])
    assert m[0].tolist() == [True] + [False] * 15
    assert torch.count_nonzero(e[0, 1:]) == 0
    other = build_text_encoder("hash:64x8")
    assert not torch.allclose(other.encode(["red"])[0][0, 1], enc.encode(["red"])[0][0, 1])


def test_hash_encoder_truncates_long_prompts():
    enc = build_text_encoder("hash:16x4")
    e, m = enc.encode(["one two three four five six"])
    assert e.shape == (1, 4, 16) and m.all()


@pytest.mark.parametrize("spec", ["hash", "hash:64", "bert:x", "clip:"])
def test_bad_specs_raise(spec):
    with pytest.raises(UsageError):
        build_text_encoder(spec)


def _tiny_clip(tmp_path):
    """A randomly initialised CLIP text tower and a byte-level BPE tokenizer with a hand-written vocab."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    # GPT-2/CLIP byte-to-unicode alphabet: printable bytes map to themselves, the rest to 256 + n.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + n) for n in range(len(extra))]
    vocab = {}
    for c in chars + [c + "</w>" for c in chars] + ["re", "red</w>", "<|startoftext|>", "<|endoftext|>"]:
        vocab.setdefault(c, len(vocab))
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\nr e\nre d</w>\n")
    tok = CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), model_max_length=12)
    cfg = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=12,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    torch.manual_seed(0)
    CLIPTextModel(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return tmp_path


def test_clip_encoder_loads_local_tiny_model(tmp_path):
    path = _tiny_clip(tmp_path)
    enc = build_text_encoder(f"clip:{path}")
    assert (enc.dim, enc.max_len, enc.spec) == (32, 12, f"clip:{path}")
    e, m = enc.encode(["a red square", ""])
    assert e.shape == (2, 12, 32) and m.all()
    assert not torch.allclose(e[0], e[1])
    assert torch.equal(enc.encode(["a red square"])[0][0], e[0])


def test_clip_encoder_missing_path_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot load"):
        build_text_encoder(f"clip:{tmp_path / 'nope'}")
