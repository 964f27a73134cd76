"""The fleet's rules as pure functions: fair order between tenants, jobs ahead, pools, desired capacity."""
from __future__ import annotations

from platform_core.jobs import Job
from platform_core.scheduling import desired_capacity, fair_order, jobs_ahead, pool_for


def job(job_id: str, tenant: str, at: float) -> Job:
    return Job(job_id=job_id, tenant=tenant, name=job_id, kind="image", recipe="fast", dataset_path="d",
               dataset_version=1, requested_by="u", enqueued_at=at)


A = [job(f"a{i:02}", "A", 100 + i / 1000) for i in range(20)]
B = job("b", "B", 101)


def ids(jobs):
    return [j.job_id for j in jobs]


def test_one_tenants_burst_delays_another_tenants_job_by_at_most_one_job() -> None:
    assert ids(fair_order(A + [B]))[:2] == ["a00", "b"]  # nobody served yet: the first in line, then B
    # A's first job is training, on a fleet of several trainers
    assert ids(fair_order(A[1:] + [B], [A[0]], {"A": 100.5}))[0] == "b"
    # one trainer: A's first job has finished, nobody is training now
    assert ids(fair_order(A[1:] + [B], [], {"A": 100.5}))[:3] == ["b", "a01", "a02"]


def test_tenants_take_turns_least_recently_served_first_and_nobody_starves() -> None:
    c = job("c", "C", 50)
    served = {"A": 200.0, "C": 150.0}  # both served since their oldest waiting job arrived; C longer ago
    assert ids(fair_order([A[5], c], [], served)) == ["c", "a05"]
    # a tenant served before its waiting job arrived counts as not served since then: it goes first
    assert ids(fair_order([A[5], c], [], {"A": 200.0, "C": 10.0})) == ["c", "a05"]
    assert ids(fair_order([A[5], job("c", "C", 300)], [], {"A": 200.0, "C": 10.0})) == ["c", "a05"]


def test_a_tenant_with_jobs_training_ranks_behind_one_with_none() -> None:
    training = [job("t1", "A", 1), job("t2", "A", 2)]
    order = fair_order([A[0], A[1], B], training, {})
    assert ids(order) == ["b", "a00", "a01"]


def test_jobs_ahead_counts_the_jobs_taken_first() -> None:
    assert jobs_ahead("b", A + [B]) == 1
    assert jobs_ahead("a03", A + [B]) == 4
    assert jobs_ahead("missing", A) is None


def test_full_fine_tuning_goes_to_the_gpu_pool_only_where_there_is_one() -> None:
    assert pool_for("seed", ["cpu", "gpu"]) == "gpu"
    assert pool_for("seed", ["cpu"]) == "cpu"
    assert pool_for("fast", ["cpu", "gpu"]) == "cpu" and pool_for("encoder", {"gpu": 1, "cpu": 1}) == "cpu"


def test_desired_capacity_rises_to_the_need_within_max_and_never_falls_here() -> None:
    assert desired_capacity(current=0, needed=1, max_size=3) == 1
    assert desired_capacity(current=1, needed=7, max_size=3) == 3
    assert desired_capacity(current=2, needed=0, max_size=3) == 2  # scale-in is the group's policy
    assert desired_capacity(current=3, needed=5, max_size=3) == 3
