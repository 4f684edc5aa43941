"""The checkpoint selection rules (node/selection.py) with hand-built pointers, leases and clocks: no network."""

from __future__ import annotations

import dataclasses

import pytest

from paris_node.identity import Identity
from paris_node.node.selection import (
    DEFAULT_MARGIN,
    LISTED,
    OWNER,
    PAST_OWNER,
    VOUCHED,
    Held,
    Regression,
    SelectionRules,
    check_score,
    check_step,
    choose,
    eligibility,
    plan,
    rules_for_run,
)
from paris_node.node.verify import Candidate
from paris_node.records import PointerPayload, StatusPayload, sign_record
from paris_node.swarm.claims import ACTIVE, CLAIMING, RELEASED, Lease
from paris_node.swarm.tenure import LeaseHistory, Tenure
from paris_node.verdicts import Rejected

RUN, JOB = "sel-run", "expert/0"
OWNER_ID, OTHER, SYBIL = (Identity.from_seed(bytes([i]) * 32) for i in (1, 2, 3))
T0 = 1_700_000_000_000  # ms
RULES = SelectionRules(step_budget=1000, max_steps_per_s=10.0, skew_ms=3_000, grace_ms=60_000)


def cand(who: Identity, step: int, issued_ms: int, *, job: str = JOB, seq: int = 0, cid: str = "") -> Candidate:
    payload = PointerPayload(job=job, manifest_cid=cid or f"bafy{who.node_id[-8:]}{step:08d}", step=step, seq=seq)
    return Candidate(sign_record(who, payload, run=RUN, issued_ms=issued_ms))


def lease(who: Identity, start: int, issued: int, state: str = ACTIVE, ttl: int = 12_000, job: str = JOB) -> Lease:
    return Lease(job, who.node_id, start, 0, ttl, state, issued)


def history_with(*tenures: Tenure) -> LeaseHistory:
    h = LeaseHistory()
    for t in tenures:
        h.add(t)
    return h


OWNED = history_with(Tenure(JOB, OWNER_ID.node_id, T0, T0 + 100_000))


# ------------------------------------------------------------------------------------------------ eligibility


def test_only_a_signer_seen_holding_the_lease_at_issue_time_is_eligible():
    now = T0 + 50_000
    assert eligibility(cand(OWNER_ID, 10, T0 + 20_000), JOB, RULES, OWNED, now) == OWNER
    with pytest.raises(Rejected, match="not seen holding"):
        eligibility(cand(OTHER, 10, T0 + 20_000), JOB, RULES, OWNED, now)  # never held it
    with pytest.raises(Rejected, match="not seen holding"):
        eligibility(cand(OWNER_ID, 10, T0 - 10_000), JOB, RULES, OWNED, now)  # issued before its tenure
    with pytest.raises(Rejected, match="not seen holding"):
        eligibility(cand(OWNER_ID, 10, T0 + 100_000 + 61_000), JOB, RULES, OWNED, now)  # past tenure + grace
    with pytest.raises(Rejected, match="not seen holding"):
        eligibility(cand(OWNER_ID, 10, T0 + 20_000, job="expert/1"), "expert/1", RULES, OWNED, now)  # other job
    with pytest.raises(Rejected, match="pointer is for job"):
        eligibility(cand(OWNER_ID, 10, T0 + 20_000), "expert/1", RULES, OWNED, now)


def test_clock_skew_and_grace_edges():
    now = T0 + 50_000
    assert eligibility(cand(OWNER_ID, 1, T0 - 3_000), JOB, RULES, OWNED, now) == OWNER  # skew before the start
    assert eligibility(cand(OWNER_ID, 1, T0 + 160_000), JOB, RULES, OWNED, now) == OWNER  # end + grace, exactly
    later = T0 + 200_000  # the tenure is over: a past owner
    assert eligibility(cand(OWNER_ID, 1, T0 + 20_000), JOB, RULES, OWNED, later) == PAST_OWNER


def status(who: Identity, at: int, holds: list[str], job: str | None = "expert/1"):
    body = StatusPayload(role="expert" if job else "standby", peer=who.peer_id, version="t", job=job, holds=holds)
    return sign_record(who, body, run=RUN, issued_ms=at)


def test_a_departed_owners_checkpoint_is_eligible_when_a_current_owner_vouches_for_it():
    # the reader joined after expert/0's owner left: it sees OTHER owning expert/1 now, nothing of expert/0
    now = T0 + 500_000
    c = cand(OWNER_ID, 300, T0 + 20_000)
    h = history_with(Tenure("expert/1", OTHER.node_id, T0, now + 12_000))
    with pytest.raises(Rejected, match="no current owner vouches"):
        eligibility(c, JOB, RULES, h, now)
    h.observe_holdings([status(OTHER, now - 5_000, [c.body.manifest_cid])], now)
    assert eligibility(c, JOB, RULES, h, now) == VOUCHED
    assert h.vouchers(c.body.manifest_cid, now) == [OTHER.node_id]


def test_vouching_counts_only_current_owners_other_than_the_signer_and_their_latest_status():
    now = T0 + 500_000
    h = history_with(
        Tenure("expert/1", OTHER.node_id, T0, now + 12_000), Tenure("router", SYBIL.node_id, T0, now + 12_000)
    )
    own = cand(SYBIL, 900, now - 1_000)  # a current owner of another job vouching for its own pointer
    h.observe_holdings([status(SYBIL, now - 1_000, [own.body.manifest_cid], job="router")], now)
    with pytest.raises(Rejected, match="no current owner vouches"):
        eligibility(own, JOB, RULES, h, now)
    stranger = Identity.from_seed(bytes([9]) * 32)  # has a status but owns nothing: a key generator's status
    c = cand(OWNER_ID, 300, T0 + 20_000)
    h.observe_holdings([status(stranger, now - 1_000, [c.body.manifest_cid])], now)
    with pytest.raises(Rejected, match="no current owner vouches"):
        eligibility(c, JOB, RULES, h, now)
    h.observe_holdings([status(OTHER, now - 9_000, [c.body.manifest_cid]), status(OTHER, now - 2_000, [])], now)
    with pytest.raises(Rejected, match="no current owner vouches"):  # its latest status no longer holds it
        eligibility(c, JOB, RULES, h, now)
    h.observe_holdings([status(OTHER, now - 1_000, [c.body.manifest_cid])], now)
    assert eligibility(c, JOB, RULES, h, now) == VOUCHED
    assert h.vouchers(c.body.manifest_cid, now + 60_000) == []  # its tenure ended: the vouch goes with it


def test_a_seen_owners_pointer_outranks_a_vouched_one():
    now = T0 + 50_000
    h = history_with(Tenure(JOB, OWNER_ID.node_id, T0, T0 + 100_000), Tenure("expert/1", OTHER.node_id, T0, now))
    vouched = cand(SYBIL, 990, now - 1_000)
    h.observe_holdings([status(OTHER, now - 1_000, [vouched.body.manifest_cid])], now)
    honest = cand(OWNER_ID, 40, now - 2_000)
    out = plan([vouched, honest], JOB, RULES, h, now)  # not even downloaded while a seen owner's is eligible
    assert [(c.signer, tier) for c, tier in out.evaluate] == [(OWNER_ID.node_id, OWNER)]
    assert [c.signer for c, _ in out.skipped] == [SYBIL.node_id] and out.skipped[0][1].code == "vouched-fallback"
    assert [t for _, t in plan([vouched], JOB, RULES, h, now).evaluate] == [VOUCHED]  # alone, it is considered


def test_status_holds_is_optional_on_the_wire_and_bounded():
    plain = StatusPayload(role="standby", peer="p", version="t")
    assert "holds" not in plain.to_dict()  # records without it keep their bytes (and the test vectors)
    assert StatusPayload.from_dict(StatusPayload(role="standby", peer="p", version="t", holds=["a"]).to_dict()).holds
    from paris_node.errors import SchemaError

    with pytest.raises(SchemaError, match="at most 64"):
        StatusPayload.from_dict({**plain.to_dict(), "holds": [f"c{i}" for i in range(65)]})


def test_a_listed_run_admits_its_publishers_and_nobody_else_whatever_the_leases():
    rules = dataclasses.replace(RULES, publishers=(OTHER.node_id,))
    assert eligibility(cand(OTHER, 10, T0), JOB, rules, LeaseHistory(), T0) == LISTED
    with pytest.raises(Rejected, match="not an allowed publisher"):
        eligibility(cand(OWNER_ID, 10, T0 + 1), JOB, rules, OWNED, T0 + 2)


def test_history_counts_winners_not_whoever_wrote_a_lease():
    h = LeaseHistory()
    honest = lease(OWNER_ID, T0, T0 + 10_000)
    flood = [lease(Identity.from_seed(bytes([50 + i]) * 32), T0 + 5_000, T0 + 10_000, CLAIMING) for i in range(20)]
    h.observe([honest, *flood], T0 + 11_000, run=RUN)
    assert [t.holder for t in h.tenures(JOB)] == [OWNER_ID.node_id]
    assert h.tenures(JOB)[0].start_ms == T0 and h.tenures(JOB)[0].end_ms == T0 + 22_000
    # the same tenure seen again later is extended, not duplicated
    h.observe([lease(OWNER_ID, T0, T0 + 30_000)], T0 + 31_000, run=RUN)
    assert len(h.tenures(JOB)) == 1 and h.tenures(JOB)[0].end_ms == T0 + 42_000
    # a released lease wins nothing
    h.observe([lease(SYBIL, T0, T0 + 31_000, RELEASED)], T0 + 32_000, run=RUN)
    assert SYBIL.node_id not in {t.holder for t in h.tenures(JOB)}
    assert h.current_owner(JOB, T0 + 40_000) == OWNER_ID.node_id and h.current_owner(JOB, T0 + 50_000) is None


def test_history_is_bounded_per_job():
    h = LeaseHistory(per_job=4)
    for i in range(10):
        h.add(Tenure(JOB, f"z{i}", T0 + i, T0 + 1000 + i))
    assert sorted(t.holder for t in h.tenures(JOB)) == ["z6", "z7", "z8", "z9"]  # the oldest ones are forgotten


# ------------------------------------------------------------------------------------------------ step bounds


def test_step_budget_and_rate_bound():
    check_step(1000, T0, RULES, None)
    with pytest.raises(Rejected, match="step budget 1000"):
        check_step(1_000_400, T0, RULES, None)
    held = Held(step=100, issued_ms=T0, ratio=0.5)
    check_step(100 + 10 * 13, T0 + 10_000, RULES, held)  # 10 s + 3 s skew at 10 steps/s
    with pytest.raises(Rejected, match="steps/s past the held step 100"):
        check_step(100 + 10 * 13 + 1, T0 + 10_000, RULES, held)
    with pytest.raises(Rejected, match="rollback"):
        check_step(99, T0 + 10_000, RULES, held)
    check_step(500, T0, dataclasses.replace(RULES, step_budget=None), None)


# ------------------------------------------------------------------------------------------------ scores


def test_score_must_beat_the_zero_predictor_by_the_margin():
    check_score(0.5, RULES, None)
    check_score(DEFAULT_MARGIN, RULES, None)
    for bad in (1.0, 0.95, float("nan"), float("inf")):  # 1.0: an all-zero checkpoint, the frozen-job attack
        with pytest.raises(Rejected):
            check_score(bad, RULES, None)


def test_score_must_not_regress_past_the_tolerance():
    held = Held(step=100, issued_ms=T0, ratio=0.4)
    check_score(0.4 * 1.25 + 0.1, RULES, held)
    with pytest.raises(Regression, match="worse than the held checkpoint"):
        check_score(0.4 * 1.25 + 0.1 + 0.01, RULES, held)
    check_score(0.074, RULES, Held(step=500, issued_ms=T0, ratio=0.018))  # a router's noise at low ratios
    check_score(0.8, RULES, Held(step=100, issued_ms=T0, ratio=None))  # an old cache without a ratio: margin only


def test_rules_for_run_never_honour_a_threshold_that_admits_nothing():
    assert rules_for_run("open", 1.0, 20).margin == DEFAULT_MARGIN < 1.0
    assert rules_for_run("open", 2.5, 20).margin == DEFAULT_MARGIN
    assert rules_for_run("open", 0.7, 20).margin == 0.7
    assert rules_for_run("open", None, 20).margin == DEFAULT_MARGIN
    assert rules_for_run((OTHER.node_id,), None, 20).margin is None  # listed publishers without a threshold
    r = rules_for_run("open", 1.0, 20, publish_every_steps=10)
    assert r.step_budget == 20 and r.window_steps == 10


# ------------------------------------------------------------------------------------------------ plan and choice


def test_plan_skips_ineligible_and_out_of_bounds_before_any_download():
    now = T0 + 50_000
    honest = cand(OWNER_ID, 100, T0 + 40_000)
    attacker = cand(OTHER, 1_000_400, T0 + 40_000)  # never held the lease
    sybils = [cand(Identity.from_seed(bytes([80 + i]) * 32), 999, T0 + 40_000) for i in range(30)]
    too_far = cand(OWNER_ID, 1001, T0 + 41_000, job=JOB)  # by the owner, but past the budget
    p = plan([attacker, *sybils, honest, too_far], JOB, RULES, OWNED, now)
    assert [c for c, _ in p.evaluate] == [honest]
    assert len(p.skipped) == 32 and {c.signer for c, _ in p.skipped} >= {OTHER.node_id, OWNER_ID.node_id}


def test_plan_orders_owner_first_then_step_and_caps_the_cost():
    now = T0 + 50_000
    others = [Identity.from_seed(bytes([100 + i]) * 32) for i in range(6)]
    h = history_with(
        Tenure(JOB, OWNER_ID.node_id, T0, T0 + 100_000),  # the current owner
        *(Tenure(JOB, o.node_id, T0 - 40_000, T0 + 10_000) for o in others),  # past owners
    )
    owner_c = cand(OWNER_ID, 50, T0 + 40_000)
    past = [cand(o, 60 + i, T0 + 5_000) for i, o in enumerate(others)]
    p = plan([*past, owner_c], JOB, dataclasses.replace(RULES, max_candidates=3), h, now)
    assert [c for c, _ in p.evaluate] == [owner_c, past[5], past[4]]
    assert [t for _, t in p.evaluate] == [OWNER, PAST_OWNER, PAST_OWNER]
    assert len(p.skipped) == 4 and all("budget of 3 candidates" in str(why) for _, why in p.skipped)
    assert {why.code for _, why in p.skipped} == {"skipped-budget"}
    # the per-signer budget, and a penalised signer
    p = plan([*past, owner_c], JOB, RULES, h, now, penalised=[OWNER_ID.node_id], signer_spent={others[5].node_id: 1})
    assert owner_c not in [c for c, _ in p.evaluate] and past[5] not in [c for c, _ in p.evaluate]
    reasons = {c.signer: str(why) for c, why in p.skipped}
    assert "penalised" in reasons[OWNER_ID.node_id] and "per signer" in reasons[others[5].node_id]


def test_plan_is_deterministic_on_ties():
    now = T0 + 50_000
    a, b = sorted([OWNER_ID, OTHER], key=lambda i: i.node_id)
    h = history_with(Tenure(JOB, a.node_id, T0 - 1, T0 + 1), Tenure(JOB, b.node_id, T0 - 1, T0 + 1))
    ca, cb = cand(a, 10, T0), cand(b, 10, T0)
    assert [c for c, _ in plan([cb, ca], JOB, RULES, h, now).evaluate] == [ca, cb]
    assert [c for c, _ in plan([ca, cb], JOB, RULES, h, now).evaluate] == [ca, cb]


def test_choose_prefers_the_best_score_within_the_newest_steps():
    rules = dataclasses.replace(RULES, window_steps=20)
    new_good, new_bad, old_best = cand(OWNER_ID, 100, T0), cand(OTHER, 95, T0), cand(SYBIL, 50, T0)
    assert choose([(new_bad, 0.5), (new_good, 0.3), (old_best, 0.1)], rules) is new_good  # 50 is outside the window
    assert choose([(new_bad, 0.2), (new_good, 0.3), (old_best, 0.1)], rules) is new_bad  # 95 is inside: better wins
    tie_a, tie_b = cand(OWNER_ID, 100, T0), cand(OTHER, 100, T0)
    first = min([tie_a, tie_b], key=lambda c: c.signer)
    assert (
        choose([(tie_a, 0.3), (tie_b, 0.3)], rules) is first and choose([(tie_b, 0.3), (tie_a, 0.3)], rules) is first
    )
    assert choose([], rules) is None
