"""CLI commands for the data layer (registered on `main`)."""

from __future__ import annotations
