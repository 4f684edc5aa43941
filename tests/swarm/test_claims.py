"""Pure claim decisions with hand-built leases and clocks."""

from paris_node.swarm.claims import (
    ACTIVE,
    CLAIMING,
    RELEASED,
    ClaimRules,
    Lease,
    attested,
    born_squatting,
    choose_job,
    credible,
    free_jobs,
    honoured,
    is_live,
    live_owner,
    may_claim,
    owner_tag,
    owners,
    resolve_conflict,
    still_owner,
)

RUN = "r"
JOBS = ["expert/0", "expert/1", "expert/2", "router"]
R = ClaimRules(skew_ms=3000, bucket_ms=2000, clamp_ms=60_000)
T = 1_000_000_000


def L(job, holder, start, state=ACTIVE, issued=None, ttl=30_000, seq=0):
    return Lease(job, holder, start, seq, ttl, state, start if issued is None else issued)


def test_liveness_window_includes_skew_and_excludes_released():
    lease = L("expert/0", "a", T)
    assert is_live(lease, T + 30_000 + 3000, R)
    assert not is_live(lease, T + 30_000 + 3001, R)
    assert not is_live(L("expert/0", "a", T, state=RELEASED), T + 1, R)


def test_earlier_bucket_wins_and_active_beats_claiming():
    early, late = L("expert/0", "a", T), L("expert/0", "b", T + 5000)
    assert resolve_conflict([late, early], T + 6000, run=RUN, rules=R) == early
    claiming_early = L("expert/0", "c", T - 10_000, state=CLAIMING, issued=T)
    assert resolve_conflict([claiming_early, late], T + 6000, run=RUN, rules=R) == late


def test_same_bucket_tie_is_broken_by_hash_identically_for_every_order():
    leases = [L("expert/0", h, T + i) for i, h in enumerate("abcdef")]
    winners = {resolve_conflict(perm, T + 100, run=RUN, rules=R).holder for perm in (leases, leases[::-1])}
    assert len(winners) == 1


def test_clock_skew_of_a_few_seconds_does_not_create_two_owners():
    # b's clock runs 2.5 s behind: its claim after a's settled lease looks earlier, but a is active.
    a = L("expert/0", "a", T, issued=T + 9000)
    b = L("expert/0", "b", T + 8000 - 2500, state=CLAIMING)
    for now in (T + 9000, T + 9000 - 2500, T + 9000 + 2500):  # three readers with skewed clocks
        assert live_owner([a, b], now, run=RUN, rules=R) == "a"
    # near expiry a reader 3 s ahead still sees a's lease as live (skew allowance)
    assert is_live(a, a.expires_ms + 2900, R)


def test_backdated_lease_is_clamped_to_first_sighting():
    honest = L("expert/0", "a", T, issued=T + 100_000)
    liar = L("expert/0", "z", T - 10**7, issued=T + 100_000)
    first_seen = {("expert/0", "a", T): T + 1000, ("expert/0", "z", T - 10**7): T + 100_000}
    assert live_owner([honest, liar], T + 100_000, run=RUN, rules=R) == "z"  # without clamping, backdating wins
    assert live_owner([honest, liar], T + 100_000, run=RUN, first_seen=first_seen, rules=R) == "a"


def test_flood_from_one_node_is_honoured_for_one_job_only():
    flood = [L(job, "m", T, issued=T + i) for i, job in enumerate(JOBS)]
    assert len(honoured(flood, T + 10, R)) == 1
    won = owners(flood, T + 10, run=RUN, rules=R)
    assert list(won) == ["router"]  # the most recently issued
    assert free_jobs(flood, JOBS, T + 10, "x", rules=R) == ["expert/0", "expert/1", "expert/2"]


def test_choose_job_spreads_simultaneous_joiners_and_keeps_a_won_job():
    picks = {choose_job([], JOBS, T, f"node{i}", run=RUN, rules=R) for i in range(12)}
    assert len(picks) >= 3  # rendezvous hashing, not everyone on expert/0
    leases = [L("expert/1", "me", T)]
    assert choose_job(leases, JOBS, T + 1, "me", run=RUN, rules=R) == "expert/1"


def test_choose_job_prefers_least_progress_then_standby_when_full():
    progress = {"expert/0": 500, "expert/1": 10, "expert/2": 900, "router": 700}
    assert choose_job([], JOBS, T, "n", run=RUN, progress=progress, rules=R) == "expert/1"
    full = [L(job, f"h{i}", T) for i, job in enumerate(JOBS)]
    assert choose_job(full, JOBS, T + 1, "n", run=RUN, rules=R) is None


def test_standby_takes_over_an_expired_or_released_job():
    full = [L(job, f"h{i}", T) for i, job in enumerate(JOBS)]
    assert choose_job(full, JOBS, T + 30_000 + 3001, "n", run=RUN, rules=R) is not None  # all expired
    released = full[:1] + [L("expert/1", "h1", T, state=RELEASED, issued=T + 5)] + full[2:]
    assert choose_job(released, JOBS, T + 10, "n", run=RUN, rules=R) == "expert/1"


def test_forced_claim_waits_while_taken_and_still_owner_detects_loss():
    taken = [L("expert/2", "other", T)]
    assert not may_claim(taken, "expert/2", T + 1, "me", rules=R)
    assert may_claim(taken, "expert/2", T + 40_000, "me", rules=R)
    both = taken + [L("expert/2", "me", T + 5000, state=CLAIMING)]
    assert not still_owner(both, "expert/2", T + 6000, "me", run=RUN, rules=R)
    assert still_owner(both, "expert/2", T + 6000, "other", run=RUN, rules=R)


# ------------------------------------------------------------------------------------------------ sybil leases


def sybils(n, job="expert/0", start=T, state=ACTIVE, issued=None):
    return [L(job, f"sybil{i:04d}", start, state, issued=issued, ttl=600_000) for i in range(n)]


def test_a_flood_of_active_leases_that_serve_nothing_does_not_squat_the_job():
    now = T + 100_000
    honest = L("expert/0", "honest", T, issued=now - 1000)
    flood = sybils(1000, start=now - 90_000, issued=now - 1000)  # old, active, valid, and ground for the hash
    serving = {"honest": "expert/0"}
    kept = credible([honest, *flood], now, serving=serving, rules=R)
    assert kept == [honest]
    assert owners(kept, now, run=RUN, rules=R)["expert/0"].holder == "honest"
    # the owner is killed: its lease expires, and the job is free for a standby at once, flood or not
    later = T + 100_000 + 30_000 + 3001
    kept = credible(flood, later, serving={}, me="standby", rules=R)
    assert kept == [] and free_jobs(kept, JOBS, later, "standby", rules=R) == JOBS


def test_stalled_claims_age_out_and_young_claimants_are_bounded_per_job():
    now = T + 100_000
    stalled = sybils(50, start=now - 31_000, state=CLAIMING, issued=now - 500)
    young = sybils(50, start=now - 1_000, state=CLAIMING, issued=now - 500)
    mine = L("expert/0", "me", now - 2_000, CLAIMING)
    kept = credible([*stalled, *young, mine], now, serving={}, me="me", rules=R)
    assert mine in kept and not set(stalled) & set(kept)
    assert len([x for x in kept if x.holder != "me"]) == R.max_new_claimants
    # first-seen order by the reader decides which young ones count, not a hash the flood could grind
    first_seen = {(x.job, x.holder, x.lease_start_ms): now - 100 for x in young}
    early = L("expert/0", "early-bird", now - 1_000, CLAIMING)
    first_seen[(early.job, early.holder, early.lease_start_ms)] = now - 5_000
    kept = credible([*young, early], now, serving={}, first_seen=first_seen, rules=R)
    assert early in kept


def test_without_statuses_the_serving_rule_is_not_applied():
    now = T + 100_000
    old = L("expert/0", "a", T, issued=now - 1000)
    assert credible([old], now, serving=None, rules=R) == [old]
    assert credible([old], now, serving={"a": "expert/1"}, rules=R) == []  # serves another job
    assert credible([L("expert/0", "b", T, RELEASED, issued=now)], now, serving={}, rules=R)  # kept: says "free"


def test_leases_written_into_an_occupied_job_are_squatters_even_with_serving_statuses():
    now = T + 100_000
    honest = L("expert/0", "honest", T, issued=now - 1000)  # renewed a second ago: 29 s of its TTL left
    flood = sybils(20, start=now - 59_000, issued=now - 500)  # each key also says it serves expert/0
    serving = {"honest": "expert/0", **{x.holder: "expert/0" for x in flood}}
    kept = credible([honest, *flood], now, serving=serving, rules=R)
    assert set(flood) <= set(kept)  # the serving rule alone keeps them: after a crash, one would inherit the job
    winners = owners(kept, now, run=RUN, rules=R)
    assert winners["expert/0"].holder == "honest"
    watched = {"expert/0": ("honest", now - R.occupied_ms)}  # this watcher has seen the owner win for 30 s
    assert born_squatting(flood, winners, watched, now, rules=R) == flood
    # the owner's crash then frees the job for a standby that dropped them
    later = now + 30_000 + 3001
    assert free_jobs([honest], JOBS, later, "standby", rules=R) == JOBS


def test_fair_claims_are_not_squatters():
    now = T + 100_000
    honest = L("expert/0", "honest", T, issued=now - 1000)
    winners = {"expert/0": honest}
    newcomer = L("expert/0", "b", now - 1000, CLAIMING, issued=now - 1000)
    # a race: the winner has won for less than occupied_ms by this watch
    assert born_squatting([newcomer], winners, {"expert/0": ("honest", now - 5_000)}, now, rules=R) == []
    # a watcher that never saw the winner win (just started, or the winner changed) marks nothing
    assert born_squatting([newcomer], winners, {}, now, rules=R) == []
    assert born_squatting([newcomer], winners, {"expert/0": ("other", now - 60_000)}, now, rules=R) == []
    # the winner's lease is about to expire: a claimer whose clock runs ahead by the skew may see the job free
    dying = L("expert/0", "honest", T, issued=now - 30_000 + 2_000)
    long_ago = {"expert/0": ("honest", now - 60_000)}
    assert born_squatting([newcomer], {"expert/0": dying}, long_ago, now, rules=R) == []
    # own leases, the winner's own new lease and released leases never count
    own = L("expert/0", "me", now - 1000)
    renewed = L("expert/0", "honest", now - 1000)
    released = L("expert/0", "c", now - 1000, RELEASED)
    assert born_squatting([own, renewed, released], winners, long_ago, now, me="me", rules=R) == []
    assert born_squatting([newcomer], winners, long_ago, now, rules=R) == [newcomer]


def test_a_trusted_witness_names_the_owner_among_leases_that_look_alike():
    """A fresh reader sees the owner's lease and serving sybils' as equally old (the clamp); the peer it joined
    through attests who its watch sees winning, and only that holder's lease is kept for the job."""
    sybils = [L("expert/0", f"sybil{i}", T) for i in range(5)]
    owner, other = L("expert/0", "owner-node-id-0123456789", T), L("expert/1", "b", T)
    leases = [*sybils, owner, other]
    tag = owner_tag(owner.holder)
    assert len(tag) == 20 and owner.holder.startswith(tag)
    kept = attested(leases, {"expert/0": tag}, T + 1000, R)
    assert kept == [owner, other]  # other jobs untouched
    assert owners(kept, T + 1000, run=RUN, rules=R)["expert/0"] == owner
    assert attested(leases, {}, T + 1000, R) == leases  # no attestation: the claim rules alone


def test_a_witness_naming_nobody_live_changes_nothing():
    sybil, owner = L("expert/0", "sybil", T), L("expert/0", "owner-node-id-0123456789", T, ttl=5_000)
    tag = {"expert/0": owner_tag(owner.holder)}
    assert attested([sybil, owner], tag, T + 5_000 + 3_001, R) == [sybil, owner]  # the owner's lease expired
    released = L("expert/0", "owner-node-id-0123456789", T, state=RELEASED)
    assert attested([sybil, released], tag, T + 1000, R) == [sybil, released]
    assert attested([sybil], {"expert/0": owner_tag("someone-not-here-at-all")}, T + 1000, R) == [sybil]
