"""Which announced checkpoint a node downloads, scores and installs: decided by measurement, never by claim.

A pointer's step is a label its signer chose. These pure functions (protocol/selection.md states them as the
protocol) decide, from signed records, the reader's own observations and the scores it computed itself:

1. Eligibility: the signer is in the run's publisher list, or this reader has seen the signer *win* the job's
   lease (claims.owners) in a tenure that covers the pointer's issue time (with clock skew and a grace for the
   pointer's re-announcements). A lease somebody merely wrote does not count: winning needs the claim rules.
   Last tier (open runs): a node this reader sees owning some job now, other than the signer, vouches for the
   checkpoint (its status `holds` the manifest: it verified it under these rules and serves it). That is how a
   reader that joined after an owner left can still resume from, or sample with, its checkpoint. Vouched
   candidates are a fallback: they are considered only when no candidate of a better tier is eligible.
2. Step bounds: step <= the run's step budget, and <= the held parent's step + the time elapsed since that
   checkpoint was issued x a generous rate bound.
3. Score (after download): ratio <= the run's margin (strictly better than the zero predictor), and not worse
   than the best verified checkpoint already held for the job by more than a relative tolerance.
4. Choice: among candidates that pass, the best ratio within `window_steps` of the newest passing step; ties go
   to the higher step, the newer pointer, then the smaller signer (deterministic).
5. Cost: at most `max_candidates` downloads per job per fetch (eligible first, the current owner first, then by
   step), at most `per_signer` per signer, none for penalised signers (a failed check: minutes to an hour) or
   cooling ones (a candidate that could not be fetched: seconds to two minutes); everything skipped is reported.

The fetcher (node/fetcher.py) runs these for `fetch`, standby mirroring and takeover alike, so a takeover can
never resume from a checkpoint a fetcher would refuse. Pure module: no network, no disk.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from paris_node.data.runspec import publisher_allowed
from paris_node.node.verify import Candidate
from paris_node.swarm.claims import DEFAULT_RULES
from paris_node.swarm.tenure import LeaseHistory
from paris_node.verdicts import Rejected

LISTED, OWNER, PAST_OWNER, VOUCHED = "listed", "owner", "past-owner", "vouched"  # eligibility tiers, best first
_TIER_RANK = {LISTED: 0, OWNER: 1, PAST_OWNER: 2, VOUCHED: 3}


class Regression(Rejected):
    """A candidate that scores worse than what is held: refused, but not its signer's misbehaviour."""

    def __init__(self, message: str, code: str = "regression"):
        super().__init__(message, code)


@dataclass(frozen=True)
class SelectionRules:
    """Tunables of the selection rules; the run's manifest supplies budget, publishers and margin."""

    publishers: str | tuple[str, ...] = "open"
    step_budget: int | None = None  # the run's training steps; None: unbounded (tests only)
    margin: float | None = 0.9  # val-loss ratio must be <= this (zero predictor: exactly 1.0); None: no gate
    tolerance: float = 0.25  # ratio <= held ratio x (1 + tolerance) + abs_tolerance
    abs_tolerance: float = 0.1  # low ratios (a router near 0.02) are noisy in relative terms
    max_steps_per_s: float = 200.0  # generous: far above what any preset trains on one GPU
    window_steps: int = 500  # "newest steps": candidates this close to the newest passing step compete by score
    max_candidates: int = 3  # downloads per job per fetch
    per_signer: int = 1  # downloads per signer per fetch
    skew_ms: int = DEFAULT_RULES.skew_ms
    grace_ms: int = 3 * 3600_000  # a past owner's pointer is re-announced for a while after its tenure


DEFAULT_MARGIN = 0.9  # from measured curves (protocol/selection.md): honest tiny/small runs pass it by step 50


def rules_for_run(
    publishers: str | tuple[str, ...],
    threshold: float | None,
    step_budget: int | None,
    publish_every_steps: int | None = None,
) -> SelectionRules:
    """The rules a run's manifest implies. A threshold that admits the zero predictor (>= 1.0) is never honoured:
    the margin is then DEFAULT_MARGIN. Listed runs without a threshold trust their publishers' scores."""
    if threshold is None:
        margin = DEFAULT_MARGIN if publishers == "open" else None
    else:
        margin = threshold if threshold < 1.0 else DEFAULT_MARGIN
    window = SelectionRules.window_steps if publish_every_steps is None else max(0, int(publish_every_steps))
    return SelectionRules(publishers=publishers, step_budget=step_budget, margin=margin, window_steps=window)


@dataclass(frozen=True)
class Held:
    """The verified checkpoint a node already holds for a job (its cache info)."""

    step: int
    issued_ms: int
    ratio: float | None


@dataclass
class Plan:
    """What a fetch will evaluate (in order, with the eligibility tier) and what it skips (with why)."""

    evaluate: list[tuple[Candidate, str]] = field(default_factory=list)
    skipped: list[tuple[Candidate, Rejected]] = field(default_factory=list)  # why: message and code


# ---------------------------------------------------------------------------------------------------- the rules


def eligibility(cand: Candidate, job: str, rules: SelectionRules, history: LeaseHistory, now_ms: int) -> str:
    """The candidate's tier (LISTED, OWNER, PAST_OWNER, VOUCHED); Rejected if its signer may not publish for `job`."""
    if cand.body.job != job:
        raise Rejected(f"pointer is for job {cand.body.job!r}, not {job!r}", "wrong-job")
    if rules.publishers != "open":
        if publisher_allowed(rules.publishers, cand.signer):
            return LISTED
        raise Rejected(f"signer {cand.signer[:16]}... is not an allowed publisher of this run", "publisher")
    issued = cand.pointer.issued_ms
    for t in history.tenures(job):
        if t.holder == cand.signer and t.start_ms - rules.skew_ms <= issued <= t.end_ms + rules.grace_ms:
            return OWNER if t.end_ms >= now_ms - rules.skew_ms else PAST_OWNER
    if [v for v in history.vouchers(cand.body.manifest_cid, now_ms - rules.skew_ms) if v != cand.signer]:
        return VOUCHED
    raise Rejected(
        f"signer {cand.signer[:16]}... was not seen holding {job}'s lease when it issued this pointer, "
        "and no current owner vouches for it",
        "not-eligible",
    )


def check_step(step: int, issued_ms: int, rules: SelectionRules, held: Held | None) -> None:
    """Step budget and the rate bound from the held (verified) parent; Rejected otherwise."""
    if rules.step_budget is not None and step > rules.step_budget:
        raise Rejected(f"step {step} is past the run's step budget {rules.step_budget}", "step-budget")
    if held is not None:
        if step < held.step:
            raise Rejected(f"step {step} is older than the step {held.step} already held (rollback)", "rollback")
        elapsed_s = max(0.0, (issued_ms - held.issued_ms + rules.skew_ms) / 1000)
        bound = held.step + math.ceil(elapsed_s * rules.max_steps_per_s)
        if step > bound:
            raise Rejected(
                f"step {step} is more than {rules.max_steps_per_s:g} steps/s past the held step {held.step} "
                f"({elapsed_s:.0f} s earlier)",
                "rate-bound",
            )


def check_score(ratio: float, rules: SelectionRules, held: Held | None) -> None:
    """The measured ratio must beat the zero predictor by the margin and not regress past the tolerance."""
    if rules.margin is not None and not ratio <= rules.margin:  # also NaN
        why = f"validation loss ratio {ratio:.4f} does not beat the zero predictor: margin {rules.margin:g}"
        raise Rejected(why, "score-margin")
    if not math.isfinite(ratio):
        raise Rejected(f"validation loss ratio {ratio} is not a number", "score-margin")
    if (
        held is not None
        and held.ratio is not None
        and ratio > held.ratio * (1 + rules.tolerance) + rules.abs_tolerance
    ):
        raise Regression(
            f"validation loss ratio {ratio:.4f} is worse than the held checkpoint's {held.ratio:.4f} "
            f"by more than {rules.tolerance:.0%} + {rules.abs_tolerance:g}"
        )


def plan(
    candidates: Iterable[Candidate],
    job: str,
    rules: SelectionRules,
    history: LeaseHistory,
    now_ms: int,
    *,
    held: Held | None = None,
    penalised: Iterable[str] = (),
    cooling: Iterable[str] = (),
    signer_spent: Mapping[str, int] | None = None,
) -> Plan:
    """Pre-download decisions: drop ineligible and out-of-bounds pointers, order and cap the rest. `penalised`:
    signers whose candidate failed a check; `cooling`: signers whose candidate could not be fetched lately."""
    out, bad, cold = Plan(), set(penalised), set(cooling)
    spent = dict(signer_spent or {})
    owner = history.current_owner(job, now_ms)
    ranked = []
    for cand in candidates:
        if cand.signer in bad:
            out.skipped.append((cand, Rejected("signer is penalised for a failed candidate", "penalised")))
            continue
        if cand.signer in cold:
            why = "the signer's last candidate could not be fetched; retried after a short back-off"
            out.skipped.append((cand, Rejected(why, "cooling")))
            continue
        try:
            tier = eligibility(cand, job, rules, history, now_ms)
            check_step(cand.body.step, cand.pointer.issued_ms, rules, held)
        except Rejected as e:
            out.skipped.append((cand, e))
            continue
        ranked.append((cand, tier))
    if any(tier != VOUCHED for _, tier in ranked):  # vouching is the fallback of a reader that saw no owner
        fallback = "a seen owner's checkpoint is eligible (vouched ones are a fallback)"
        out.skipped += [(c, Rejected(fallback, "vouched-fallback")) for c, t in ranked if t == VOUCHED]
        ranked = [(c, t) for c, t in ranked if t != VOUCHED]
    ranked.sort(
        key=lambda ct: (
            _TIER_RANK[ct[1]],
            ct[0].signer != owner,
            -ct[0].body.step,
            -ct[0].body.seq,
            -ct[0].pointer.issued_ms,
            ct[0].signer,
        )
    )
    for cand, tier in ranked:
        if len(out.evaluate) >= rules.max_candidates:
            why = f"over the budget of {rules.max_candidates} candidates per job"
            out.skipped.append((cand, Rejected(why, "skipped-budget")))
        elif spent.get(cand.signer, 0) >= rules.per_signer:
            why = f"over the budget of {rules.per_signer} candidate(s) per signer"
            out.skipped.append((cand, Rejected(why, "skipped-budget")))
        else:
            spent[cand.signer] = spent.get(cand.signer, 0) + 1
            out.evaluate.append((cand, tier))
    return out


def choose(passed: Iterable[tuple[Candidate, float]], rules: SelectionRules) -> Candidate | None:
    """Among candidates that passed every check (with their measured ratio): best ratio within the newest steps."""
    passed = list(passed)
    if not passed:
        return None
    newest = max(c.body.step for c, _ in passed)
    window = [(c, r) for c, r in passed if c.body.step >= newest - rules.window_steps]
    best = min(window, key=lambda cr: (cr[1], -cr[0].body.step, -cr[0].pointer.issued_ms, cr[0].signer))
    return best[0]
