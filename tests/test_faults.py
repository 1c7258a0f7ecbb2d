"""Faults a collection run must survive (issue 10): a SIGKILLed `htr enrich`, two runs on one
output folder, a full disk, failed checks before the run, hostile XML, work files left behind,
`max_failures` inside the flow, run.json while the run goes, `htr search` argument errors.

Pages are small bands cut from sample_images/ (one text line each) whose line is given as ALTO
(`--segmentation-from alto`): real Kraken recognition, no segmentation time. The command-line
runs share the session's Prefect API, except the killed one, which starts its own server (it
must die with the command). Waits are on conditions with generous deadlines, never fixed sleeps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from PIL import Image

from tests.conftest import ROOT

ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
N_PAGES = 12
SAMPLES = ("lettre_prefet_1934", "registre_deliberations_1872")


# --------------------------------------------------------------------------- helpers


def wait_for(cond, timeout: float, what: str, every: float = 0.05):
    """Poll `cond()` until it returns something truthy (returned) or `timeout` s pass (test fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _points(pts) -> str:
    return " ".join(f"{x} {y}" for x, y in pts)


def seg_alto(image: str, width: int, height: int, lines) -> str:
    """A minimal ALTO 4 giving lines (id, baseline, polygon) for `--segmentation-from alto`."""
    body = "".join(
        f'<TextLine ID="{lid}" BASELINE="{_points(base)}"><Shape><Polygon POINTS="{_points(poly)}"/></Shape>'
        f'<String CONTENT=""/></TextLine>'
        for lid, base, poly in lines
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><alto xmlns="{ALTO_NS}"><Description>'
        f"<MeasurementUnit>pixel</MeasurementUnit><sourceImageInformation><fileName>{image}</fileName>"
        f'</sourceImageInformation></Description><Layout><Page ID="pg" WIDTH="{width}" HEIGHT="{height}" '
        f'PHYSICAL_IMG_NR="1"><PrintSpace><TextBlock ID="b1">{body}</TextBlock></PrintSpace></Page></Layout></alto>'
    )


def make_pages(folder: Path, n: int) -> list[str]:
    """`n` one-line pages: a band of a sample page around one of its ground-truth lines, + its ALTO."""
    from alto.gt import read_gt

    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in SAMPLES:
        gt = read_gt(ROOT / "sample_images" / "gt" / f"{name}.xml")
        lines += [(gt.image_path, ln) for ln in gt.lines if len(ln.polygon) >= 3 and len(ln.baseline) >= 2]
    ids = []
    for i in range(n):
        path, ln = lines[i % len(lines)]
        xs = [x for x, _ in ln.polygon]
        ys = [y for _, y in ln.polygon]
        x0, y0, x1, y1 = max(min(xs) - 20, 0), max(min(ys) - 20, 0), max(xs) + 20, max(ys) + 20
        with Image.open(path) as im:
            band = im.crop((x0, y0, x1, y1))
        pid = f"p{i:03d}"
        band.save(folder / f"{pid}.png")
        shift = lambda pts: [(x - x0, y - y0) for x, y in pts]  # noqa: E731
        (folder / f"{pid}.xml").write_text(
            seg_alto(f"{pid}.png", band.width, band.height, [(f"{pid}_l1", shift(ln.baseline), shift(ln.polygon))])
        )
        ids.append(pid)
    return ids


def add_hostile_xml(folder: Path) -> dict[str, str]:
    """XML files no run may trust, written into `folder`; returns name -> what each is."""
    good = (folder / "p000.xml").read_text() if (folder / "p000.xml").exists() else seg_alto("x.png", 10, 10, [])
    body = re.sub(r"^<\?xml[^>]*\?>", "", good)
    files = {
        "xxe.xml": (
            '<?xml version="1.0"?><!DOCTYPE alto [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            + body.replace("<fileName>", "<fileName>&x;")
        ),
        "laughs.xml": (
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
            + f']><alto xmlns="{ALTO_NS}">&lol9;</alto>'
        ),
        "internal.xml": (
            '<?xml version="1.0"?><!DOCTYPE alto [<!ENTITY e "page.png">]>'
            + body.replace("<fileName>", "<fileName>&e;")
        ),
        "truncated.xml": good[: len(good) // 2],
        "deep.xml": f'<alto xmlns="{ALTO_NS}">' + "<x>" * 300 + "</x>" * 300 + "</alto>",
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    return {n: n.split(".")[0] for n in files}


def cli_env(tmp: Path, api_url: str | None) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def enrich_cmd(src: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cli",
        "enrich",
        str(src),
        "-o",
        str(out),
        "--segmentation-from",
        "alto",
        "--workers",
        "1",
        "--no-entities",
        "-q",
        *extra,
    ]


def strip_volatile(xml: bytes) -> bytes:
    return re.sub(rb"<processingDateTime>[^<]*</processingDateTime>", b"", xml)


def outputs(out: Path) -> dict[str, bytes]:
    """ALTO (dates removed) and text of every page: what two runs must agree on."""
    files = {f"alto/{p.name}": strip_volatile(p.read_bytes()) for p in (out / "alto").glob("*.xml")}
    files.update({f"text/{p.name}": p.read_bytes() for p in (out / "text").glob("*.txt")})
    return files


def assert_same_outputs(out: Path, ref: Path) -> None:
    """Same ALTO (dates aside) and text files, byte for byte; on failure, say which files differ."""
    a, b = outputs(out), outputs(ref)
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    assert not differ, {k: (len(a.get(k) or b""), len(b.get(k) or b"")) for k in differ}
    assert len(a) == 2 * N_PAGES


def leftovers(out: Path) -> list[str]:
    """Temp files, normalised images and in-flight markers that a finished run must not leave."""
    found = [p for p in out.rglob("*") if ".tmp-" in p.name or p.name.endswith(".tmp")]
    found += list((out / ".work").glob("*")) if (out / ".work").is_dir() else []
    found += list((out / ".state" / "running").glob("*")) if (out / ".state" / "running").is_dir() else []
    return sorted(str(p) for p in found)


def run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def one_line_error(stderr: str) -> str:
    """The command's error output must be exactly one line, without a traceback."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    """One-line pages with their ALTO, and hostile XML files beside them."""
    folder = tmp_path_factory.mktemp("faults") / "src"
    make_pages(folder, N_PAGES)
    add_hostile_xml(folder)
    return folder


@pytest.fixture(scope="module")
def api_url(prefect_harness) -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


@pytest.fixture(scope="module")
def reference(src, api_url, tmp_path_factory):
    """An uninterrupted run (A), and a second run (B) started on the same OUT while A holds it."""
    tmp = tmp_path_factory.mktemp("reference")
    out = tmp / "out"
    env = cli_env(tmp, api_url)
    a = subprocess.Popen(
        enrich_cmd(src, out), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lock = out / ".state" / "run.lock"
    wait_for(lambda: lock.is_file() and lock.read_text().strip(), 120, "run A to take the lock")
    # B gets no API and its own PREFECT_HOME: had it gone past the lock, it would have started Prefect there
    b_env = cli_env(tmp / "b", None)
    b = subprocess.run(enrich_cmd(src, out), cwd=ROOT, env=b_env, capture_output=True, text=True, timeout=120)
    a_running_after_b = a.poll() is None
    a_out, a_err = a.communicate(timeout=600)
    return {
        "out": out,
        "a": a,
        "a_err": a_err,
        "b": b,
        "b_prefect_home": Path(b_env["PREFECT_HOME"]),
        "a_running_after_b": a_running_after_b,
    }


# --------------------------------------------------------------------------- one run per OUT


@pytest.mark.slow
@pytest.mark.kraken
def test_reference_run_completes_and_lists_refused_xml(reference, src):
    assert reference["a"].returncode == 0, reference["a_err"]
    doc = run_json(reference["out"])
    assert doc["status"] == "completed"
    assert [p["status"] for p in doc["pages"]] == ["done"] * N_PAGES
    ignored = {Path(i["source"]).name: i["reason"] for i in doc["ignored"]}
    # hostile and broken XML given as segmentation: each listed with a one-line reason, never silently dropped
    for name in ("xxe.xml", "laughs.xml", "internal.xml"):
        assert "DOCTYPE/entity declarations are not allowed" in ignored[name], ignored
    assert "not well-formed" in ignored["truncated.xml"] and "deeper than" in ignored["deep.xml"], ignored
    assert all("\n" not in why for why in ignored.values())
    assert leftovers(reference["out"]) == []


@pytest.mark.slow
@pytest.mark.kraken
def test_second_run_on_the_same_output_is_refused_in_one_line(reference):
    b = reference["b"]
    assert reference["a_running_after_b"], "run A ended before run B could try: the lock was not put to the test"
    assert b.returncode == 5  # EXIT_OUTPUT: the output folder cannot be used
    line = one_line_error(b.stderr)
    assert f"pid {reference['a'].pid}" in line and "in use by another htr run" in line and "since " in line, line
    assert not reference["b_prefect_home"].exists(), "the refused run started Prefect before stopping"
    workers = {p["worker"].rsplit(":", 1)[1] for p in run_json(reference["out"])["pages"]}
    assert len(workers) == 1, workers  # every page done once, by A's single worker


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    """A real process holds the lock: refused with its pid; SIGKILLed: the lock is taken over."""
    from htr import runlock
    from htr.errors import RunLocked

    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom htr import runlock\n"
            "with runlock.exclusive(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked) as err, runlock.exclusive(out):
            pass
        assert f"pid {holder.pid}" in str(err.value) and "\n" not in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    with runlock.exclusive(out) as got:
        assert got.took_over is not None and got.took_over.pid == holder.pid
        assert got.holder.pid == os.getpid()
        with runlock.exclusive(out):  # re-entrant in the holding process (the CLI, then its flow)
            pass
    with runlock.exclusive(out) as again:  # released cleanly: nothing to take over
        assert again.took_over is None


# --------------------------------------------------------------------------- SIGKILL of the main process


def _run_processes(proc: psutil.Process) -> list[psutil.Process]:
    return proc.children(recursive=True)


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    left = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:  # is_running compares create times
                left.append(p)
        except psutil.NoSuchProcess:
            pass
    return left


@pytest.mark.slow
@pytest.mark.kraken
def test_sigkill_of_the_command_leaves_no_process_and_resumes_to_identical_outputs(src, reference, api_url, tmp_path):
    out = tmp_path / "out"
    # its own Prefect server (no PREFECT_API_URL): the server must die with the command too
    main = subprocess.Popen(
        enrich_cmd(src, out),
        cwd=ROOT,
        env=cli_env(tmp_path, None),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc = psutil.Process(main.pid)

    def where_it_stood():
        try:
            doc = run_json(out)
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        done = sum(p["status"] == "done" for p in doc["pages"])
        return doc if done and doc["status"] == "running" else None

    wait_for(where_it_stood, 300, "run.json to show pages done while the run goes", every=0.02)
    family = _run_processes(proc)
    cmdlines = [" ".join(p.cmdline()) for p in family]
    assert any("htr.lifeline" in c and "uvicorn" in c for c in cmdlines), cmdlines  # the Prefect server
    assert any("multiprocessing" in c for c in cmdlines), cmdlines  # page worker(s)
    os.kill(main.pid, signal.SIGKILL)
    main.wait()
    t = time.monotonic()
    wait_for(lambda: not _alive(family), 15, f"the run's processes to end: {cmdlines}")
    gone_after = time.monotonic() - t
    doc = run_json(out)  # where the killed run stood
    statuses = [p["status"] for p in doc["pages"]]
    assert doc["status"] == "running" and "done" in statuses and "pending" in statuses, statuses

    again = subprocess.run(
        enrich_cmd(src, out), cwd=ROOT, env=cli_env(tmp_path, api_url), capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr
    assert "ended without releasing it: taken over" in again.stderr  # the killed run's lock
    assert_same_outputs(out, reference["out"])
    assert leftovers(out) == []
    final = run_json(out)
    assert final["status"] == "completed" and {p["status"] for p in final["pages"]} <= {"done", "skipped"}
    print(f"processes of the killed run gone {gone_after:.1f} s after SIGKILL")


# --------------------------------------------------------------------------- disk full


@pytest.fixture
def tmpfs(tmp_path):
    """Mount small tmpfs file systems (skip, saying why, where this machine does not allow it)."""
    mounted: list[Path] = []

    def mount(name: str, size: str, *opts: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *opts]), "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here to fill a disk (needs root / CAP_SYS_ADMIN): {r.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Take every free byte of `folder`'s file system."""
    filler = folder / "filler"
    with open(filler, "wb") as fh:
        chunk = b"\0" * (1 << 16)
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError:
            pass
    for size in (4096, 512, 1):  # the last crumbs
        try:
            with open(filler, "ab") as fh:
                while True:
                    fh.write(b"\0" * size)
                    fh.flush()
        except OSError:
            pass
    return filler


@pytest.mark.slow
@pytest.mark.kraken
def test_disk_filling_up_mid_run_stops_cleanly_records_and_resumes(src, reference, api_url, tmp_path, tmpfs):
    disk = tmpfs("disk", "24m")
    out = disk / "out"
    env = cli_env(tmp_path, api_url)
    proc = subprocess.Popen(
        enrich_cmd(src, out), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    filler: list[Path] = []

    def fill_after_first_page():
        if (out / "alto").is_dir() and any((out / "alto").glob("p*.xml")):
            filler.append(_fill(disk))
            return True
        return proc.poll() is not None

    wait_for(fill_after_first_page, 300, "the first page's ALTO")
    assert filler, "the run ended before the disk could be filled"
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    assert "stopped: the output disk is full" in err, err
    assert "free some space on the output's disk, then run the same command again to resume" in err, err
    failed = [ln for ln in err.splitlines() if ln.startswith("failed ")]
    assert failed and all("no space left on the output's disk" in ln for ln in failed), err
    doc = run_json(out)  # written thanks to the reserve, although the disk is full
    statuses = [p["status"] for p in doc["pages"]]
    assert doc["status"] == "stopped" and "disk is full" in doc["stopped"] and "resume" in doc["resume"]
    assert statuses.count("pending") >= N_PAGES // 2, statuses  # it stopped taking pages
    assert (out / "report.html").is_file() and "stopped" in (out / "report.html").read_text()

    filler[0].unlink()
    again = subprocess.run(enrich_cmd(src, out), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert_same_outputs(out, reference["out"])
    assert leftovers(out) == []


def test_disk_already_full_is_one_line_before_anything_starts(src, tmp_path, tmpfs):
    disk = tmpfs("full", "4m")
    r = subprocess.run(
        enrich_cmd(src, disk / "out"),
        cwd=ROOT,
        env=cli_env(tmp_path, None),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 5  # EXIT_OUTPUT
    line = one_line_error(r.stderr)
    assert "free on the output's disk" in line and str(disk / "out") in line, line


# --------------------------------------------------------------------------- checks before the run


def _preflight_cases(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x20\x00\x00\x00\x00\x00\x00\x00{not json at all" + os.urandom(64))
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    return {
        "out-is-a-file": (["-o", str(a_file)], "output is not a folder"),
        "model-missing": (["--model", "nonexistent"], "no such model"),
        "model-garbage": (["--model", str(garbage)], "not a loadable .safetensors model"),
    }


def _gpu_here() -> bool:
    import torch

    return torch.cuda.is_available()


# the exit codes of core/errors.py: 4 the model or the device, 5 the output folder
EXIT_OF_CHECK = {"out-is-a-file": 5, "model-missing": 4, "model-garbage": 4, "device": 4, "read-only": 5}


@pytest.mark.parametrize("case", ["out-is-a-file", "model-missing", "model-garbage", "device", "read-only"])
def test_failed_check_is_one_line_and_its_exit_code_before_prefect(case, src, tmp_path, tmpfs):
    out = tmp_path / "out"
    if case == "device":
        args, says = ["--device", "cuda:99" if _gpu_here() else "cuda:0"], "--device cuda:"
    elif case == "read-only":
        ro = tmpfs("ro", "1m", "ro")
        args, says = ["-o", str(ro / "out")], "not writable"
    else:
        args, says = _preflight_cases(tmp_path)[case]
    cmd = enrich_cmd(src, out, *args)
    if "-o" in args:  # the case's own output folder replaces the default one
        i = cmd.index("-o")
        del cmd[i : i + 2]
    t = time.monotonic()
    r = subprocess.run(cmd, cwd=ROOT, env=cli_env(tmp_path, None), capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t
    assert r.returncode == EXIT_OF_CHECK[case], r.stderr
    line = one_line_error(r.stderr)
    assert says in line, line
    assert not (tmp_path / "prefect-home").exists(), "Prefect was started before the checks"
    print(f"{case}: {elapsed:.1f} s including interpreter start: {line}")


PREFLIGHT_PROBE = """
import json, sys
from core import hashing
from htr import models, preflight
from htr.config import RunSettings

read = []
file_sha256 = hashing.file_sha256
hashing.file_sha256 = lambda path, *a, **k: read.append(str(path)) or file_sha256(path, *a, **k)
settings = RunSettings()
for out in sys.argv[1:]:
    preflight.check(out, settings)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("prefect", "torch") or m.startswith("kraken."))
model = str(models.resolve(settings.recognize.model).path)
print(json.dumps({"heavy": heavy, "model_reads": sum(p == model for p in read)}))
"""


def test_checks_load_no_framework_and_hash_the_model_once_per_process(tmp_path):
    """What keeps the checks cheap, counted rather than timed: in a fresh interpreter, three runs' checks
    import neither Prefect, torch nor any Kraken module (the kraken package is only located, for its
    segmentation model's path) and read the recognition model's bytes once, reusing the hash after."""
    outs = [str(tmp_path / f"out{i}") for i in range(3)]
    r = subprocess.run(
        [sys.executable, "-c", PREFLIGHT_PROBE, *outs], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert seen["heavy"] == [], seen["heavy"]
    assert seen["model_reads"] == 1, seen
    assert all(Path(o).is_dir() for o in outs)


def test_space_warning_is_measured_per_page(tmp_path):
    from htr import preflight

    assert preflight.space_warning(tmp_path, 100, 2, free=10 * preflight.MB) is not None
    assert preflight.space_warning(tmp_path, 100, 2, free=100 * preflight.PAGE_BYTES + 2 * preflight.WORK_BYTES) is None


# --------------------------------------------------------------------------- hostile XML


def test_parser_refuses_dtd_entities_huge_and_deep_files_in_one_line(tmp_path, monkeypatch):
    from htr import safexml
    from htr.errors import XmlError

    add_hostile_xml(tmp_path)
    for name in ("xxe.xml", "laughs.xml", "internal.xml", "truncated.xml", "deep.xml"):
        with pytest.raises(XmlError) as err:  # refused before any entity is expanded (laughs.xml: 10^9 "lol")
            safexml.parse(tmp_path / name)
        msg = str(err.value)
        assert msg.startswith(str(tmp_path / name)) and "\n" not in msg and "root:" not in msg, msg
        if name in ("xxe.xml", "laughs.xml", "internal.xml"):
            assert "DOCTYPE/entity declarations are not allowed" in msg, msg
    big = tmp_path / "big.xml"
    big.write_bytes(f'<alto xmlns="{ALTO_NS}"><x a="'.encode() + b"y" * (3 * 2**20) + b'"/></alto>')
    monkeypatch.setenv("HTR_XML_MAX_MB", "2")
    with pytest.raises(XmlError, match=r"3\.0 MB is above the 2 MB limit \(HTR_XML_MAX_MB\)"):
        safexml.parse(big)
    monkeypatch.setenv("HTR_XML_MAX_MB", "16")
    with pytest.raises(XmlError, match="not well-formed"):  # libxml2's own cap on one attribute (10 MB) stays
        safexml.parse(tmp_path / "big.xml", b'<a b="' + b"y" * (11 * 2**20) + b'"/>')
    assert safexml.parse(big).getroot().tag == f"{{{ALTO_NS}}}alto"  # under the cap: read


def test_validate_reports_each_hostile_file_in_one_line_and_checks_the_rest(tmp_path, capsys, monkeypatch):
    from cli.main import main

    folder = tmp_path / "alto"
    folder.mkdir()
    good = ROOT / "sample_images" / "gt" / "lettre_prefet_1934.xml"
    shutil.copy(good, folder / "good.xml")
    shutil.copy(good, folder / "zz_good.xml")  # after the hostile ones in sorted order: they must not stop it
    (folder / "p000.xml").write_bytes(good.read_bytes())
    add_hostile_xml(folder)
    (folder / "p000.xml").unlink()
    big = folder / "huge.xml"
    big.write_bytes(good.read_bytes().replace(b"</alto>", b"<!--" + b"x" * (2 * 2**20) + b"--></alto>"))
    monkeypatch.setenv("HTR_XML_MAX_MB", "1")
    rc = main(["validate", str(folder)])
    out, err = capsys.readouterr()
    assert rc == 3 and "Traceback" not in out + err
    by_file = {}
    for line in out.splitlines():
        by_file.setdefault(Path(line.split(":", 1)[0]).name, []).append(line)
    assert set(by_file) == {"xxe.xml", "laughs.xml", "internal.xml", "truncated.xml", "deep.xml", "huge.xml"}, out
    assert all(len(v) == 1 and ": xml: " in v[0] for v in by_file.values()), by_file
    assert "DOCTYPE" in by_file["internal.xml"][0] and "limit" in by_file["huge.xml"][0]
    assert "8 file(s) checked, 6 problem(s)" in err


def test_index_refuses_hostile_alto_and_indexes_the_rest(tmp_path, monkeypatch):
    from htr.index.store import Index, index_path, rebuild, sync

    out = tmp_path / "out"
    (out / "alto").mkdir(parents=True)
    good = ROOT / "sample_images" / "gt" / "lettre_prefet_1934.xml"
    shutil.copy(good, out / "alto" / "good.xml")
    (out / "alto" / "p000.xml").write_bytes(good.read_bytes())
    add_hostile_xml(out / "alto")
    (out / "alto" / "p000.xml").unlink()
    (out / "alto" / "huge.xml").write_bytes(
        good.read_bytes().replace(b'CONTENT="', b'CONTENT="' + b"z" * (2 * 2**20), 1)
    )
    monkeypatch.setenv("HTR_XML_MAX_MB", "1")
    for build in (rebuild, sync):
        index_path(out).unlink(missing_ok=True)
        report = build(out)
        failed = dict(report.failed)
        assert set(failed) == {"xxe", "laughs", "internal", "truncated", "deep", "huge"}, failed
        assert all("\n" not in why for why in failed.values())
        assert report.added == ["good"]
    with Index.open(index_path(out), readonly=True) as idx:
        assert {h.page_id for h in idx.search("Maire")} == {"good"}


def test_segmentation_from_lists_refused_and_broken_files_with_a_reason(src):
    from htr.reuse import discover

    refs, ignored = discover([str(src)], "alto")
    assert len(refs) == N_PAGES
    why = {Path(p).name: r for p, r in ignored}
    assert set(why) == {"xxe.xml", "laughs.xml", "internal.xml", "truncated.xml", "deep.xml"}, why
    assert all(r.startswith("cannot use as segmentation: ") and "\n" not in r for r in why.values())


def test_evaluate_ground_truth_refuses_hostile_files_and_reads_the_rest(tmp_path, monkeypatch):
    from htr.evaluate import load_gt

    gt = tmp_path / "gt"
    make_pages(gt, 3)
    add_hostile_xml(gt)
    (gt / "p002.xml").write_text((gt / "p002.xml").read_text().replace("</alto>", "<!--" + "x" * 2**20 + "--></alto>"))
    monkeypatch.setenv("HTR_XML_MAX_MB", "1")
    pages, errors = load_gt([gt])
    assert sorted(p.xml_path.name for p in pages) == ["p000.xml", "p001.xml"]
    why = {Path(e.split(":", 1)[0]).name: e for e in errors}
    assert set(why) == {"xxe.xml", "laughs.xml", "internal.xml", "truncated.xml", "deep.xml", "p002.xml"}, errors
    for name in ("xxe.xml", "laughs.xml", "internal.xml"):
        assert "DOCTYPE/entity declarations are not allowed" in why[name], why[name]
    assert "above the 1 MB limit" in why["p002.xml"] and "deeper than" in why["deep.xml"]
    assert all("\n" not in e for e in errors)


# --------------------------------------------------------------------------- work files


def _models_stub():
    from htr.models import ModelInfo
    from htr.pipeline import Models

    m = ModelInfo("stub", "/nonexistent", "0" * 64)
    return Models(m, m)


def test_normalised_image_is_removed_whatever_the_page_fate_with_a_relative_output(tmp_path, monkeypatch):
    from htr import pipeline, recognize
    from htr.config import RunSettings
    from htr.errors import RecognitionError
    from htr.images import discover
    from htr.types import PageSegmentation, PageText

    pages = tmp_path / "pages"
    make_pages(pages, 1)
    with Image.open(pages / "p000.png") as im:
        im.save(tmp_path / "scan.tif")  # a TIFF is normalised to OUT/.work/<id>.png before reading
    (ref,), _ = discover([str(tmp_path / "scan.tif")])
    monkeypatch.chdir(tmp_path)
    out = Path("out")  # relative, as `htr enrich -o out` gives it
    monkeypatch.setattr(pipeline.segment, "run", lambda im, *a, **k: PageSegmentation(im.width, im.height))
    settings = RunSettings(entities=False)

    fates = {
        "done": lambda *a, **k: PageText(()),
        "failed": lambda *a, **k: (_ for _ in ()).throw(RecognitionError("boom", page_id=ref.id)),
        "crashed": lambda *a, **k: (_ for _ in ()).throw(ValueError("unexpected")),
    }
    for fate, fn in fates.items():
        monkeypatch.setattr(recognize, "run", fn)
        seen = []
        real_open = pipeline.images.open_image
        monkeypatch.setattr(pipeline.images, "open_image", lambda page: (seen.append(page.path), real_open(page))[1])
        res = pipeline.process_page(ref, out, settings, _models_stub(), "k")
        assert res.status == ("done" if fate == "done" else "failed"), (fate, res.error)
        assert seen and Path(seen[0]).parent.name == ".work"  # it really went through a work file
        assert list((tmp_path / "out" / ".work").iterdir()) == [], fate
        assert list((tmp_path / "out" / ".state" / "running").iterdir()) == [], fate


def test_start_of_run_sweep_matches_every_temp_name_the_project_makes(tmp_path, monkeypatch):
    """Kill between writing a temp file and renaming it (os.replace never returns): the next run sweeps it."""
    from htr import atomic, collection, images

    out = tmp_path / "out"

    class Killed(BaseException):
        pass

    def killed(*a, **k):
        raise Killed

    monkeypatch.setattr(os, "replace", killed)
    monkeypatch.setattr(os, "unlink", lambda *a, **k: None)  # a killed process cleans nothing up
    for write in (
        lambda: atomic.write_text(out / "alto" / "p.xml", "<alto/>"),
        lambda: images._save_png_atomic(Image.new("L", (8, 8)), out / ".work" / "p.png", None),
        lambda: atomic.write_text(out / ".state" / "p.json", "{}"),
    ):
        with pytest.raises(Killed):
            write()
    monkeypatch.undo()
    left = [p for p in out.rglob("*") if p.is_file()]
    assert len(left) == 3, left
    (out / ".work" / "p001.png").write_bytes(b"normalised page of a killed worker")
    (out / ".state" / "running").mkdir(parents=True)
    (out / ".state" / "running" / "p001").write_text("host:1")
    collection.sweep(out)
    assert [p for p in out.rglob("*") if p.is_file()] == []


# --------------------------------------------------------------------------- max_failures inside the flow


def _broken_pages(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"b{i:03d}.png").write_bytes(b"")  # an empty image: fails at load, in a worker


@pytest.mark.slow
def test_flow_stops_early_and_ends_failed_past_max_failures(tmp_path, prefect_harness):
    from flows.enrich import enrich_collection
    from htr.collection import EARLY_STOP_MIN_PAGES
    from htr.errors import RunFailed

    n = EARLY_STOP_MIN_PAGES + 20
    _broken_pages(tmp_path / "src", n)
    out = tmp_path / "out"
    state = enrich_collection(
        [str(tmp_path / "src")], str(out), {"workers": 1, "max_failures": 0.1, "entities": False}, return_state=True
    )
    assert state.is_failed()
    err = state.result(raise_on_failure=False)
    assert isinstance(err, RunFailed) and "more than --max-failures" in err.message
    s = err.summary
    assert s["status"] == "stopped" and s["pages"] == n
    assert EARLY_STOP_MIN_PAGES <= s["failed"] < n and s["pending"] == n - s["failed"], s
    doc = run_json(out)
    assert doc["status"] == "stopped" and [p["status"] for p in doc["pages"]].count("pending") == s["pending"]


@pytest.mark.slow
def test_small_flow_runs_to_its_end_then_ends_failed_like_the_command(tmp_path, prefect_harness):
    """Under EARLY_STOP_MIN_PAGES pages every page runs, then the flow run (a deployment's too) ends Failed."""
    from flows.enrich import enrich_collection

    _broken_pages(tmp_path / "src", 3)
    state = enrich_collection(
        [str(tmp_path / "src")],
        str(tmp_path / "out"),
        {"workers": 1, "max_failures": 0.5, "entities": False},
        return_state=True,
    )
    assert state.is_failed() and "above max_failures 50.0%" in state.message, state.message
    s = state.result(raise_on_failure=False).summary
    assert (s["status"], s["failed"], s["pending"]) == ("failed", 3, 0)
    assert run_json(tmp_path / "out")["status"] == "failed"


# --------------------------------------------------------------------------- run.json as the run goes, planning


def _plan(tmp_path: Path, n: int):
    from htr.collection import plan
    from htr.config import RunSettings

    src = tmp_path / "src"
    make_pages(src, n)
    events = []
    p = plan([str(src)], tmp_path / "out", RunSettings(entities=False), lambda *e: events.append(e))
    return p, events


def test_planning_reports_its_progress(tmp_path):
    p, events = _plan(tmp_path, 3)
    finding = [e for e in events if e[0] == "finding pages"]
    checking = [e for e in events if e[0] == "checking pages done before"]
    assert finding and all(total == 6 for _, _, total in finding)  # 3 images + 3 ALTO files looked at
    assert checking[-1] == ("checking pages done before", 3, 3) and len(checking) == 4


def test_run_json_is_rewritten_every_n_pages_or_seconds(tmp_path):
    from htr.config import RunSettings
    from htr.runrecord import RunRecord
    from htr.types import PageResult

    p, _ = _plan(tmp_path, 5)
    out = Path(p.output)
    now = [0.0]
    record = RunRecord(p, RunSettings(entities=False), every_pages=2, every_s=60.0, clock=lambda: now[0])
    statuses = lambda: [x["status"] for x in run_json(out)["pages"]]  # noqa: E731
    assert run_json(out)["status"] == "running" and statuses() == ["pending"] * 5
    done = lambda r: PageResult(r.id, r.source, r.index, r.sha256, "done")  # noqa: E731
    record.add(done(p.refs[0]))
    assert statuses() == ["done"] + ["pending"] * 4  # the run's first page: written at once
    record.add(done(p.refs[1]))
    assert statuses() == ["done"] + ["pending"] * 4  # not yet: 1 page, 0 s since
    record.add(done(p.refs[2]))
    assert statuses() == ["done"] * 3 + ["pending"] * 2  # 2 pages
    now[0] = 61.0
    record.add(done(p.refs[3]))  # 1 page since the last write, but 61 s
    assert statuses().count("done") == 4
    s = record.finish("completed")
    assert s["status"] == "completed" and run_json(out)["summary"]["pending"] == 1
    assert (out / "report.html").is_file() and not (out / ".state" / "reserve").exists()
    assert [f for f in out.rglob("*") if ".tmp-" in f.name] == []


# --------------------------------------------------------------------------- htr search errors


def test_search_rejects_a_bad_limit_and_json_errors_are_json(tmp_path, capsys):
    from cli.main import main
    from htr.index.store import rebuild

    out = tmp_path / "out"
    (out / "alto").mkdir(parents=True)
    shutil.copy(ROOT / "sample_images" / "gt" / "lettre_prefet_1934.xml", out / "alto" / "p.xml")
    rebuild(out)
    assert main(["search", str(out), "Maire"]) == 0 and "Maire" in capsys.readouterr().out  # there are hits
    assert main(["search", str(out), "Maire", "--limit", "-5"]) == 2
    o, e = capsys.readouterr()
    assert o == "" and one_line_error(e).endswith("--limit must be at least 1 (got -5)")
    assert main(["search", str(out), "Maire", "--limit", "0", "--json"]) == 2
    o, e = capsys.readouterr()
    assert json.loads(o) == {"query": "Maire", "error": "--limit must be at least 1 (got 0)"} and e == ""
    assert main(["search", str(tmp_path / "nowhere"), "Maire", "--json"]) == 2
    o, _ = capsys.readouterr()
    assert "no such output folder" in json.loads(o)["error"]
    assert main(["search", str(out), "NEAR(", "--json"]) == 2
    assert "error" in json.loads(capsys.readouterr().out)
    # `entities --limit -5` used to list all entries but the last five
    assert main(["entities", str(out), "--limit", "-5"]) == 2
    o, e = capsys.readouterr()
    assert o == "" and one_line_error(e).endswith("--limit must be 0 (all) or more (got -5)")
    assert main(["entities", str(out), "--limit", "0"]) == 0
