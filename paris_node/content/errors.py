"""Typed errors of the content layer. Each is a ParisError; input problems are also ValueErrors."""

from __future__ import annotations

from paris_node.errors import ParisError


class ContentError(ParisError):
    """Base class for content-addressing errors."""


class MalformedCid(ContentError, ValueError):
    """The string is not a CID at all (bad multibase, varint, multihash or length)."""


class UnsupportedCid(ContentError, ValueError):
    """A well-formed CID this node cannot handle (codec other than raw/dag-pb, hash other than sha2-256)."""


class BlockMismatch(ContentError, ValueError):
    """The bytes do not hash to the CID they were offered under (tampered or corrupt block)."""


class BlockTooLarge(ContentError, ValueError):
    """A block (or a claimed block length) exceeds MAX_BLOCK_SIZE."""


class BlockNotFound(ContentError, KeyError):
    """The blockstore does not hold this block."""

    def __str__(self) -> str:  # KeyError would print the repr of the argument
        return str(self.args[0]) if self.args else "block not found"


class CorruptDag(ContentError, ValueError):
    """A block decodes wrongly or sizes inside a DAG disagree."""


class TruncatedStream(ContentError, ValueError):
    """A CAR or block stream ended before it was complete."""


class StoreFull(ContentError, OSError):
    """The disk is full: nothing partial was left behind; free space and retry."""


class FetchError(ContentError):
    """No source (local store, peers, gateways, Kubo) could supply a complete, verified DAG."""


class KuboMismatch(ContentError):
    """Kubo computed a different CID than paris-node for the same bytes and import profile."""
