"""Scale-out benchmark: pages/hour on 1 and 2 Dask workers, and a real server's overhead per page.

1. Dask: a `dask scheduler` and N `dask worker` processes (1 thread each) on 127.0.0.1; the same
   real pages enriched through `enrich_collection(..., cluster=ADDRESS)` with N = 1 and N = 2.
   Each cluster first reads one page per worker (models load once per worker process and stay
   loaded), then the measured run starts: warm workers, as in a long-running cluster.
2. Server overhead: page-sized tasks cost ~20 s, so the orchestration cost per page is measured
   with no-op page tasks (the same ProcessPoolTaskRunner and as_completed path as enrich_collection)
   against (a) the ephemeral API (SQLite, what `htr enrich` uses) and (b) `prefect server start`
   on PostgreSQL; then the same real pages through enrich_collection on both.

Merges its results under "scaleout" into bench/results.json (other keys kept).

    .venv/bin/python bench/bench_scaleout.py [--pages N] [--noop-tasks N] [--skip-server]

Run it on an otherwise idle machine: anything else using the cores distorts the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

GT = Path(os.environ.get("HTR_SHARED", ROOT.parent / "shared")) / "gt"
PAGES = [  # small real pages (~1000 x 1500) of ../shared/gt (CC BY 4.0)
    "cremma-mss-19/lettre-soeur-marie/01R_P1S3SS2P118_001.jpg",
    "cremma-mss-19/lettre-soeur-marie/01R_P1S3SS2P118_002.jpg",
    "cremma-mss-19/lettre-soeur-marie/01R_P1S3SS2P118_003.jpg",
    "cremma-mss-19/lettre-boudreau-tessier/01R_P1S3SS1P019_001.jpg",
    "cremma-mss-19/lettre-boudreau-tessier/01R_P1S3SS1P019_002.jpg",
    "cremma-mss-19/lettre-boudreau-tessier/01R_P1S3SS1P019_003.jpg",
    "cremma-mss-19/lettre-boudreau-tessier/01R_P1S3SS1P019_004.jpg",
    "cremma-mss-19/lettre-boudreau-tessier/01R_P1S3SS1P019_005.jpg",
]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    """Processes started here, stopped by PID (whole process group) in reverse order."""

    def __init__(self, logdir: Path):
        self.logdir, self.procs, self.logs = logdir, [], []

    def start(self, cmd: list[str], name: str, sig: int = signal.SIGTERM, **kw) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "wb")
        self.logs.append(log)
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kw)
        self.procs.append((p, sig))
        return p

    def stop(self) -> None:
        for p, sig in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(sig)
        for p, _ in reversed(self.procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for log in self.logs:
            log.close()
        self.procs, self.logs = [], []


def copy_pages(dst: Path, rels: list[str]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for rel in rels:
        shutil.copy(GT / rel, dst / f"{Path(rel).parent.name}_{Path(rel).name}")
    return dst


# --------------------------------------------------------------------------- Dask


def dask_run(n_workers: int, pages: list[str], work: Path, settings: dict, api: str) -> dict:
    from distributed import Client

    from flows.enrich import enrich_collection

    procs = Procs(work)
    env = {
        **os.environ,
        "PREFECT_API_URL": api,
        "OMP_NUM_THREADS": "1",
        "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
    }
    sched = work / f"scheduler-{n_workers}.json"
    try:
        procs.start(
            [
                str(BIN / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched),
            ],
            f"scheduler-{n_workers}",
            env=env,
            cwd=ROOT,
        )
        deadline = time.time() + 60
        while not sched.exists() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(sched.read_text())["address"]
        for i in range(n_workers):
            procs.start(
                [
                    str(BIN / "dask"),
                    "worker",
                    address,
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                    "--memory-limit",
                    "0",
                    "--name",
                    f"w{i}",
                ],
                f"worker-{n_workers}-{i}",
                env=env,
                cwd=ROOT,
            )
        with Client(address, timeout=30) as c:
            c.wait_for_workers(n_workers, timeout=120)
        # warm-up: one page per worker, so that every worker has its models loaded
        warm = copy_pages(work / f"warm-{n_workers}", pages[:n_workers])
        enrich_collection([str(warm)], str(work / f"warm-out-{n_workers}"), settings, cluster=address)
        src = copy_pages(work / f"src-{n_workers}", pages)
        t0 = time.perf_counter()
        summary = enrich_collection([str(src)], str(work / f"out-{n_workers}"), settings, cluster=address)
        wall = time.perf_counter() - t0
        run = json.loads((work / f"out-{n_workers}" / "run.json").read_text())
        workers = sorted({p["worker"] for p in run["pages"]})
        return {
            "workers": n_workers,
            "pages": summary["done"],
            "failed": summary["failed"],
            "wall_s": round(wall, 1),
            "pages_per_hour": round(3600 * summary["done"] / wall, 1),
            "worker_seconds_per_page": summary["worker_seconds_per_page"],
            "pages_per_worker": {w: sum(1 for p in run["pages"] if p["worker"] == w) for w in workers},
        }
    finally:
        procs.stop()


# --------------------------------------------------------------------------- server vs ephemeral


def noop_page(i: int) -> int:
    return i


def _probe_flow():
    from prefect import flow, task
    from prefect.futures import as_completed

    from flows.enrich import make_runner
    from htr.config import RunSettings

    noop = task(noop_page, name="noop-page")

    @flow(name="overhead-probe")
    def probe(n: int) -> float:
        with make_runner(2, RunSettings()) as runner:
            warm = [runner.submit(noop, {"i": i}) for i in range(4)]  # start the worker processes first
            for f in as_completed(warm):
                f.result()
            t0 = time.perf_counter()
            futs = [runner.submit(noop, {"i": i}) for i in range(n)]
            for f in as_completed(futs):
                f.result()
            return time.perf_counter() - t0

    return probe


def noop_overhead(n: int) -> dict:
    """Seconds per page task with a no-op body, through the same runner and loop as enrich_collection."""
    wall = _probe_flow()(n)
    return {"tasks": n, "wall_s": round(wall, 2), "ms_per_task": round(1000 * wall / n, 1)}


def pg_bin() -> Path | None:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").exists():
            return d
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def start_pg_server(procs: Procs, work: Path) -> str:
    """PostgreSQL in a temp dir + `prefect server start` on it; returns the API URL."""
    pg = pg_bin()
    if pg is None:
        raise RuntimeError("PostgreSQL binaries missing (apt-get install postgresql)")
    pgdir = Path(tempfile.mkdtemp(prefix="htr-bench-pg-"))
    user = {}
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(pgdir, pw.pw_uid, pw.pw_gid)
        user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    port, api_port = free_port(), free_port()
    subprocess.run(
        [str(pg / "initdb"), "-D", str(pgdir / "data"), "-U", "prefect", "--auth=trust", "--no-sync"],
        check=True,
        capture_output=True,
        cwd=pgdir,
        **user,
    )
    procs.start(
        [
            str(pg / "postgres"),
            "-D",
            str(pgdir / "data"),
            "-p",
            str(port),
            "-k",
            str(pgdir),
            "-c",
            "listen_addresses=127.0.0.1",
        ],
        "postgres",
        sig=signal.SIGINT,
        cwd=pgdir,
        **user,
    )
    deadline = time.time() + 60
    while subprocess.run([str(pg / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode:
        if time.time() > deadline:
            raise RuntimeError("postgres did not start")
        time.sleep(0.3)
    subprocess.run([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "prefect", "prefect"], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(
        {
            "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://prefect@127.0.0.1:{port}/prefect",
            "PREFECT_HOME": str(work / "server-home"),
        }
    )
    t0 = time.time()
    proc = procs.start(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(api_port), "--no-ui"],
        "prefect-server",
        env=env,
    )
    api = f"http://127.0.0.1:{api_port}/api"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited: see {work / 'prefect-server.log'}")
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2):
                break
        except OSError:
            if time.time() - t0 > 180:
                raise
            time.sleep(0.5)
    print(f"  PostgreSQL-backed server healthy after {time.time() - t0:.1f} s", flush=True)
    return api


def enrich_on(pages: list[str], work: Path, name: str, settings: dict, noop_tasks: int) -> dict:
    """Real pages through enrich_collection (2 local worker processes), then the no-op probe, on this API."""
    from flows.enrich import enrich_collection

    src = copy_pages(work / f"src-{name}", pages)
    t0 = time.perf_counter()
    s = enrich_collection([str(src)], str(work / f"out-{name}"), {**settings, "workers": 2})
    wall = time.perf_counter() - t0
    return {
        "pages": s["done"],
        "wall_s": round(wall, 1),
        "pages_per_hour": round(3600 * s["done"] / wall, 1),
        "worker_seconds_per_page": s["worker_seconds_per_page"],
        "noop": noop_overhead(noop_tasks),
    }


# --------------------------------------------------------------------------- main


def part(name: str, work: Path, pages: list[str], settings: dict, noop_tasks: int) -> dict:
    """One measurement, in this (fresh) process: `dask` (1 then 2 workers) or `api` (the configured API)."""
    from flows.runtime import prefect_api

    with prefect_api() as api:  # PREFECT_API_URL from the environment, or an ephemeral server
        if name == "dask":
            return {f"{n}_workers": dask_run(n, pages, work, settings, api) for n in (1, 2)}
        return enrich_on(pages, work, Path(api).parent.name.replace(":", "-"), settings, noop_tasks)


def run_part(name: str, work: Path, api: str | None = None) -> dict:
    """Each measurement in its own process, PREFECT_API_URL set (or not) before Prefect is imported:
    a Prefect imported earlier may keep background clients on another API."""
    out = work / f"part-{name}-{int(time.time())}.json"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    if api:
        env["PREFECT_API_URL"] = api
    cmd = [
        sys.executable,
        __file__,
        "--part",
        name,
        "--part-out",
        str(out),
        "--work",
        str(work),
        "--pages",
        str(args.pages),
        "--noop-tasks",
        str(args.noop_tasks),
        "--model",
        args.model,
    ]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return json.loads(out.read_text())


def main() -> int:
    from htr.models import resolve

    model = resolve(args.model)
    pages = PAGES[: args.pages]
    missing = [p for p in pages if not (GT / p).is_file()]
    if missing:
        raise SystemExit(f"missing pages under {GT}: {missing}")
    if args.part:
        settings = {"recognize": {"model": model.path}, "threads_per_worker": 1}
        Path(args.part_out).write_text(json.dumps(part(args.part, Path(args.work), pages, settings, args.noop_tasks)))
        return 0

    work = Path(tempfile.mkdtemp(prefix="htr-bench-scaleout-"))
    os.environ["PREFECT_HOME"] = str(work / "prefect-home")
    results: dict = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "pages": pages,
        "model": {"name": model.name, "sha256": model.sha256},
        "load_average_at_start": os.getloadavg(),
    }
    try:
        print("Dask: 1 then 2 workers...", flush=True)
        results["dask"] = d = run_part("dask", work)
        d["speedup_2_vs_1"] = round(d["2_workers"]["pages_per_hour"] / d["1_workers"]["pages_per_hour"], 2)
        d["goal"] = ">= 1.7x with 2 workers on 2 cores"
        print(f"  {d}", flush=True)
        if not args.skip_server:
            print("ephemeral API (SQLite): real pages + no-op tasks...", flush=True)
            results["ephemeral_api"] = run_part("api", work)
            print(f"  {results['ephemeral_api']}", flush=True)
            procs = Procs(work)
            try:
                api = start_pg_server(procs, work)
                print("PostgreSQL-backed server: real pages + no-op tasks...", flush=True)
                results["postgres_server"] = run_part("api", work, api)
                print(f"  {results['postgres_server']}", flush=True)
            finally:
                procs.stop()
            e, s = results["ephemeral_api"], results["postgres_server"]
            results["server_overhead_ms_per_page"] = round(s["noop"]["ms_per_task"] - e["noop"]["ms_per_task"], 1)
            results["server_vs_ephemeral_wall_ratio"] = round(s["wall_s"] / e["wall_s"], 3)
    finally:
        results["load_average_at_end"] = os.getloadavg()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    path = Path(args.results)
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc["scaleout"] = results
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=6, help="real pages per run (default 6, at most 8)")
    ap.add_argument("--noop-tasks", type=int, default=100, help="no-op page tasks for the overhead probe")
    ap.add_argument("--model", default="default")
    ap.add_argument("--skip-server", action="store_true", help="Dask part only")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, outputs)")
    ap.add_argument("--results", default=str(ROOT / "bench" / "results.json"), help="JSON file to merge into")
    ap.add_argument("--part", choices=["dask", "api"], help=argparse.SUPPRESS)  # internal: one measurement
    ap.add_argument("--part-out", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.exit(main())
