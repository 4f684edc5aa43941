"""paris_node.swarm: run membership over the hivemind DHT.

keys.py (key layout) -> validator.py (Ed25519 record validator) -> claims.py (pure decisions)
-> dht.py (start/join, batched calls) -> announcer.py (one re-publishing thread) -> membership.py (claim loop,
readers) -> runner.py (`run_node`, what `paris-node start` runs). Spec: protocol/dht.md.
"""
