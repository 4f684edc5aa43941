"""The expert: a PixArt-alpha DiT (AdaLN-Single, cross-attention to text tokens, patch 2), from diffusers.

We wrap diffusers' `PixArtTransformer2DModel` rather than re-implementing it: its maths is the PixArt-alpha
reference (the Paris release is this network with `caption_channels=768`), and it is the same code a diffusers
user would load. The wrapper fixes the call to the one the trainer and sampler use,
`expert(x, t_scaled, text, text_mask) -> prediction`, and applies PixArt's initialisation (diffusers leaves
PyTorch defaults): xavier linears, zeroed cross-attention outputs and final projection, so an untrained expert
predicts zero and early training is stable.
"""

from __future__ import annotations

import torch
from diffusers import PixArtTransformer2DModel
from torch import nn

from paris_node.models.config import ExpertConfig


class PixArtExpert(nn.Module):
    def __init__(self, cfg: ExpertConfig):
        super().__init__()
        self.cfg = cfg
        self.net = PixArtTransformer2DModel(
            num_attention_heads=cfg.heads,
            attention_head_dim=cfg.hidden // cfg.heads,
            in_channels=cfg.in_channels,
            out_channels=cfg.in_channels,  # no learned sigma: flow matching predicts one field
            num_layers=cfg.depth,
            cross_attention_dim=cfg.hidden,
            sample_size=cfg.sample_size,
            patch_size=cfg.patch_size,
            caption_channels=cfg.caption_channels,
            use_additional_conditions=False,  # no resolution/aspect micro-conditions (fixed square training)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        net = self.net

        def xavier(m: nn.Module) -> None:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

        net.apply(xavier)
        w = net.pos_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(net.adaln_single.emb.timestep_embedder.linear_1.weight, std=0.02)
        nn.init.normal_(net.adaln_single.emb.timestep_embedder.linear_2.weight, std=0.02)
        nn.init.normal_(net.adaln_single.linear.weight, std=0.02)
        nn.init.normal_(net.caption_projection.linear_1.weight, std=0.02)
        nn.init.normal_(net.caption_projection.linear_2.weight, std=0.02)
        for block in net.transformer_blocks:
            nn.init.zeros_(block.attn2.to_out[0].weight)
            nn.init.zeros_(block.attn2.to_out[0].bias)
        nn.init.zeros_(net.proj_out.weight)
        nn.init.zeros_(net.proj_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """x [B,C,H,W], t [B] already scaled to [0, 1000], text [B,L,D], text_mask [B,L] bool (True = token)."""
        return self.net(
            x,
            encoder_hidden_states=text,
            timestep=t,
            encoder_attention_mask=text_mask,
            return_dict=False,
        )[0]
