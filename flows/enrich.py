"""Prefect flow `enrich-collection`: pages in worker processes, one task per page.

Thin by design: planning, page processing and reporting live in `htr`.
A worker process that dies (OOM killer, segfault) breaks the process pool;
the pages it was running are retried one at a time in a fresh pool, and a
page that kills its worker again is recorded as failed. The rest go on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from prefect import flow, task
from prefect.futures import as_completed
from prefect.task_runners import ProcessPoolTaskRunner

from flows import artifacts
from htr import collection, pipeline, state
from htr.config import RunSettings, default_workers
from htr.types import PageRef, PageResult

Listener = Callable[[str, object], None]
_listeners: list[Listener] = []


def add_listener(fn: Listener) -> None:
    """Receive ("plan", Plan) once, then ("page", PageResult) per finished page (main process only)."""
    _listeners.append(fn)


def remove_listener(fn: Listener) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def _emit(kind: str, payload: object) -> None:
    for fn in list(_listeners):
        fn(kind, payload)


def init_worker(threads: int) -> None:
    """Run once per worker process: bound torch/BLAS threads so workers do not fight for cores."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


@task(name="enrich-page", task_run_name="page {ref[id]}")
def enrich_page(ref: dict, output: str, settings: dict, models: dict, key: str) -> dict:
    """One page through every stage (worker process; models load once per process)."""
    result = pipeline.process_page(
        PageRef.from_dict(ref), Path(output), RunSettings(**settings), pipeline.Models.from_dict(models), key
    )
    return result.to_dict()


def make_runner(workers: int, settings: RunSettings, cluster: str | None = None):
    """The task runner for page tasks (models load once per worker process and stay loaded).

    Without `cluster`: `workers` local worker processes. With `cluster` ("tcp://HOST:8786"):
    the page tasks run on that existing Dask cluster (prefect-dask); every worker gets
    `init_worker` once, and when `settings.device` is a GPU each page task asks for the Dask
    resource GPU=1 (start GPU workers with `dask worker ... --resources GPU=1`).
    """
    if not cluster:
        return ProcessPoolTaskRunner(max_workers=workers, initializer=init_worker, initargs=(settings.threads_per_worker,))
    import contextlib

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


def _run_pool(
    refs: list[PageRef], workers: int, plan: collection.Plan, settings: RunSettings, cluster: str | None = None
) -> tuple[list[PageResult], list[PageRef], list[PageRef]]:
    """Run pages in one pool; returns (results, pages never started, pages running when the pool broke)."""
    out = Path(plan.output)
    results: list[PageResult] = []
    lost: list[PageRef] = []
    params = {"output": plan.output, "settings": settings.model_dump(), "models": plan.models.to_dict()}
    with make_runner(workers, settings, cluster) as runner:
        futures = {runner.submit(enrich_page, {"ref": r.to_dict(), "key": plan.keys[r.id], **params}): r for r in refs}
        for fut in as_completed(list(futures)):
            ref = futures[fut]
            try:
                res = PageResult.from_dict(fut.result())
            except Exception as exc:  # BrokenProcessPool, crashed task: sorted out below
                if type(exc).__name__ == "KilledWorker":  # Dask already retried it on other workers
                    state.running_path(out, ref.id).unlink(missing_ok=True)
                    res = collection.worker_died(
                        ref, plan.keys[ref.id], out,
                        "Dask worker died while processing this page, on every worker that tried it "
                        "(killed, or out of memory?; distributed.scheduler.allowed-failures)",
                    )
                    results.append(res)
                    _emit("page", res)
                    continue
                lost.append(ref)
                continue
            results.append(res)
            _emit("page", res)
    suspects = [r for r in lost if state.running_path(out, r.id).exists()]
    unstarted = [r for r in lost if r not in suspects]
    return results, unstarted, suspects


@flow(name="enrich-collection", log_prints=True)
def enrich_collection(sources: list[str], output: str, settings: dict | None = None, cluster: str | None = None) -> dict:
    """Enrich every page under `sources` into `output` (ALTO, text, run.json, report.html).

    `cluster`: address of an existing Dask scheduler ("tcp://HOST:8786") to run the page tasks on,
    instead of local worker processes.
    """
    t0 = time.perf_counter()
    cfg = RunSettings(**(settings or {}))
    published = artifacts.RunArtifacts(output, cluster)  # progress, failed pages, summary (flows/artifacts.py)
    add_listener(published)
    plan = collection.plan(sources, output, cfg)
    indexer = collection.Indexer(output)  # OUT/index.sqlite, repaired first, then page by page
    add_listener(indexer.listen)
    _emit("plan", plan)
    workers = cfg.workers or default_workers()
    workers = max(1, min(workers, len(plan.pending) or 1))
    results: list[PageResult] = []
    queue = list(plan.pending)
    while queue:
        before = len(queue)
        done, queue, suspects = _run_pool(queue, workers, plan, cfg, cluster)
        results += done
        if not done and not suspects and len(queue) == before:  # the pool cannot even start
            for ref in queue:
                res = collection.worker_died(ref, plan.keys[ref.id], Path(output), "worker processes could not start")
                results.append(res)
                _emit("page", res)
            break
        for ref in suspects:  # one at a time: a page that kills its worker alone is the culprit
            solo, unstarted, again = _run_pool([ref], 1, plan, cfg, cluster)
            results += solo
            if again or unstarted:
                res = collection.worker_died(
                    ref, plan.keys[ref.id], Path(output),
                    "worker process died while processing this page (killed, or out of memory?)",
                )
                results.append(res)
                _emit("page", res)
    remove_listener(indexer.listen)
    indexer.close()
    summary = collection.finish(plan, results, cfg, time.perf_counter() - t0)
    remove_listener(published)
    published.finish(summary)
    return summary
