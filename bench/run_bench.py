"""`make bench`: htr enrich vs plain `kraken` on the same pages, same model, same run.

Writes bench/results.json: pages/hour, CPU-seconds per page, peak RSS per
process, time to first page, for both, and their ratios. Absolute numbers
are noisy on shared machines; quote the ratios.

    .venv/bin/python bench/run_bench.py [--pages N] [--workers W] [--source DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PAGES = [  # real pages, three datasets; ../shared/gt (CC BY 4.0)
    "cremma-mss-19/lettre-soeur-marie/01R_P1S3SS2P118_001.jpg",
    "cremma-mss-19/manuscrit-sand-fadette/f225.jpeg",
    "tapuscorpus/12148-btv1b10581912k/20_21abf_default.jpg",
    "tapuscorpus/12148-btv1b10583038c/28_59627_default.jpg",
    "lectaurep-repertoires/lectaurep-dufour-1/DAFANCH96_048MIC07645_L-0.jpg",
    "lectaurep-repertoires/lectaurep-riant-4/DAFANCH96_048MIC06481_L-0.jpg",
]


class TreeSampler(threading.Thread):
    """Samples RSS of a process and all its descendants; keeps the peak of each process and of the sum."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_per_process: dict[int, tuple[str, int]] = {}
        self.peak_total = 0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    name = " ".join(p.cmdline()[:3])[-60:]
                except psutil.Error:
                    continue
                total += rss
                if rss > self.peak_per_process.get(p.pid, ("", 0))[1]:
                    self.peak_per_process[p.pid] = (name, rss)
            self.peak_total = max(self.peak_total, total)
            time.sleep(self.interval)


def measure(cmd: list[str], first_output: Path, pattern: str, env: dict | None = None) -> dict:
    """Run `cmd`, sampling memory; CPU from rusage of waited-for children (workers included)."""
    before = os.times()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    first = None
    while proc.poll() is None:
        if first is None and first_output.exists() and any(first_output.glob(pattern)):
            first = time.perf_counter() - t0
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    after = os.times()
    stderr = proc.stderr.read()
    if first is None and any(first_output.glob(pattern)):
        first = wall
    return {
        "returncode": proc.returncode,
        "wall_s": round(wall, 2),
        "cpu_s": round(
            (after.children_user - before.children_user) + (after.children_system - before.children_system), 2
        ),
        "time_to_first_page_s": round(first, 2) if first is not None else None,
        "peak_rss_mb_per_process": sorted(
            ({"process": n, "peak_rss_mb": round(r / 2**20)} for n, r in sampler.peak_per_process.values()),
            key=lambda d: -d["peak_rss_mb"],
        )[:8],
        "peak_rss_mb_total": round(sampler.peak_total / 2**20),
        "stderr_tail": stderr[-1500:] if proc.returncode else "",
    }


def rates(m: dict, pages: int) -> dict:
    m["pages"] = pages
    m["pages_per_hour"] = round(3600 * pages / m["wall_s"], 1)
    m["cpu_s_per_page"] = round(m["cpu_s"] / pages, 2)
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pages", type=int, default=len(DEFAULT_PAGES))
    ap.add_argument("--workers", type=int, default=0, help="htr workers (0: htr's default)")
    ap.add_argument("--gt", default=str(ROOT.parent / "shared" / "gt"))
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = ap.parse_args()

    from htr.models import resolve

    gt = Path(args.gt)
    if not gt.is_dir():
        print(f"bench: ground truth missing at {gt}", file=sys.stderr)
        return 2
    model = resolve(args.model)
    work = Path(tempfile.mkdtemp(prefix="htr-bench-"))
    pages = work / "pages"
    pages.mkdir()
    for rel in DEFAULT_PAGES[: args.pages]:
        shutil.copy(gt / rel, pages / Path(rel).name.replace(".jpeg", ".jpg"))
    n = len(list(pages.iterdir()))
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    bin_dir = Path(sys.executable).parent

    # plain kraken: one process, pages one after another, same segmentation default and recognition model
    kout = work / "kraken"
    kout.mkdir()
    kcmd = [str(bin_dir / "kraken"), "-a", "--device", "cpu"]
    for p in sorted(pages.iterdir()):
        kcmd += ["-i", str(p), str(kout / (p.stem + ".xml"))]
    kcmd += ["segment", "-bl", "ocr", "-m", model.path]
    kraken = rates(measure(kcmd, kout, "*.xml", env), n)

    hcmd = [str(bin_dir / "htr"), "enrich", str(pages), "-o", str(work / "htr"), "-q", "--model", args.model]
    if args.workers:
        hcmd += ["--workers", str(args.workers)]
    htr = rates(measure(hcmd, work / "htr" / "alto", "*.xml", env), n)
    rerun = measure(hcmd, work / "htr" / "alto", "*.xml", env)

    from htr.config import default_workers

    results = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
        },
        "pages": [Path(r).as_posix() for r in DEFAULT_PAGES[: args.pages]],
        "model": {"name": model.name, "sha256": model.sha256},
        "htr_workers": args.workers or default_workers(),
        "kraken_cli": kraken,
        "htr_enrich": htr,
        "htr_enrich_rerun_all_skipped": {"wall_s": rerun["wall_s"], "cpu_s": rerun["cpu_s"]},
        "ratios_htr_over_kraken": {
            "pages_per_hour": round(htr["pages_per_hour"] / kraken["pages_per_hour"], 2),
            "cpu_s_per_page": round(htr["cpu_s_per_page"] / kraken["cpu_s_per_page"], 2),
            "time_to_first_page": round(htr["time_to_first_page_s"] / kraken["time_to_first_page_s"], 2)
            if htr["time_to_first_page_s"] and kraken["time_to_first_page_s"]
            else None,
            "peak_rss_total": round(htr["peak_rss_mb_total"] / max(1, kraken["peak_rss_mb_total"]), 2),
        },
    }
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.is_file() else {}
    old["enrich"] = results
    out.write_text(json.dumps(old, indent=1) + "\n")
    print(json.dumps(results["ratios_htr_over_kraken"], indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if htr["returncode"] in (0, 1) and kraken["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
