"""Verified block exchange between paris nodes over their libp2p connection (spec: protocol/exchange.md).

Import from here; the pieces live in small modules, lowest layer first:
`exchange_wire` (framing and caps), `exchange_server` (BlockServer), `exchange_client` (fetch_dag),
`exchange_service` (ExchangeService: a loop thread usable from synchronous code with a hivemind.DHT).
"""

from paris_node.content.exchange_client import FetchStats, FetchTimeout, PenaltyBox, as_peer_id, fetch_dag
from paris_node.content.exchange_server import BlockServer
from paris_node.content.exchange_service import ExchangeService
from paris_node.content.exchange_wire import (
    MAX_WANT,
    PROTOCOL,
    ExchangeError,
    FrameTooLarge,
    PeerMisbehaved,
    PeerStalled,
    StreamCut,
)

__all__ = [
    "MAX_WANT",
    "PROTOCOL",
    "BlockServer",
    "ExchangeError",
    "ExchangeService",
    "FetchStats",
    "FetchTimeout",
    "FrameTooLarge",
    "PeerMisbehaved",
    "PeerStalled",
    "PenaltyBox",
    "StreamCut",
    "as_peer_id",
    "fetch_dag",
]
