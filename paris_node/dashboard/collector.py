"""The page's background reader: every few seconds, read the swarm, verify what it names, build a `Snapshot`.

One thread, at the lowest CPU priority, with a shutdown that waits at most a timeout. Each round reads leases,
statuses and pointers; for each job's newest pointer from an allowed publisher it fetches the checkpoint
manifest once and checks it the way the fetcher does (checkpoint/manifest_check.py: signed by the pointer's
signer, same run, job and step); if the manifest lists a sample PNG, its bytes are fetched by CID and shown only if
`check_sample` accepts them. Losses go into the bounded history (saved in the home, so curves survive a
restart). The partition preview is drawn once from the experts' validation shards. Whatever a peer gets
wrong becomes a note on the page, never an exception that stops the thread or the node.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path

from paris_node.checkpoint.manifest_check import check_manifest
from paris_node.dashboard.history import History
from paris_node.dashboard.render import render_page
from paris_node.dashboard.server import LOADING, Snapshot
from paris_node.dashboard.source import SwarmSource
from paris_node.dashboard.view import CheckpointInfo, RunInfo, SampleInfo, ViewInputs, best_pointer, build_view, number
from paris_node.errors import ParisError, RecordError
from paris_node.fsutil import atomic_write
from paris_node.home import Home
from paris_node.identity import signer_peer
from paris_node.records import now_ms
from paris_node.sampling.sample_png import BadSample, check_sample, sample_entry
from paris_node.swarm import keys
from paris_node.verdicts import Rejected

log = logging.getLogger(__name__)

SAVE_EVERY_S = 10.0
MAX_REJECTED = 10_000
MAX_PREVIEW_SHARD = 64 << 20  # bytes of one validation shard the preview may fetch


def dashboard_dir(home: Home, run_id: str) -> Path:
    return home.root / "dashboard" / run_id


class Collector:
    """Keeps `snapshot()` fresh for one run. `refresh()` is one round (tests call it directly)."""

    def __init__(
        self,
        home: Home,
        manifest,  # paris_node.data.runspec.RunManifest
        source: SwarmSource,
        *,
        every_s: float = 5.0,
        refresh_s: int = 5,
        served_by: str | None = None,
        partition: bool = True,
    ):
        self.home, self.manifest, self.source = home, manifest, source
        self.every_s, self.refresh_s, self.served_by = every_s, refresh_s, served_by
        self.run = RunInfo.of(manifest)
        self.jobs = keys.jobs_for(manifest.experts, router=manifest.experts > 1)  # K=1: no router (node/start.py)
        self.dir = dashboard_dir(home, manifest.run_id)
        self.history = History.load(self.dir / "history.json", manifest.run_id)
        self.checkpoints: dict[str, CheckpointInfo] = {}
        self.files: dict[str, dict] = {}  # manifest CID -> its files
        self.rejected: set[str] = set()
        self.samples: dict[str, SampleInfo] = {}
        self.sample_bytes: dict[str, bytes] = {}
        self.notes: deque[str] = deque(maxlen=50)
        self.partition: bytes | None = None
        self._partition_wanted, self._partition_next = partition, 0.0
        self._snapshot = LOADING
        self._reads: tuple[list, list, dict] = ([], [], {})
        self._saved_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # ------------------------------------------------------------------ the thread
    def start(self) -> Collector:
        self._thread = threading.Thread(target=self._loop, name="paris-dashboard-collect", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        try:  # Linux: this thread alone yields to training
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as e:  # the page must outlive whatever the swarm does
                log.warning("dashboard refresh failed: %s", e, exc_info=log.isEnabledFor(logging.DEBUG))
            self._stop.wait(self.every_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._save(force=True)

    # ------------------------------------------------------------------ one round
    def note(self, text: str) -> None:
        if not self.notes or self.notes[-1] != text:
            self.notes.append(text)

    def refresh(self) -> Snapshot:
        inp = ViewInputs(self.run, self.jobs, history=self.history, served_by=self.served_by)
        try:
            reads = (
                self.source.leases(self.jobs),
                self.source.statuses(),
                {job: self._allowed(self.source.pointers(job)) for job in self.jobs},
            )
            self._reads = reads
        except ParisError as e:  # the DHT did not answer: show the last good read (its ages keep growing)
            self.note(f"swarm read failed: {e}")
            reads = self._reads
        inp.leases, inp.statuses, inp.pointers = list(reads[0]), list(reads[1]), dict(reads[2])
        now = now_ms()
        for job, ptrs in inp.pointers.items():
            ptr = best_pointer(ptrs)
            if ptr is None:
                continue
            cid = ptr.body.manifest_cid
            self._checkpoint(job, ptr)
            if cid in self.checkpoints:
                try:
                    inp.holders[cid] = self.source.providers(cid)
                except ParisError as e:
                    log.debug("providers of %s: %s", cid, e)
                self._sample(job, ptr)
        self._record(inp)
        if self._partition_wanted and self.partition is None and time.monotonic() >= self._partition_next:
            self._draw_partition()
        inp.checkpoints, inp.samples = dict(self.checkpoints), dict(self.samples)
        inp.partition, inp.notes = self.partition is not None, list(self.notes)
        view = build_view(inp, now)
        samples = {job.replace("/", "-"): self.sample_bytes[job] for job in self.samples}
        self._snapshot = Snapshot(
            render_page(view, self.refresh_s), json.dumps(view).encode(), samples, self.partition
        )
        self._save()
        self.rounds += 1
        return self._snapshot

    def _allowed(self, pointers: list) -> list:
        return [p for p in pointers if self.manifest.allows_publisher(p.signer)]

    def _peers(self, ptr, cid: str) -> list[str]:
        try:
            found = self.source.providers(cid)
        except ParisError:
            found = []
        return list(dict.fromkeys([signer_peer(ptr.signer), *found]))

    def _checkpoint(self, job: str, ptr) -> None:
        cid = ptr.body.manifest_cid
        if cid in self.checkpoints or cid in self.rejected:
            return
        from paris_node.records import decode_record

        try:
            data = self.source.content(cid, self._peers(ptr, cid))
            record = decode_record(data, kind="checkpoint", run=self.manifest.run_id)
            body = check_manifest(ptr, record, self.manifest.run_id, job)
        except (Rejected, RecordError, RecursionError) as e:
            self._reject(cid)
            self.note(f"{job}: checkpoint {cid[:16]}… rejected: {e}")
            return
        except (ParisError, TimeoutError, ValueError, KeyError) as e:  # not fetchable yet: next round retries
            log.debug("%s: manifest %s not available: %s", job, cid, e)
            return
        metrics = {k: number(v) for k, v in sorted(body.metrics.items())}
        for old in [c for c, info in self.checkpoints.items() if info.signer == ptr.signer and c != cid]:
            if self.checkpoints[old].step <= body.step:  # keep the cache to the newest of each publisher
                self.checkpoints.pop(old)
                self.files.pop(old, None)
        self.checkpoints[cid] = CheckpointInfo(cid, ptr.signer, body.step, record.issued_ms, metrics)
        self.files[cid] = body.files
        self.history.add(job, body.step, record.issued_ms, **metrics)

    def _sample(self, job: str, ptr) -> None:
        cid = ptr.body.manifest_cid
        held = self.samples.get(job)
        if held is not None and (held.manifest_cid == cid or held.step >= ptr.body.step):
            return
        entry = sample_entry(self.files.get(cid, {}))
        if entry is None:
            return
        name, meta = entry
        key = f"{cid}/{name}"
        if key in self.rejected:
            return
        try:
            data = self.source.content(str(meta.get("cid")), self._peers(ptr, cid))
            checked = check_sample(data, meta)
        except (BadSample, RecordError) as e:
            self._reject(key)
            self.note(f"{job}: sample of step {ptr.body.step} not shown: {e}")
            return
        except (ParisError, TimeoutError, ValueError, KeyError) as e:
            log.debug("%s: sample of %s not available: %s", job, cid, e)
            return
        self.samples[job] = SampleInfo(
            ptr.body.step, cid, str(meta["cid"]), checked.width, checked.height, checked.prompts
        )
        self.sample_bytes[job] = checked.data

    def _reject(self, key: str) -> None:
        if len(self.rejected) >= MAX_REJECTED:  # a peer flooding bad pointers costs re-checks, not memory
            self.rejected.clear()
        self.rejected.add(key)

    def _record(self, inp: ViewInputs) -> None:
        """The owners' statuses as history points (train loss and speed at their current step)."""
        from paris_node.dashboard.view import latest_statuses

        for rec, st in latest_statuses(inp.statuses).values():
            if st.job in self.jobs and st.step > 0:
                self.history.add(
                    st.job, st.step, rec.issued_ms, train_loss=number(st.loss), samples_per_s=number(st.samples_per_s)
                )

    def _draw_partition(self) -> None:
        """Draw the partition preview from the validation shards (small; fetched once), cached in the home."""
        from paris_node.data.preview import preview_image
        from paris_node.data.shards import ShardDataset

        path = self.dir / "partition.png"
        if path.is_file():
            self.partition = path.read_bytes()
            return
        too_big = [e.expert for e in self.manifest.shards if e.val.size > MAX_PREVIEW_SHARD]
        if too_big:  # a Paris-scale run: the preview is not worth downloading every validation shard
            self.note(f"partition preview skipped: validation shards over {MAX_PREVIEW_SHARD >> 20} MiB")
            self._partition_wanted = False
            return
        try:
            shards = []
            for entry in self.manifest.shards:
                cid = entry.val.cid
                data = self.source.content(cid, self.source.providers(cid) or self._creator())
                tmp = self.dir / f".val-{cid}.safetensors"
                tmp.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_bytes(data)
                shards.append(ShardDataset(tmp))
            buf = io.BytesIO()
            preview_image(self.manifest, shards).save(buf, format="PNG")
            atomic_write(path, buf.getvalue())
            self.partition = buf.getvalue()
        except Exception as e:  # shards not reachable yet: try again later
            log.debug("partition preview not drawn yet: %s", e)
            self._partition_next = time.monotonic() + 30.0
        finally:
            for tmp in self.dir.glob(".val-*.safetensors"):
                tmp.unlink(missing_ok=True)

    def _creator(self) -> list[str]:
        return [] if self.manifest.is_demo else [signer_peer(self.manifest.signer)]

    def _save(self, force: bool = False) -> None:
        if force or time.monotonic() - self._saved_at >= SAVE_EVERY_S:
            try:
                self.history.save(self.dir / "history.json")
            except OSError as e:
                log.warning("could not save the dashboard history: %s", e)
            self._saved_at = time.monotonic()
