"""Router-weighted ensemble sampling with per-expert classifier-free guidance.

Per Euler step (paris-method.md, "Sampling"): p = softmax(router(x_t, T_SCALE t)); weights = route(p, mode);
each selected expert gives a guided velocity v_k = v_k(empty) + s * (v_k(c) - v_k(empty)); the step uses
v = sum_k w_k v_k. Only the experts some sample selected are run, and each only on the rows that selected it,
so top-2 costs about two expert calls per step whatever K is. Epsilon-prediction (HDDM) experts are converted
to velocities before guidance.

Models are plain callables with the node's contract (T_SCALE = 1000, `models/flow.py`):
    expert(x [B,C,H,W], t [B] (= 1000 t), text [B,L,D], text_mask [B,L] bool) -> [B,C,H,W]
    router(x [B,C,H,W], t [B] (= 1000 t)) -> logits [B,K]
    text_encoder.encode(prompts) -> (tokens [B,L,D], mask [B,L] bool)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor, nn

from paris_node.errors import UsageError
from paris_node.models.config import check_prediction
from paris_node.models.flow import T_SCALE, epsilon_to_velocity
from paris_node.sampling.caption_prior import CaptionPrior
from paris_node.sampling.euler import euler_step, timesteps
from paris_node.sampling.explain import ExplainLog, SampleRouting, StepRouting
from paris_node.sampling.routing import RoutingMode, parse_routing, route


class TextEncoder(Protocol):
    def encode(self, prompts: list[str]) -> tuple[Tensor, Tensor]: ...


@dataclass
class SamplerStats:
    """Work done by the last `sample()` call, so tests and benchmarks can check what sparse routing saves.

    One expert call evaluates one expert on its selected rows, conditional and unconditional batched together.
    """

    steps: int = 0
    router_calls: int = 0
    expert_calls: int = 0
    expert_rows: int = 0  # sample-evaluations (rows passed to experts, cond+uncond counted once)
    calls_per_expert: dict[int, int] = field(default_factory=dict)

    @property
    def expert_calls_per_step(self) -> float:
        return self.expert_calls / self.steps if self.steps else 0.0


class EnsembleSampler:
    """Samples latents from K experts combined by a router (or from one expert alone when router is None).

    Built from checkpoint folders by `sampling.loading.load_ensemble`; this class never reads files.
    """

    def __init__(
        self,
        experts: Mapping[int, nn.Module],
        router: nn.Module | None,
        text_encoder: TextEncoder,
        latent_shape: Sequence[int],
        routing: RoutingMode | str = "top2",
        cfg_scale: float = 7.5,
        steps: int = 50,
        predictions: Mapping[int, str] | None = None,
        device: torch.device | str | None = None,
        autocast_dtype: torch.dtype | None = None,
        latent: str = "pixels",
        caption_prior: CaptionPrior | None = None,
    ) -> None:
        """With `router=None` there must be exactly one expert and `routing` is not applied (plain sampling).

        `caption_prior` (with a router): log p(prompt | cluster) is added to the router's logits at every step
        (see `sampling/caption_prior.py`); None routes on (x_t, t) alone, as Paris does.

        `predictions` maps expert id -> "velocity" (default) or "epsilon" (HDDM). `latent` ("pixels" or "sd-vae",
        from the expert config) tells the caller which codec decodes the samples.
        """
        if not experts:
            raise UsageError("no experts to sample from; run `paris-node fetch --all` first")
        self.experts = {int(k): m for k, m in sorted(experts.items())}
        self.expert_ids = list(self.experts)
        if router is None and len(self.experts) != 1:
            raise UsageError(
                f"{len(self.experts)} experts but no router; fetch the router (`paris-node fetch router`)"
            )
        if router is not None and self.expert_ids != list(range(len(self.experts))):
            raise UsageError(
                f"the router needs experts 0..K-1 (its class indices) but the cache has {self.expert_ids}; "
                "fetch the missing experts"
            )
        self.predictions = {k: (predictions or {}).get(k, "velocity") for k in self.expert_ids}
        for k, pred in self.predictions.items():
            check_prediction(pred, f"expert {k} prediction")
        self.router = router
        self.text_encoder = text_encoder
        self.latent_shape = tuple(int(d) for d in latent_shape)
        self.routing = parse_routing(routing) if isinstance(routing, str) else routing
        if router is not None:
            self.routing.experts_per_sample(len(self.experts))  # fail early on e.g. topk:5 with 3 experts
        self.cfg_scale = float(cfg_scale)
        timesteps(steps)  # validates
        self.steps = int(steps)
        first = next(iter(self.experts.values()))
        self.device = torch.device(device) if device is not None else _module_device(first)
        self.autocast_dtype = autocast_dtype
        self.latent = latent
        if caption_prior is not None and (router is None or caption_prior.k != len(self.experts)):
            raise UsageError(f"a caption prior over {caption_prior.k} clusters needs a router over as many experts")
        self.caption_prior = caption_prior
        self._prior_logits: Tensor | None = None
        for m in [*self.experts.values(), *([router] if router is not None else [])]:
            m.eval()
        self.stats = SamplerStats()

    @torch.inference_mode()
    def sample(
        self,
        prompts: list[str],
        seed: int,
        n_per_prompt: int = 1,
        explain: bool = False,
        on_step: Callable[[int, int], None] | None = None,
    ) -> tuple[Tensor, ExplainLog | None]:
        """Latents [len(prompts) * n_per_prompt, C, H, W] (prompt-major) and, if asked, the routing log.

        `on_step(done, total)` is called after every step (for a progress bar).

        The initial noise is drawn on the CPU from `seed`, so the same seed gives the same start on any device.
        """
        if not prompts:
            raise UsageError("give at least one prompt")
        if n_per_prompt < 1:
            raise UsageError(f"-n {n_per_prompt}: need at least one image per prompt")
        per_sample_prompts = [p for p in prompts for _ in range(n_per_prompt)]
        batch = len(per_sample_prompts)
        cond, cond_mask, uncond, uncond_mask = self._encode(prompts, n_per_prompt)
        self._prior_logits = None
        if self.caption_prior is not None:
            self._prior_logits = self.caption_prior.log_likelihood(per_sample_prompts).to(self.device)
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        x = torch.randn((batch, *self.latent_shape), generator=gen, dtype=torch.float32).to(self.device)

        self.stats = SamplerStats(calls_per_expert={k: 0 for k in self.expert_ids})
        log = ExplainLog(str(self.routing), self.expert_ids, per_sample_prompts) if explain else None
        sigmas = timesteps(self.steps).tolist()
        for i in range(self.steps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            v, weights, probs = self._velocity(x, sigma, cond, cond_mask, uncond, uncond_mask)
            x = euler_step(x, v, sigma, sigma_next)
            self.stats.steps += 1
            if log is not None:
                log.steps.append(_step_routing(i, sigma, weights, probs, self.expert_ids))
            if on_step is not None:
                on_step(i + 1, self.steps)
        return x, log

    def _velocity(
        self, x: Tensor, sigma: float, cond: Tensor, cond_mask: Tensor, uncond: Tensor, uncond_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """The combined guided velocity at one step, and the weights [B, K] (and probs) that produced it."""
        batch = x.shape[0]
        t = torch.full((batch,), sigma, dtype=torch.float32, device=self.device)
        probs = None
        if self.router is None:
            weights = torch.ones((batch, 1), dtype=torch.float32, device=self.device)
        else:
            with self._autocast():
                logits = self.router(x, T_SCALE * t)
            self.stats.router_calls += 1
            if self._prior_logits is not None and logits.shape == self._prior_logits.shape:
                logits = logits.float() + self._prior_logits
            if logits.shape != (batch, len(self.experts)):
                raise UsageError(
                    f"the router gives {tuple(logits.shape)} logits for {len(self.experts)} experts; "
                    "the router and the experts come from different runs"
                )
            probs = torch.softmax(logits.float(), dim=-1)
            weights = route(probs, self.routing)

        v = torch.zeros_like(x)
        for col, k in enumerate(self.expert_ids):
            rows = torch.nonzero(weights[:, col] > 0).flatten()
            if rows.numel() == 0:
                continue
            if rows.numel() == batch:  # the common case (one expert, or samples agree): no gather/scatter copies
                v_k = self._guided(k, x, t, cond, cond_mask, uncond, uncond_mask)
                v.add_(weights[:, col].reshape(-1, *([1] * (x.ndim - 1))) * v_k)
                continue
            v_k = self._guided(k, x[rows], t[rows], cond[rows], cond_mask[rows], uncond[rows], uncond_mask[rows])
            w = weights[rows, col].reshape(-1, *([1] * (x.ndim - 1))).to(v_k.dtype)
            v.index_add_(0, rows, w * v_k)
        return v, weights, probs

    def _guided(
        self, k: int, x: Tensor, t: Tensor, cond: Tensor, cond_mask: Tensor, uncond: Tensor, uncond_mask: Tensor
    ) -> Tensor:
        """Expert k's CFG velocity on these rows; conditional and unconditional in one batched call."""
        guided = self.cfg_scale != 1.0  # s = 1 is the conditional velocity alone: skip the empty prompt
        if guided:
            xin, tin = torch.cat([x, x]), torch.cat([t, t])
            text, mask = _cat_tokens(cond, cond_mask, uncond, uncond_mask)
        else:
            xin, tin, text, mask = x, t, cond, cond_mask
        with self._autocast():
            out = self.experts[k](xin, T_SCALE * tin, text, mask)
        out = out.float()
        if self.predictions[k] == "epsilon":
            out = epsilon_to_velocity(xin, tin, out)
        self.stats.expert_calls += 1
        self.stats.expert_rows += x.shape[0]
        self.stats.calls_per_expert[k] += 1
        if not guided:
            return out
        v_cond, v_uncond = out.chunk(2)
        return v_uncond + self.cfg_scale * (v_cond - v_uncond)

    def _encode(self, prompts: list[str], n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        tokens, mask = self.text_encoder.encode(list(prompts))
        empty, empty_mask = self.text_encoder.encode([""])
        batch = len(prompts) * n
        cond = tokens.to(self.device, torch.float32).repeat_interleave(n, dim=0)
        cond_mask = mask.to(self.device, torch.bool).repeat_interleave(n, dim=0)
        uncond = empty.to(self.device, torch.float32).expand(batch, -1, -1)
        uncond_mask = empty_mask.to(self.device, torch.bool).expand(batch, -1)
        return cond, cond_mask, uncond, uncond_mask

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)


def _cat_tokens(a: Tensor, a_mask: Tensor, b: Tensor, b_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Stack two token batches, padding the shorter one (masked out) when an encoder gives unequal lengths."""
    length = max(a.shape[1], b.shape[1])

    def pad(tok: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        extra = length - tok.shape[1]
        if extra == 0:
            return tok, m
        return (
            torch.cat([tok, tok.new_zeros(tok.shape[0], extra, tok.shape[2])], dim=1),
            torch.cat([m, m.new_zeros(m.shape[0], extra)], dim=1),
        )

    a, a_mask = pad(a, a_mask)
    b, b_mask = pad(b, b_mask)
    return torch.cat([a, b]), torch.cat([a_mask, b_mask])


def _step_routing(step: int, sigma: float, weights: Tensor, probs: Tensor | None, ids: list[int]) -> StepRouting:
    w = weights.cpu().tolist()
    p = probs.cpu().tolist() if probs is not None else [None] * len(w)
    samples = []
    for w_row, p_row in zip(w, p, strict=True):
        chosen = [j for j, wj in enumerate(w_row) if wj > 0]
        samples.append(SampleRouting([ids[j] for j in chosen], [w_row[j] for j in chosen], p_row))
    return StepRouting(step, sigma, samples)


def _module_device(m: nn.Module) -> torch.device:
    for p in m.parameters():
        return p.device
    return torch.device("cpu")
