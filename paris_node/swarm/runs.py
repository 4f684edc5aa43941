"""Which runs a swarm trains: each node answers `/paris/runs/1` with the run it trains (JSON, tiny).

A reader that was given only `--join` asks the nodes it is connected to and learns the run from them. The
answer is a hint, not trusted: a run id is the CID of its manifest, so whatever a peer names is fetched and
verified against that CID before it is used. The handler and the asking both run inside the DHT process
(hivemind's `run_coroutine`), on the libp2p host the DHT already has.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import hivemind

from paris_node.swarm import keys

logger = logging.getLogger(__name__)

PROTOCOL = "/paris/runs/1"
MAX_ANSWER = 16 * 1024
MAX_RUNS = 16
MAX_PEERS = 32


@dataclass(frozen=True)
class RunHint:
    run: str
    name: str
    experts: int
    peers: int = 1  # how many peers named it


def _parse(data: bytes) -> list[dict]:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return []
    runs = obj.get("runs") if isinstance(obj, dict) else None
    out = []
    for r in runs[:MAX_RUNS] if isinstance(runs, list) else []:
        if not isinstance(r, dict) or not isinstance(r.get("run"), str):
            continue
        try:
            keys.check_run(r["run"])
        except ValueError:
            continue
        name = r.get("name") if isinstance(r.get("name"), str) else "?"
        experts = r.get("experts") if isinstance(r.get("experts"), int) else 0
        out.append({"run": r["run"], "name": name[:64], "experts": experts})
    return out


class _Serve:
    """Runs inside the DHT process: registers the handler that names this node's run."""

    def __init__(self, runs: list[dict]):
        self.answer = json.dumps({"runs": runs}).encode()
        assert len(self.answer) <= MAX_ANSWER

    async def __call__(self, _dht, node) -> None:
        answer = self.answer

        async def handle(_info, reader, writer) -> None:
            try:
                writer.write(answer)
                await writer.drain()
            except Exception as e:  # a peer hanging up early is normal
                logger.debug("runs handler: %s", e)
            finally:
                writer.close()

        await node.p2p.add_binary_stream_handler(PROTOCOL, handle)


class _Ask:
    """Runs inside the DHT process: ask every connected peer (at most MAX_PEERS) which runs it trains."""

    def __init__(self, timeout: float):
        self.timeout = timeout

    async def __call__(self, _dht, node) -> list[list[dict]]:
        peers = [p.peer_id for p in await node.p2p.list_peers()][:MAX_PEERS]

        async def ask(peer) -> list[dict]:
            try:
                _, reader, writer = await node.p2p.call_binary_stream_handler(peer, PROTOCOL)
                try:
                    data = await reader.read(MAX_ANSWER + 1)
                finally:
                    writer.close()
                return [] if len(data) > MAX_ANSWER else _parse(data)
            except Exception as e:  # readers, old nodes, dead peers: no answer
                logger.debug("runs query to %s: %s", peer, e)
                return []

        async def bounded(peer) -> list[dict]:
            try:
                return await asyncio.wait_for(ask(peer), self.timeout)
            except asyncio.TimeoutError:
                return []

        return list(await asyncio.gather(*(bounded(p) for p in peers)))


def serve_runs(dht: hivemind.DHT, run: str, name: str, experts: int, timeout: float = 10.0) -> None:
    """Answer `/paris/runs/1` with this node's run from now on (best effort: logged if it fails)."""
    try:
        dht.run_coroutine(_Serve([{"run": run, "name": name, "experts": experts}]), return_future=True).result(timeout)
    except Exception as e:
        logger.warning("could not serve the runs query (%s: %s)", type(e).__name__, e)


def ask_runs(dht: hivemind.DHT, timeout: float = 5.0) -> list[RunHint]:
    """The runs the connected peers name, most named first."""
    try:
        answers = dht.run_coroutine(_Ask(timeout), return_future=True).result(timeout + 10)
    except Exception as e:
        logger.debug("runs query failed: %s", e)
        return []
    seen: dict[str, RunHint] = {}
    for answer in answers:
        for r in {a["run"]: a for a in answer}.values():
            old = seen.get(r["run"])
            seen[r["run"]] = RunHint(r["run"], r["name"], r["experts"], 1 + (old.peers if old else 0))
    return sorted(seen.values(), key=lambda h: -h.peers)
