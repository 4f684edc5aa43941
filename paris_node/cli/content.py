"""CLI commands for the content layer (registered on `main`)."""

from __future__ import annotations
