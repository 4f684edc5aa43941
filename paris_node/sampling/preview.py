"""A checkpoint's sample: what an expert draws today, rendered beside its checkpoint and published with it.

`SampleRenderer(prompts, text_encoder, codec)(ckpt_dir)` loads the checkpoint's (EMA) weights, draws one image
per fixed prompt from a fixed seed with a few Euler steps, and writes `sample.png` (format: sample_png.py) into
the folder before the publisher stores it. It is the publisher's hook, so it already runs off the training
loop; in addition the drawing happens on the renderer's own worker thread at the lowest CPU priority, so on a
busy machine training steps win the CPU. A render that fails or runs past `timeout_s` is logged and the
checkpoint is published without a sample: a sample is never worth a missing checkpoint.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, PngImagePlugin

from paris_node.fsutil import atomic_write
from paris_node.sampling.sample_png import PROMPTS_KEY, SAMPLE_FILE, encode_prompts

log = logging.getLogger(__name__)

DEFAULT_PROMPTS = ("a red circle on a blue background", "a green square", "a yellow triangle", "a purple star")
MIN_TILE = 64  # small training resolutions are upscaled (nearest) so the page shows something visible


def fixed_prompts(captions: Sequence[str], n: int = 4) -> list[str]:
    """The prompts of a job's samples: `n` of its validation captions spread over the shard (the same each time)."""
    if not captions:
        return list(DEFAULT_PROMPTS[:n])
    k = min(n, len(captions))
    picks = sorted({round(i * (len(captions) - 1) / max(1, k - 1)) for i in range(k)})
    return [captions[i] for i in picks]


def render_sample_png(
    ckpt_dir: Path, prompts: Sequence[str], text_encoder, codec, *, seed: int = 0, steps: int = 8, cfg: float = 4.0
) -> bytes:
    """PNG bytes of a grid, one image per prompt, from the expert checkpoint in `ckpt_dir` (CPU)."""
    from paris_node.checkpoint import load_model
    from paris_node.models.config import ExpertConfig
    from paris_node.sampling.ensemble import EnsembleSampler
    from paris_node.sampling.images import make_grid, to_pil

    model, config = load_model(ckpt_dir, device="cpu")
    mcfg = ExpertConfig.from_dict(config["model"])
    sampler = EnsembleSampler(
        {0: model},
        None,
        text_encoder,
        mcfg.latent_shape,
        cfg_scale=cfg,
        steps=steps,
        predictions={0: mcfg.prediction},
        device="cpu",
        latent=mcfg.latent,
    )
    latents, _ = sampler.sample(list(prompts), seed=seed)
    images = to_pil(codec.decode(latents))
    side = images[0].width
    if side < MIN_TILE:
        scale = -(-MIN_TILE // side)
        images = [im.resize((side * scale, im.height * scale), Image.Resampling.NEAREST) for im in images]
    info = PngImagePlugin.PngInfo()
    info.add_text(PROMPTS_KEY, encode_prompts(list(prompts)))
    buf = io.BytesIO()
    make_grid(images, cols=len(images)).save(buf, format="PNG", pnginfo=info, optimize=True)
    return buf.getvalue()


class SampleRenderer:
    """The publisher's `sample` hook: writes `sample.png` into a checkpoint folder, on a low-priority worker."""

    def __init__(self, prompts: Sequence[str], text_encoder, codec, *, steps: int = 8, timeout_s: float = 120.0):
        self.prompts, self.text_encoder, self.codec = list(prompts), text_encoder, codec
        self.steps, self.timeout_s = steps, timeout_s
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __call__(self, ckpt_dir: Path) -> Path | None:
        """Render into `ckpt_dir`; the path written, or None when the render failed or timed out."""
        if self._closed:
            return None
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="paris-sample", daemon=True)
            self._thread.start()
        done: queue.Queue = queue.Queue(maxsize=1)
        self._jobs.put((Path(ckpt_dir), done))
        try:
            result = done.get(timeout=self.timeout_s)
        except queue.Empty:
            log.warning("sample for %s not ready after %.0f s; publishing without it", ckpt_dir, self.timeout_s)
            return None
        if isinstance(result, BaseException):
            log.warning("sample for %s failed: %s", ckpt_dir, result)
            return None
        return result

    def _work(self) -> None:
        try:  # Linux: a thread's nice value is its own, so only this worker yields to training
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError) as e:
            log.debug("could not lower the sample thread's priority: %s", e)
        while (item := self._jobs.get()) is not None:
            ckpt_dir, done = item
            try:
                with torch.inference_mode():
                    data = render_sample_png(ckpt_dir, self.prompts, self.text_encoder, self.codec, steps=self.steps)
                path = ckpt_dir / SAMPLE_FILE
                atomic_write(path, data)
                done.put(path)
            except Exception as e:  # a bad render must never cost the checkpoint
                done.put(e)

    def close(self, timeout: float = 30.0) -> None:
        self._closed = True
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout)
