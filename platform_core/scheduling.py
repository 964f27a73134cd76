"""The training fleet's rules, as pure functions: which job a free trainer takes next (fair between tenants),
how many jobs are ahead of one, which pool of trainers runs a recipe, and how many trainers the queue needs.

Every queue adapter (SQLite locally, SQS on AWS) and the fleet simulation (bench/fleet.py) use these, so the
order a user is promised is the order trainers follow.

Fairness: a tenant's k-th waiting job (0-based, oldest first) ranks ``k + r`` where ``r`` is how many of that
tenant's jobs are training now. Jobs go in rank order; among equal ranks, a tenant not served since its
oldest waiting job arrived goes first (by enqueue time), then the tenant served least recently (its last
claim, ``served``). So tenants take turns even on one trainer, where nobody is "training" between two jobs,
and one tenant with 20 waiting jobs delays another tenant's single job by at most the one job that was
already running or first in line. Nobody starves: a tenant served drops behind every tenant served before it.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping, Sequence

from platform_core.jobs import Job

CPU_POOL, GPU_POOL = "cpu", "gpu"
# Recipes that fine-tune the whole network: they go to the GPU pool where the stack has one.
GPU_RECIPES = frozenset({"seed"})


def pool_for(recipe: str, pools: Iterable[str]) -> str:
    """The pool of trainers that runs ``recipe``: the GPU pool for full fine-tuning when it exists, else CPU."""
    return GPU_POOL if recipe in GPU_RECIPES and GPU_POOL in set(pools) else CPU_POOL


def fair_order(waiting: Sequence[Job], training: Sequence[Job] = (),
               served: Mapping[str, float] | None = None) -> list[Job]:
    """``waiting`` in the order trainers take them, given the jobs ``training`` now and each tenant's last
    claim time ``served`` (module docstring)."""
    served = served or {}
    busy: dict[str, int] = defaultdict(int)
    for job in training:
        busy[job.tenant] += 1
    by_tenant: dict[str, list[Job]] = defaultdict(list)
    for job in sorted(waiting, key=lambda j: (j.enqueued_at, j.job_id)):
        by_tenant[job.tenant].append(job)
    ranked = []
    for tenant, jobs in by_tenant.items():
        last = served.get(tenant)
        turn = last if last is not None and last >= jobs[0].enqueued_at else float("-inf")
        ranked += [(busy[tenant] + k, turn, job.enqueued_at, job.job_id, job) for k, job in enumerate(jobs)]
    return [job for *_, job in sorted(ranked, key=lambda r: r[:4])]


def jobs_ahead(job_id: str, waiting: Sequence[Job], training: Sequence[Job] = (),
               served: Mapping[str, float] | None = None) -> int | None:
    """How many waiting jobs a trainer takes before ``job_id`` (None when it is not waiting)."""
    for index, job in enumerate(fair_order(waiting, training, served)):
        if job.job_id == job_id:
            return index
    return None


def desired_capacity(*, current: int, needed: int, max_size: int) -> int:
    """Trainers the group should have when ``needed`` jobs are waiting or training: raised at once to meet
    them (never above ``max_size``), never lowered here (scale-in is the group's policy, once the queue has
    been empty for a while, and protected instances finish their jobs first)."""
    return max(current, min(max_size, max(needed, 0)))
