"""Prefect flow `enrich-collection`: pages in worker processes, one task per page.

Thin by design: checks, planning, page processing and reporting live in `htr`.
A worker process that dies (OOM killer, segfault) breaks the process pool;
the pages it was running are retried one at a time in a fresh pool, and a
page that kills its worker again is recorded as failed. The rest go on.

The flow holds the output folder's run lock (htr.runlock), runs the same checks as
`htr enrich` (htr.preflight), submits pages a few at a time so that it can stop taking
new ones (disk full; more failed pages than `max_failures` allows, htr.collection.Budget),
keeps run.json up to date as pages finish (htr.runrecord), and ends Failed, with its
summary in a RunFailed, when the run stopped or failed too many pages.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.futures import as_completed
from prefect.states import Failed
from prefect.task_runners import ProcessPoolTaskRunner

from flows import artifacts
from htr import collection, pipeline, preflight, runlock, state
from htr.config import RunSettings, default_workers
from htr.errors import HTRError, RunFailed
from htr.runrecord import RunRecord
from htr.types import PageRef, PageResult

Listener = Callable[[str, object], None]
_listeners: list[Listener] = []


def add_listener(fn: Listener) -> None:
    """Receive ("planning", (what, done, total)) while planning, ("warning", str), ("plan", Plan) once,
    then ("page", PageResult) per finished page (main process only)."""
    _listeners.append(fn)


def remove_listener(fn: Listener) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def _emit(kind: str, payload: object) -> None:
    for fn in list(_listeners):
        fn(kind, payload)


def init_worker(threads: int, parent_pid: int | None = None, warm: tuple[dict, dict] | None = None) -> None:
    """Run once per worker process: bound torch/BLAS threads so workers do not fight for cores;
    with `parent_pid`, end this worker as soon as that process dies (htr.lifeline); with `warm`
    (settings, models as dicts), load the run's models now, before the first page (pipeline.warm_up)."""
    if parent_pid is not None:
        from htr.lifeline import watch_parent

        watch_parent(parent_pid)
        atexit.register(_exit_without_teardown)  # local workers: what imports below register runs before it
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    if warm is not None:
        pipeline.warm_up(RunSettings(**warm[0]), pipeline.Models.from_dict(warm[1]))


def _exit_without_teardown() -> None:
    """A local worker's exit, once its pool shut it down and the exit handlers of torch, Kraken, spaCy and Prefect
    (registered after this one, so run before it) have run: flush the logs, then end the process without the
    interpreter's teardown of those libraries, which costs seconds of CPU (4 s measured, 9 s on a loaded machine)
    that the run waits for before it can finish. Results and outputs are written by then."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


@task(name="enrich-page", task_run_name="page {ref[id]}")
def enrich_page(ref: dict, output: str, settings: dict, models: dict, key: str) -> dict:
    """One page through every stage (worker process; models load once per process)."""
    result = pipeline.process_page(
        PageRef.from_dict(ref), Path(output), RunSettings(**settings), pipeline.Models.from_dict(models), key
    )
    return result.to_dict()


def make_runner(workers: int, settings: RunSettings, cluster: str | None = None, models: pipeline.Models | None = None):
    """The task runner for page tasks (models load once per worker process and stay loaded).

    Without `cluster`: `workers` local worker processes, each loading `models` (when given) as it
    starts, before its first page. With `cluster` ("tcp://HOST:8786"):
    the page tasks run on that existing Dask cluster (prefect-dask); every worker gets
    `init_worker` once, and when `settings.device` is a GPU each page task asks for the Dask
    resource GPU=1 (start GPU workers with `dask worker ... --resources GPU=1`).
    """
    if not cluster:
        warm = (settings.model_dump(), models.to_dict()) if models is not None else None
        return ProcessPoolTaskRunner(
            max_workers=workers, initializer=init_worker, initargs=(settings.threads_per_worker, os.getpid(), warm)
        )
    import dask
    from prefect_dask import DaskTaskRunner

    threads = settings.threads_per_worker
    gpu = settings.device.startswith("cuda")

    class ClusterRunner(DaskTaskRunner):
        def __enter__(self):
            super().__enter__()
            self.client.run(init_worker, threads)  # connects now: an unreachable cluster fails here, clearly
            return self

        def submit(self, task, parameters, wait_for=None, dependencies=None):
            with dask.annotate(resources={"GPU": 1}) if gpu else contextlib.nullcontext():
                return super().submit(task, parameters, wait_for, dependencies)

    return ClusterRunner(address=cluster)


# The local pool `prestart` started for the flow's first pool: (what it was made for, the entered runner).
_prestarted: list[tuple[tuple[int, str, dict], ProcessPoolTaskRunner]] = []
# The plan `prestart` made, for the flow of the same sources, output and settings: (that key, the plan).
_planned: list[tuple[tuple[str, str, str], collection.Plan]] = []


def _plan_key(sources: list[str], output: str, cfg: RunSettings) -> tuple[str, str, str]:
    return "\0".join(sources), str(output), cfg.model_dump_json()


def _plan(sources: list[str], output: str, cfg: RunSettings) -> collection.Plan:
    """The run's plan: the one `prestart` made moments ago for the same run (planning a large collection
    twice would walk and, with --force, hash every file twice), else a new one."""
    if _planned and _planned[0][0] == _plan_key(sources, output, cfg):
        return _planned.pop()[1]
    _planned.clear()
    return collection.plan(sources, output, cfg, lambda what, done, total: _emit("planning", (what, done, total)))


def _ready() -> int:
    """A no-op a prestarted worker runs once its initializer (model loads) is done."""
    return os.getpid()


def _pool_key(workers: int, settings: RunSettings, models: pipeline.Models) -> tuple[int, str, dict]:
    return workers, settings.model_dump_json(), models.to_dict()


def prestart(sources: list[str], output: str, settings: dict | None = None, cluster: str | None = None) -> int:
    """Start the local worker pool of a coming `enrich_collection` run now; returns its worker count.

    The command calls it before the Prefect API is up: the workers spawn and import torch and
    Kraken and load their models (init_worker) while the API starts and the flow plans, and the
    flow's first pool is this one (`_pool`) when the run it plans needs the same pool. It plans the
    run to know how many workers the pending pages need (none: no pool) and hands that plan to the
    flow of the same run (`_plan`). Best effort: on any error, or with `cluster`, it starts
    nothing and the flow meets (and reports) the error as without it. Call `release` at the end.
    """
    release()
    if cluster:
        return 0
    cfg = RunSettings(**(settings or {}))
    try:
        plan = _plan(sources, output, cfg)
    except (HTRError, OSError):
        return 0
    _planned.append((_plan_key(sources, output, cfg), plan))
    workers = _workers_for(cfg, plan)
    if not plan.pending:
        return 0
    runner = make_runner(workers, cfg, None, plan.models)
    runner.__enter__()
    try:
        executor = runner._executor  # Prefect 3.9 (pinned): its process pool spawns one worker per submit
        assert executor is not None
        for _ in range(workers):
            executor.submit(_ready)
    except BaseException:
        runner.__exit__(None, None, None)
        raise
    _prestarted.append((_pool_key(workers, cfg, plan.models), runner))
    return workers


def release() -> None:
    """Shut down the pool `prestart` started if no flow took it (nothing to do, an error); forget its plan."""
    _planned.clear()
    while _prestarted:
        _, runner = _prestarted.pop()
        runner.__exit__(None, None, None)


@contextlib.contextmanager
def _pool(workers: int, settings: RunSettings, models: pipeline.Models, cluster: str | None) -> Iterator[Any]:
    """The entered task runner for one pool: the prestarted one when it was made for this, else a new one."""
    if not cluster and _prestarted and _prestarted[0][0] == _pool_key(workers, settings, models):
        _, runner = _prestarted.pop()
        with contextlib.ExitStack() as stack:
            stack.push(runner)  # exits it (shuts the workers down) like the `with` below
            yield runner
        return
    release()
    with make_runner(workers, settings, cluster, models) as runner:
        yield runner


def _workers_for(cfg: RunSettings, plan: collection.Plan) -> int:
    """Worker processes for a plan: as asked (or what the machine allows), never more than pages to do."""
    workers = cfg.workers or default_workers()
    return max(1, min(workers, len(plan.pending) or 1))


def _run_pool(
    refs: list[PageRef],
    workers: int,
    plan: collection.Plan,
    settings: RunSettings,
    budget: collection.Budget,
    cluster: str | None = None,
) -> tuple[list[PageRef], list[PageRef]]:
    """Run pages in one pool, a few in flight at a time, until done, the pool breaks or `budget` stops.

    Each result is emitted and counted as it comes. Returns (pages never started, pages running
    when the pool broke).
    """
    out = Path(plan.output)
    queue = deque(refs)
    inflight: dict[Any, PageRef] = {}  # future (Prefect or Dask) -> its page
    lost: list[PageRef] = []
    window = max(2 * workers, 256) if cluster else 2 * workers  # keeps every worker busy, nothing more
    params = {"output": plan.output, "settings": settings.model_dump(), "models": plan.models.to_dict()}
    with _pool(workers, settings, plan.models, cluster) as runner:
        while queue or inflight:
            while queue and len(inflight) < window and not budget.stopped and not lost:
                ref = queue.popleft()
                inflight[runner.submit(enrich_page, {"ref": ref.to_dict(), "key": plan.keys[ref.id], **params})] = ref
            if not inflight:
                break
            fut = next(as_completed(list(inflight)))
            ref = inflight.pop(fut)
            try:
                res = PageResult.from_dict(fut.result())
            except Exception as exc:  # BrokenProcessPool, crashed task: sorted out below
                if type(exc).__name__ != "KilledWorker":
                    lost.append(ref)  # the pool is broken: submit nothing more to it
                    continue
                state.running_path(out, ref.id).unlink(missing_ok=True)  # Dask already retried it elsewhere
                res = collection.worker_died(
                    ref,
                    plan.keys[ref.id],
                    out,
                    "Dask worker died while processing this page, on every worker that tried it "
                    "(killed, or out of memory?; distributed.scheduler.allowed-failures)",
                )
            _record(res, budget)
    suspects = [r for r in lost if state.running_path(out, r.id).exists()]
    return [r for r in lost if r not in suspects] + list(queue), suspects


def _record(res: PageResult, budget: collection.Budget) -> None:
    budget.add(res)
    _emit("page", res)


@flow(name="enrich-collection", log_prints=True)
def enrich_collection(
    sources: list[str], output: str, settings: dict | None = None, cluster: str | None = None
) -> dict:
    """Enrich every page under `sources` into `output` (ALTO, text, run.json, report.html).

    `cluster`: address of an existing Dask scheduler ("tcp://HOST:8786") to run the page tasks on,
    instead of local worker processes. Ends Failed (RunFailed, with the summary) when more pages
    failed than `max_failures` allows, or when the run stopped taking pages (disk full).
    """
    t0 = time.perf_counter()
    cfg = RunSettings(**(settings or {}))
    with runlock.exclusive(output):
        preflight.check(output, cfg)  # the same one-line checks as `htr enrich`, for deployments
        summary = _enrich(sources, output, cfg, cluster, t0)
    if summary["status"] != "completed":
        why = summary.get("stopped") or (
            f"{summary['failed']} of {summary['pages']} pages failed "
            f"({summary['failure_ratio']:.1%}), above max_failures {cfg.max_failures:.1%}"
        )
        # a flow that returns a State ends in it: callers get RunFailed raised, never this object
        return Failed(message=why, data=RunFailed(why, summary, path=str(Path(output) / "run.json")))  # type: ignore[return-value]
    return summary


def _enrich(sources: list[str], output: str, cfg: RunSettings, cluster: str | None, t0: float) -> dict:
    published = artifacts.RunArtifacts(output, cluster)  # progress, failed pages, summary (flows/artifacts.py)
    add_listener(published)
    try:
        summary = _plan_and_process(sources, output, cfg, cluster, t0)
    finally:
        remove_listener(published)
    published.finish(summary)
    return summary


def _plan_and_process(sources: list[str], output: str, cfg: RunSettings, cluster: str | None, t0: float) -> dict:
    plan = _plan(sources, output, cfg)
    workers = _workers_for(cfg, plan)
    warning = None if cluster else preflight.space_warning(output, len(plan.pending), workers)
    if warning:
        get_run_logger().info(warning)  # the command prints it itself (listener): no double line
        _emit("warning", warning)
    budget = collection.Budget(len(plan.refs), len(plan.pending), cfg.max_failures)
    record = RunRecord(plan, cfg)  # run.json as the run goes
    indexer = collection.Indexer(output)  # OUT/index.sqlite, repaired first, then page by page

    def disk_watch(kind: str, payload: object) -> None:  # the run's own writes can find the disk full too
        if record.disk_full or indexer.disk_full:
            detail = (record.errors + indexer.errors or ["no space left on device"])[-1]
            budget.stop(f"the output disk is full ({detail})", "disk-full")

    listeners = (record.listen, indexer.listen, disk_watch)
    for fn in listeners:
        add_listener(fn)
    _emit("plan", plan)
    try:
        _process(plan, workers, cfg, budget, cluster)
    finally:
        for fn in listeners:
            remove_listener(fn)
        indexer.close()
    disk_watch("end", None)
    too_many = bool(plan.refs) and budget.failed / len(plan.refs) > cfg.max_failures
    status = "stopped" if budget.stopped else "failed" if too_many else "completed"
    return record.finish(status, budget.reason, time.perf_counter() - t0, budget.fault)


def _process(
    plan: collection.Plan, workers: int, cfg: RunSettings, budget: collection.Budget, cluster: str | None
) -> None:
    """Every pending page through the pools; a page that kills its worker alone is recorded as failed."""
    out = Path(plan.output)
    queue = list(plan.pending)
    while queue and not budget.stopped:
        before = budget.processed
        queue, suspects = _run_pool(queue, workers, plan, cfg, budget, cluster)
        if budget.stopped:
            break
        if budget.processed == before and not suspects and queue:  # the pool cannot even start
            for ref in queue:
                _record(collection.worker_died(ref, plan.keys[ref.id], out, "worker processes could not start"), budget)
            break
        for ref in suspects:  # one at a time: a page that kills its worker alone is the culprit
            if budget.stopped:
                break
            before = budget.processed
            unstarted, again = _run_pool([ref], 1, plan, cfg, budget, cluster)
            if budget.processed == before and (again or unstarted):
                _record(
                    collection.worker_died(
                        ref,
                        plan.keys[ref.id],
                        out,
                        "worker process died while processing this page (killed, or out of memory?)",
                    ),
                    budget,
                )
