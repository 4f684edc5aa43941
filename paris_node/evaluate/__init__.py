"""Offline quality evaluation: read back what samples show (`shapes_reader`), feature-space FID (`features`),
scores and held-out prompts (`quality`), and the `paris-node eval` report (`report`, `grid`).

Pure of the network: it scores models already in the fetch cache (or in memory, for the benchmarks).
"""
