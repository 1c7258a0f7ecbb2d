"""`make bench`: plain `kraken` vs `htr enrich` (Kraken's path, the fast path, 1 vs 2 workers), speed and quality.

One run, the same real pages (../shared/gt) and the same recognition model (models/default) for every config:

1. kraken_cli  plain `kraken -a -i PAGE OUT.xml ... segment -bl ocr -m MODEL` (one process, ALTO out);
2. htr_kraken  `htr enrich --preprocess none --workers 2 --seg-engine kraken` (Kraken's path: its own
               segmentation post-processing; htr's defaults otherwise, entities included);
3. htr_fast    `htr enrich --preprocess none --workers 2` (the default engine, htr.fastseg) plus `--fast-args`
               (default none; e.g. "--seg-height auto");
4. htr_fast_1w config 3 with 1 worker (`--scaling`, the default; `--no-scaling` skips it).

Per config: pages/hour, CPU-seconds per page (rusage of the waited-for children), peak RSS in total and per
process (sampled), time to first page (first ALTO file appearing), wall; and quality of every output ALTO
against its GT page with `htr.evaluate.evaluate_predictions` (pages pair by image file name): line recall at
IoU >= 0.5, CER (missed and extra lines included), CER of the matched lines only. Then ratios to plain kraken
and quality deltas (points) of each htr config vs kraken and of the fast path vs htr's Kraken path.
Writes the "enrich" entry of bench/results.json and prints a table. Absolute timings are noisy on shared
machines: quote the ratios.

    PYTHONPATH=$PWD .venv/bin/python bench/run_bench.py [--pages N] [--fast-args "..."] [--no-scaling]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
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

# Real pages of ../shared/gt (CC BY 4.0), fixed so every run measures the same thing. Every dataset is in;
# the first 3 cover 3 datasets (for --pages 3), the first 4 all four. They include the GT's image quirks:
# .jpeg names (cremma), PNG data in a .jpg (riant), XML in alto/ beside page/ (bronod), a typed catalogue.
# Each image name is unique in the GT, so the copies keep their names and pair with their GT by name.
DEFAULT_PAGES = [
    "cremma-mss-19/lettre-soeur-marie/01R_P1S3SS2P118_001.jpg",
    "tapuscorpus/12148-btv1b10581912k/20_21abf_default.jpg",
    "lectaurep-repertoires/lectaurep-dufour-1/DAFANCH96_048MIC07645_L-0.jpg",
    "lectaurep-bronod/bronod1/0010.jpg",
    "cremma-mss-19/manuscrit-sand-fadette/f225.jpeg",
    "tapuscorpus/12148-btv1b10583038c/28_59627_default.jpg",
    "lectaurep-repertoires/lectaurep-riant-4/DAFANCH96_048MIC06481_L-0.jpg",
    "cremma-mss-19/poemes-louise-trudelle/01R_P1S8P1_003.jpg",
    "tapuscorpus/12148-btv1b53097347b/0_f546b_default.jpg",
    "cremma-mss-19/lettres-veuillot/f14.jpeg",
    "tapuscorpus/20130043_87-1962-catalogue-dactylographié-des-enregistrements/FRAN_0011_11082_L-medium.jpg",
    "cremma-mss-19/administratif-procès-louise-michel/img15.jpg",
]
WORKERS = 2
DEFAULT_FAST_ARGS = ""


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


# --------------------------------------------------------------------------- set-up


def gt_xml_for(image: Path) -> Path:
    """The GT ALTO of a page image: beside it, or in alto/ below its folder (lectaurep-bronod)."""
    for xml in (image.with_suffix(".xml"), image.parent / "alto" / (image.stem + ".xml")):
        if xml.is_file():
            return xml
    raise FileNotFoundError(f"no GT ALTO for {image}")


def copy_pages(gt: Path, rels: list[str], dest: Path) -> list[Path]:
    """Copy the page images under their own names (the evaluator pairs by name); their GT ALTO paths."""
    dest.mkdir(parents=True)
    names = [Path(r).name for r in rels]
    if len(set(names)) != len(names):
        raise SystemExit("bench: DEFAULT_PAGES holds two images of the same name; they would not pair with their GT")
    gt_paths = []
    for rel in rels:
        shutil.copy(gt / rel, dest / Path(rel).name)
        gt_paths.append(gt_xml_for(gt / rel))
    return gt_paths


def bench_env(work: Path) -> dict[str, str]:
    """This worktree's code for `htr` (PYTHONPATH), a private Prefect home, no analytics, no remote API."""
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.pop("PREFECT_API_URL", None)
    return env


def check_fast_args(htr: Path, fast_args: list[str], env: dict[str, str]) -> str | None:
    """Why `htr enrich` cannot take the fast-path options (None when every --option is in its help)."""
    helptext = subprocess.run(
        [str(htr), "enrich", "--help"], env=env, capture_output=True, text=True, cwd=ROOT, check=False
    ).stdout
    missing = [a for a in fast_args if a.startswith("--") and a.split("=")[0] not in helptext]
    if missing:
        return f"`htr enrich` has no option {', '.join(missing)} (not merged yet?); try --fast-args ''"
    return None


def warm_up(bin_dir: Path, page: Path, work: Path, model: str, env: dict[str, str]) -> dict:
    """One untimed `htr enrich` of one page before the measured runs: every config then starts with warm disk
    caches (torch, kraken, Prefect, spaCy) and an existing Prefect database, not only the later ones."""
    cmd = [str(bin_dir / "htr"), "enrich", str(page), "-o", str(work / "warmup"), "-q", "--model", model]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*cmd, "--preprocess", "none", "--workers", "1"], cwd=ROOT, env=env, capture_output=True, check=False
    )
    return {"page": page.name, "returncode": proc.returncode, "wall_s": round(time.perf_counter() - t0, 2)}


# --------------------------------------------------------------------------- measuring


def measure(cmd: list[str], first_output: Path, env: dict[str, str]) -> dict:
    """Run `cmd`, sampling memory; CPU from rusage of waited-for children (workers included)."""
    before = os.times()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)  # never blocks the child
    drain.start()
    sampler = TreeSampler(proc.pid)
    sampler.start()
    first = None
    while proc.poll() is None:
        if first is None and first_output.is_dir() and any(first_output.glob("*.xml")):
            first = time.perf_counter() - t0
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    drain.join()
    after = os.times()
    if first is None and first_output.is_dir() and any(first_output.glob("*.xml")):
        first = wall
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {
        "returncode": proc.returncode,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "time_to_first_page_s": round(first, 2) if first is not None else None,
        "peak_rss_mb_total": round(sampler.peak_total / 2**20),
        "peak_rss_mb_per_process": sorted(
            ({"process": n, "peak_rss_mb": round(r / 2**20)} for n, r in sampler.peak_per_process.values()),
            key=lambda d: -d["peak_rss_mb"],
        )[:8],
        "stderr_tail": "".join(stderr)[-1500:] if proc.returncode not in (0, 1) else "",
    }


def add_rates(m: dict, pages: int, alto_dir: Path) -> dict:
    """Pages/hour and CPU-s/page over the pages given; how many ALTO files came out."""
    m["pages"] = pages
    m["alto_pages"] = len(list(alto_dir.glob("*.xml"))) if alto_dir.is_dir() else 0
    m["pages_per_hour"] = round(3600 * pages / m["wall_s"], 1) if m["wall_s"] else None
    m["cpu_s_per_page"] = round(m["cpu_s"] / pages, 2)
    return m


def quality(gt_paths: list[Path], pred_dir: Path) -> dict:
    """Line recall (IoU >= 0.5), CER and matched-line CER of the ALTO in `pred_dir`, overall and per dataset."""
    from htr.evaluate import IOU_DETECTED, evaluate_predictions

    if not pred_dir.is_dir():
        return {"error": f"no output folder {pred_dir}"}
    res = evaluate_predictions(gt_paths, pred_dir)

    def figures(s, lines) -> dict:
        matched = [ln for ln in lines if ln.status == "matched"]
        mchars = sum(ln.chars for ln in matched)
        return {
            "pages": s.pages,
            "gt_lines": s.gt_lines,
            "pred_lines": s.pred_lines,
            "detected_lines": s.detected_lines,
            "line_recall": _r(s.line_recall),
            "line_precision": _r(s.line_precision),
            "cer": _r(s.cer),
            "matched_line_cer": _r(sum(ln.char_edits for ln in matched) / mchars if mchars else None),
        }

    by_page = {p.key: p.dataset for p in res.pages}
    out = figures(res.overall, res.lines)
    out["iou_detected"] = IOU_DETECTED
    out["datasets"] = {
        name: figures(s, [ln for ln in res.lines if by_page.get(ln.page) == name]) for name, s in res.datasets
    }
    out["unpaired_gt"] = [Path(p).name for p in res.unpaired_gt]
    out["unpaired_pred"] = [Path(p).name for p in res.unpaired_pred]
    out["errors"] = list(res.errors)
    return out


def _r(v: float | None, nd: int = 4) -> float | None:
    return None if v is None else round(v, nd)


# --------------------------------------------------------------------------- configs


def kraken_config(bin_dir: Path, pages: list[Path], out: Path, model: str) -> dict:
    """Plain kraken: one process, the pages one after another, its default segmenter, the same model."""
    cmd = [str(bin_dir / "kraken"), "-a", "--device", "cpu"]
    for p in pages:
        cmd += ["-i", str(p), str(out / (p.stem + ".xml"))]
    cmd += ["segment", "-bl", "ocr", "-m", model]
    return {"cmd": cmd, "alto": out, "options": {"tool": "kraken CLI", "segment": "-bl (default model)", "threads": 1}}


def htr_config(bin_dir: Path, pages_dir: Path, out: Path, model: str, workers: int, extra: list[str]) -> dict:
    """`htr enrich` with its defaults except --preprocess none (as plain kraken does none) and `extra`."""
    args = ["--model", model, "--preprocess", "none", "--workers", str(workers), *extra]
    cmd = [str(bin_dir / "htr"), "enrich", str(pages_dir), "-o", str(out), "-q", *args]
    options = {"tool": "htr enrich", "args": args, "workers": workers, "fast_args": extra}
    return {"cmd": cmd, "alto": out / "alto", "options": options}


def configs(args: argparse.Namespace, bin_dir: Path, pages_dir: Path, work: Path, model_path: str) -> dict:
    """The configs to run, in order: name -> {cmd, alto folder, options}."""
    pages = sorted(pages_dir.iterdir())
    fast = shlex.split(args.fast_args)
    cfgs = {
        "kraken_cli": kraken_config(bin_dir, pages, work / "kraken", model_path),
        "htr_kraken": htr_config(
            bin_dir, pages_dir, work / "htr_kraken", args.model, WORKERS, ["--seg-engine", "kraken"]
        ),
        "htr_fast": htr_config(bin_dir, pages_dir, work / "htr_fast", args.model, WORKERS, fast),
    }
    if args.scaling:
        cfgs["htr_fast_1w"] = htr_config(bin_dir, pages_dir, work / "htr_fast_1w", args.model, 1, fast)
    (work / "kraken").mkdir()
    return cfgs


# --------------------------------------------------------------------------- comparing


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def ratios(c: dict, base: dict) -> dict:
    """Speed and memory of config `c` over `base` (>1: more pages/hour, more CPU, later, more memory)."""
    return {
        "pages_per_hour": _ratio(c["pages_per_hour"], base["pages_per_hour"]),
        "cpu_s_per_page": _ratio(c["cpu_s_per_page"], base["cpu_s_per_page"]),
        "time_to_first_page": _ratio(c["time_to_first_page_s"], base["time_to_first_page_s"]),
        "peak_rss_total": _ratio(c["peak_rss_mb_total"], base["peak_rss_mb_total"]),
    }


def deltas(q: dict, base: dict) -> dict:
    """Quality of `q` minus `base`, in percentage points (recall up is better, CER down is better)."""

    def pts(k: str) -> float | None:
        a, b = q.get(k), base.get(k)
        return None if a is None or b is None else round(100 * (a - b), 2)

    return {
        "line_recall_pts": pts("line_recall"),
        "cer_pts": pts("cer"),
        "matched_line_cer_pts": pts("matched_line_cer"),
    }


def compare(results: dict) -> dict:
    """Ratios to plain kraken, quality deltas, and the 1 -> 2 worker scaling of the fast path."""
    base = results["kraken_cli"]
    out: dict = {"ratios_to_kraken_cli": {}, "quality_deltas_to_kraken_cli": {}}
    for name, r in results.items():
        if name != "kraken_cli":
            out["ratios_to_kraken_cli"][name] = ratios(r, base)
            out["quality_deltas_to_kraken_cli"][name] = deltas(r["quality"], base["quality"])
    out["quality_delta_fast_vs_htr_kraken"] = deltas(results["htr_fast"]["quality"], results["htr_kraken"]["quality"])
    out["ratios_fast_to_htr_kraken"] = ratios(results["htr_fast"], results["htr_kraken"])
    if "htr_fast_1w" in results:
        out["scaling_fast_2w_over_1w"] = {
            "pages_per_hour": _ratio(results["htr_fast"]["pages_per_hour"], results["htr_fast_1w"]["pages_per_hour"]),
            "peak_rss_total": _ratio(
                results["htr_fast"]["peak_rss_mb_total"], results["htr_fast_1w"]["peak_rss_mb_total"]
            ),
        }
    return out


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def print_table(results: dict, comp: dict) -> None:
    """One row per config, then ratios and deltas against plain kraken."""
    head = f"{'config':<12} {'pages/h':>8} {'CPU-s/p':>8} {'TTFP s':>7} {'RSS MB':>7} {'wall s':>7} "
    head += f"{'recall%':>8} {'CER%':>6} {'mCER%':>6}"
    print(head)
    for name, r in results.items():
        q = r["quality"]
        print(
            f"{name:<12} {r['pages_per_hour'] or 0:>8.1f} {r['cpu_s_per_page']:>8.2f} "
            f"{r['time_to_first_page_s'] or 0:>7.1f} {r['peak_rss_mb_total']:>7} {r['wall_s']:>7.1f} "
            f"{_pct(q.get('line_recall')):>8} {_pct(q.get('cer')):>6} {_pct(q.get('matched_line_cer')):>6}"
        )
    print(f"\n{'vs kraken':<12} {'pages/h':>8} {'CPU-s/p':>8} {'TTFP':>7} {'RSS':>7}   Δrecall  ΔCER  ΔmCER (pts)")
    for name, rt in comp["ratios_to_kraken_cli"].items():
        d = comp["quality_deltas_to_kraken_cli"][name]
        print(
            f"{name:<12} {rt['pages_per_hour']!s:>8} {rt['cpu_s_per_page']!s:>8} {rt['time_to_first_page']!s:>7} "
            f"{rt['peak_rss_total']!s:>7}   {d['line_recall_pts']!s:>7} {d['cer_pts']!s:>5} {d['matched_line_cer_pts']!s:>6}"
        )
    d = comp["quality_delta_fast_vs_htr_kraken"]
    print(f"\nfast vs htr_kraken: Δrecall {d['line_recall_pts']} pts, ΔCER {d['cer_pts']} pts, ", end="")
    print(f"ΔmCER {d['matched_line_cer_pts']} pts; ratios {comp['ratios_fast_to_htr_kraken']}")
    if "scaling_fast_2w_over_1w" in comp:
        print(f"scaling 1 -> {WORKERS} workers (fast path): {comp['scaling_fast_2w_over_1w']}")


def machine() -> dict:
    """What the figures were measured on (the load shows how shared the machine was)."""
    from importlib.metadata import version

    import torch

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=False)
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "kraken": version("kraken"),
        "torch": torch.__version__,
        "git_commit": commit.stdout.strip(),
        "git_dirty": bool(dirty.stdout.strip()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=len(DEFAULT_PAGES), help="the first N of DEFAULT_PAGES")
    ap.add_argument(
        "--fast-args", default=DEFAULT_FAST_ARGS, help=f"extra htr options of the fast path ({DEFAULT_FAST_ARGS!r})"
    )
    ap.add_argument(
        "--scaling", action=argparse.BooleanOptionalAction, default=True, help="also the fast path with 1 worker"
    )
    ap.add_argument("--gt", default=str(ROOT.parent / "shared" / "gt"))
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    ap.add_argument(
        "--warmup", action=argparse.BooleanOptionalAction, default=True, help="one untimed htr run of 1 page first"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (pages, outputs)")
    args = ap.parse_args()

    from htr.models import resolve

    gt = Path(args.gt)
    if not gt.is_dir():
        print(f"bench: ground truth missing at {gt}", file=sys.stderr)
        return 2
    bin_dir = Path(sys.executable).parent
    work = Path(tempfile.mkdtemp(prefix="htr-bench-"))
    env = bench_env(work)
    why = check_fast_args(bin_dir / "htr", shlex.split(args.fast_args), env)
    if why:
        print(f"bench: {why}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
        return 2
    model = resolve(args.model)
    rels = DEFAULT_PAGES[: args.pages]
    gt_paths = copy_pages(gt, rels, work / "pages")
    info = machine()
    warm = None
    if args.warmup:
        print("bench: warm-up (1 page, untimed) …", file=sys.stderr, flush=True)
        warm = warm_up(bin_dir, sorted((work / "pages").iterdir())[0], work, args.model, env)
    results = {}
    for name, cfg in configs(args, bin_dir, work / "pages", work, model.path).items():
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        m = add_rates(measure(cfg["cmd"], cfg["alto"], env), len(rels), cfg["alto"])
        if m["stderr_tail"]:
            print(f"bench: {name} exited {m['returncode']}:\n{m['stderr_tail']}", file=sys.stderr)
        results[name] = {"options": cfg["options"], **m, "quality": quality(gt_paths, cfg["alto"])}
    comp = compare(results)
    entry = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "machine": info | {"load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "model": {"name": model.name, "sha256": model.sha256, "path": model.path},
        "pages": rels,
        "warmup": warm,
        "configs": results,
        **comp,
    }
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.is_file() else {}
    old["enrich"] = entry
    out.write_text(json.dumps(old, indent=1, ensure_ascii=False) + "\n")
    print_table(results, comp)
    print(f"\nbench: {out}" + (f"; outputs kept in {work}" if args.keep else ""))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    ok = all(r["returncode"] in (0, 1) and r["alto_pages"] for r in results.values())
    return 0 if ok and results["kraken_cli"]["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
