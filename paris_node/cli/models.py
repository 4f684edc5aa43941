"""CLI commands for the models layer (registered on `main`)."""

from __future__ import annotations
