"""Text encoders: a frozen map from prompts to token embeddings [B, L, D] plus a mask [B, L].

Two kinds, chosen by a spec string that is written into every expert's config:

- `hash:DxL` (default for tiny/small; e.g. `hash:64x16`): words are lower-cased, split on non-alphanumerics and
  hashed (BLAKE2b keyed by the spec) into a fixed table of D-dim Gaussian vectors generated from a seed derived
  from the spec, plus a sin-cos position code; a BOS vector always sits at position 0. Nothing is downloaded or
  trained, the output is bit-identical on every node (pure integer hashing and a seeded CPU generator), distinct
  words get nearly orthogonal vectors so the expert's caption projection and cross-attention can learn any word,
  and word order is visible. The empty prompt (unconditional, for CFG) is BOS alone, never an all-masked row
  (which would make attention softmax over nothing).
- `clip:PATH_OR_ID`: CLIP ViT-L/14 text tower (transformers `CLIPTextModel`), last hidden state, padded to 77,
  as Paris. The mask is all True: like Stable Diffusion, the experts attend to the full padded sequence.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Protocol

import torch

from paris_node.errors import UsageError

DEFAULT_HASH_VOCAB = 8192
_WORD = re.compile(r"[a-z0-9]+")


class TextEncoder(Protocol):
    spec: str
    dim: int
    max_len: int

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]: ...


def _seed_of(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") & (2**63 - 1)


class HashTextEncoder:
    """Deterministic hashed-word embedding table; see the module docstring for why."""

    def __init__(self, spec: str, dim: int, max_len: int, vocab: int = DEFAULT_HASH_VOCAB):
        if dim < 8 or dim % 2 or max_len < 2:
            raise UsageError(f"text encoder {spec!r}: need an even dim >= 8 and a length >= 2")
        self.spec, self.dim, self.max_len, self.vocab = spec, dim, max_len, vocab
        self._key = spec.encode()[:64]
        self._cache: dict[str, list[int]] = {}
        g = torch.Generator().manual_seed(_seed_of(spec))
        # Row `vocab` is BOS. Unit-variance entries scaled by 1/sqrt(D) keep each token near unit norm.
        self.table = torch.randn(vocab + 1, dim, generator=g) / math.sqrt(dim)
        pos = torch.arange(max_len, dtype=torch.float64)[:, None]
        freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        pe = torch.zeros(max_len, dim, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
        self.pos = (0.5 * pe / math.sqrt(dim / 2)).float()

    def token_ids(self, prompt: str) -> list[int]:
        """BOS then one id per word, padded with 0 to max_len (the mask marks the real tokens)."""
        ids = self._cache.get(prompt)
        if ids is None:
            words = _WORD.findall(prompt.lower())[: self.max_len - 1]
            key = self._key
            ids = [self.vocab] + [
                int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8, key=key).digest(), "little") % self.vocab
                for w in words
            ]
            if len(self._cache) < 100_000:  # training captions repeat every epoch
                self._cache[prompt] = ids
        return ids

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.token_ids(p) for p in prompts]
        lengths = torch.tensor([len(r) for r in rows])
        ids = torch.tensor([r + [0] * (self.max_len - len(r)) for r in rows], dtype=torch.long)
        mask = torch.arange(self.max_len)[None, :] < lengths[:, None]
        emb = (self.table[ids] + self.pos) * mask[..., None]
        return emb, mask


class ClipTextEncoder:
    """CLIP text tower: last hidden state [B, 77, 768] for ViT-L/14 (the Paris conditioning)."""

    def __init__(self, spec: str, path: str, device: str | torch.device = "cpu"):
        try:
            from transformers import CLIPTextModel, CLIPTokenizer
        except ImportError as e:  # transformers is the optional `hf` extra
            raise UsageError("text encoder 'clip:...' needs transformers: pip install 'paris-node[hf]'") from e
        self.spec, self.device = spec, torch.device(device)
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(path)
            self.model = CLIPTextModel.from_pretrained(path).to(self.device).eval().requires_grad_(False)
        except OSError as e:
            raise UsageError(f"text encoder {spec!r}: cannot load a CLIP model from {path!r} ({e})") from e
        self.dim = int(self.model.config.hidden_size)
        self.max_len = int(min(self.tokenizer.model_max_length, self.model.config.max_position_embeddings))

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokenizer(
            prompts, padding="max_length", max_length=self.max_len, truncation=True, return_tensors="pt"
        )
        out = self.model(input_ids=tok.input_ids.to(self.device)).last_hidden_state
        return out.float(), torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)


def build_text_encoder(spec: str, device: str | torch.device = "cpu") -> TextEncoder:
    """`hash:DxL` (e.g. `hash:64x16`) or `clip:PATH_OR_ID`."""
    kind, _, arg = spec.partition(":")
    if kind == "hash":
        m = re.fullmatch(r"(\d+)x(\d+)", arg)
        if not m:
            raise UsageError(f"text encoder {spec!r}: write it as hash:DIMxLEN, e.g. hash:64x16")
        return HashTextEncoder(spec, int(m.group(1)), int(m.group(2)))
    if kind == "clip" and arg:
        return ClipTextEncoder(spec, arg, device)
    raise UsageError(f"unknown text encoder {spec!r}; use hash:DIMxLEN or clip:PATH_OR_ID")
