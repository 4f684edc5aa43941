"""paris-node: node software for decentralized diffusion training (Paris / DDM style)."""

__version__ = "0.1.0"
