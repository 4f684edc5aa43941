"""Image embedders for partitioning the data into expert clusters.

    pixels            built in, no weights: an 8x8 RGB colour layout (192 integers). Exact integer
                      arithmetic, so the demo partition is identical on every machine.
    dinov2:PATH_OR_ID DINOv2 through transformers (Paris: ViT-L/14, 1024-d), the CLS embedding.
    clip:PATH_OR_ID   CLIP's image tower through transformers, the projected image embedding.

Real embedders load weights with `use_safetensors=True` (never a pickle). A Hugging Face id is
downloaded by transformers as usual; a local folder made by `save_pretrained` works offline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from paris_node.errors import UsageError

PIXEL_GRID = 8
BATCH = 32
PROGRESS_OVER = 512  # show a progress bar when embedding more images than this


class Embedder:
    """`embed(images) -> [N, D]`: an integer array (exact) or float32."""

    spec: str

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        raise NotImplementedError


def colour_layout(img: Image.Image, grid: int = PIXEL_GRID) -> np.ndarray:
    """Mean colour of each cell of a grid x grid split, rounded half up, as uint8 [grid*grid*3]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.int64)
    h, w, _ = arr.shape
    rows = (np.arange(h) * grid) // h
    cols = (np.arange(w) * grid) // w
    cell = rows[:, None] * grid + cols[None, :]
    sums = np.stack([np.bincount(cell.ravel(), arr[..., c].ravel(), grid * grid) for c in range(3)], axis=1)
    counts = np.bincount(cell.ravel(), minlength=grid * grid)[:, None]
    sums = np.rint(sums).astype(np.int64)  # bincount sums in float64; integer sums < 2**53 are exact
    return ((2 * sums + counts) // (2 * counts)).astype(np.uint8).ravel()


class PixelEmbedder(Embedder):
    spec = "pixels"

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        it = tqdm(images, desc="embed (pixels)", disable=len(images) <= PROGRESS_OVER, leave=False)
        return np.stack([colour_layout(img) for img in it]) if images else np.zeros((0, 192), np.uint8)


class TransformersEmbedder(Embedder):
    """DINOv2 (CLS token after the final norm) or CLIP (projected image embedding)."""

    def __init__(self, kind: str, source: str) -> None:
        self.spec = f"{kind}:{source}"
        self.kind = kind
        try:
            import torch  # noqa: F401
            from transformers import AutoImageProcessor, AutoModel, CLIPVisionModelWithProjection
        except ImportError:
            raise UsageError(f"embedder {self.spec!r} needs transformers: pip install 'paris-node[hf]'") from None
        try:
            self.processor = AutoImageProcessor.from_pretrained(source)
            if kind == "clip":
                self.model = CLIPVisionModelWithProjection.from_pretrained(source, use_safetensors=True)
            else:
                self.model = AutoModel.from_pretrained(source, use_safetensors=True)
        except (OSError, ValueError) as e:
            raise UsageError(
                f"embedder {self.spec!r}: cannot load {source!r} ({e}). Give a folder written by save_pretrained "
                "with model.safetensors, or a Hugging Face model id"
            ) from None
        self.model.eval()

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        out = []
        batches = range(0, len(images), BATCH)
        for start in tqdm(batches, desc=f"embed ({self.kind})", disable=len(images) <= PROGRESS_OVER, leave=False):
            batch = [img.convert("RGB") for img in images[start : start + BATCH]]
            inputs = self.processor(images=batch, return_tensors="pt")
            with torch.no_grad():
                result = self.model(pixel_values=inputs["pixel_values"])
            if self.kind == "clip":
                feats = result.image_embeds
            else:
                feats = result.pooler_output if result.pooler_output is not None else result.last_hidden_state[:, 0]
            out.append(feats.float().cpu().numpy())
        dim = int(out[0].shape[1]) if out else 0
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)


def get_embedder(spec: str) -> Embedder:
    """`pixels`, `dinov2:PATH_OR_ID` or `clip:PATH_OR_ID`; UsageError for anything else."""
    kind, _, source = spec.partition(":")
    if kind == "pixels" and not source:
        return PixelEmbedder()
    if kind in ("dinov2", "clip"):
        if not source:
            raise UsageError(f"embedder '{kind}' needs a model: '{kind}:facebook/dinov2-large' or '{kind}:/path'")
        return TransformersEmbedder(kind, source)
    raise UsageError(f"unknown embedder {spec!r}: use pixels, dinov2:PATH_OR_ID or clip:PATH_OR_ID")
