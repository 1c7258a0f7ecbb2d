"""Deployment recipes (deploy/) checked by parsing them, and a real Prefect server on PostgreSQL.

The server test: PostgreSQL (initdb into a temp dir, loopback port), `prefect server start`
on it, a process work pool, `prefect deploy` of deploy/prefect.yaml's enrich-collection, a
`prefect worker`, a run triggered through the API (run_deployment), its ALTO checked; every
process it started is stopped by PID in a finally block.
"""

from __future__ import annotations

import inspect
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, need

DEPLOY = ROOT / "deploy"
PREFECT = str(Path(sys.executable).with_name("prefect"))
REQUIRED = {"enrich-collection", "watch-inbox", "train-model"}


# --------------------------------------------------------------------------- deploy/prefect.yaml


def _prefect_yaml() -> dict:
    return yaml.safe_load((DEPLOY / "prefect.yaml").read_text())


def test_prefect_yaml_matches_prefect_schema():
    from prefect.cli.deploy._models import PrefectYamlModel  # what `prefect deploy` itself validates with

    raw = _prefect_yaml()
    model = PrefectYamlModel.model_validate(raw)
    names = [d.name for d in model.deployments]
    assert REQUIRED <= set(names) and len(names) == len(set(names))
    assert raw["prefect-version"].startswith("3.9")
    for d in model.deployments:
        assert d.work_pool and d.work_pool.name in {"htr-cpu", "htr-gpu"}, d.name
    watch = next(d for d in model.deployments if d.name == "watch-inbox")
    assert watch.schedules and watch.schedules[0].cron == "*/15 * * * *"
    from prefect.client.schemas.schedules import CronSchedule

    CronSchedule(cron=watch.schedules[0].cron, timezone=watch.schedules[0].timezone)  # parses
    # the pull step moves a run into the code folder, read from the environment at deploy time
    assert raw["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $HTR_HOME }}"}}]


def test_prefect_yaml_entrypoints_are_flows_and_parameters_fit_their_signatures():
    from prefect import Flow
    from prefect.flows import load_flow_from_entrypoint

    from htr.config import RunSettings

    flow_names = {
        "flows/enrich.py:enrich_collection": "enrich-collection",
        "flows/watch.py:watch_inbox": "watch-inbox",
        "flows/train.py:train_model": "train-model",
    }
    cwd = os.getcwd()
    os.chdir(ROOT)  # entrypoints are relative to the repository root, as for `prefect deploy`
    try:
        for d in _prefect_yaml()["deployments"]:
            flow = load_flow_from_entrypoint(d["entrypoint"])
            assert isinstance(flow, Flow), d["entrypoint"]
            assert flow.name == flow_names[d["entrypoint"]]
            sig = inspect.signature(flow.fn)
            params = d.get("parameters", {})
            assert set(params) <= set(sig.parameters), (d["name"], set(params) - set(sig.parameters))
            required = {n for n, p in sig.parameters.items() if p.default is inspect.Parameter.empty}
            assert required <= set(params), (d["name"], required - set(params))
            sig.bind(**params)
            flow.validate_parameters(params)  # pydantic, as the server does with enforce_parameter_schema
            if "settings" in params:
                RunSettings(**params["settings"])  # strict: unknown keys are errors
    finally:
        os.chdir(cwd)


def test_prefect_deploy_cli_has_the_options_the_readme_uses():
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    out = subprocess.run([PREFECT, "deploy", "--help"], capture_output=True, text=True, env=env, timeout=120).stdout
    for opt in ("--prefect-file", "--all", "--name", "--pool", "--no-prompt"):
        assert opt in out, opt
    out = subprocess.run(
        [PREFECT, "work-pool", "create", "--help"], capture_output=True, text=True, env=env, timeout=120
    ).stdout
    for opt in ("--type", "--overwrite", "--base-job-template"):
        assert opt in out, opt


# --------------------------------------------------------------------------- compose and Kubernetes


def test_compose_file_is_consistent():
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = doc["services"]
    assert {
        "postgres",
        "prefect-server",
        "setup",
        "worker",
        "dask-scheduler",
        "dask-worker",
        "worker-gpu",
        "dask-worker-gpu",
    } <= set(services)
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, (name, dep)
        if name != "postgres":
            assert svc["environment"]["PREFECT_API_URL"].endswith("/api"), name
            assert "${HTR_DATA:-./data}:/data" in svc["volumes"], name
        build = svc.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file(), name
            assert ("cuda" in build["dockerfile"]) == (svc["image"] == "htr-enrich:cuda"), name
    url = services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in url
    pools = {d["work_pool"]["name"] for d in _prefect_yaml()["deployments"]}
    setup = " ".join(services["setup"]["command"])
    for pool in pools:
        assert f"work-pool create {pool} --type process" in setup
    assert "--prefect-file deploy/prefect.yaml" in setup
    assert "--resources" in services["dask-worker-gpu"]["command"] and "GPU=1" in services["dask-worker-gpu"]["command"]
    assert services["dask-worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "torch==2.14.0 torchvision==0.29.0" in (DEPLOY / "Dockerfile.cpu").read_text()  # as pyproject.toml
    for f in ("Dockerfile.cpu", "Dockerfile.cuda"):
        text = (DEPLOY / f).read_text()
        assert "pip install -e . -r deploy/requirements-scaleout.txt" in text, f
        for copied in re.findall(r"^COPY (\S+)", text, re.M):
            assert (ROOT / copied).exists() or copied in ("models",), (f, copied)
    if shutil.which("docker-compose") or _docker_compose_v2():
        cmd = ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]
        r = subprocess.run(
            [*cmd, "-f", str(DEPLOY / "compose.yaml"), "--profile", "gpu", "config", "--quiet"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr


def _docker_compose_v2() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0


def test_kubernetes_job_template_renders_a_job():
    from prefect.utilities.templating import apply_values, find_placeholders

    tpl = json.loads((DEPLOY / "kubernetes" / "base-job-template.json").read_text())
    props = tpl["variables"]["properties"]
    used = {p.name for p in find_placeholders(tpl["job_configuration"])}
    assert used <= set(props), used - set(props)
    defaults = {k: v["default"] for k, v in props.items() if "default" in v}
    job = apply_values(tpl["job_configuration"], defaults, remove_notset=True)
    m = job["job_manifest"]
    assert (m["apiVersion"], m["kind"]) == ("batch/v1", "Job")
    pod = m["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    c = pod["containers"][0]
    assert c["name"] == "prefect-job" and c["image"].endswith("htr-enrich:cpu")
    assert c["resources"]["limits"]["memory"] == "9Gi" and c["resources"]["limits"]["nvidia.com/gpu"] == 0
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "htr-data"
    assert {"/data"} <= {v["mountPath"] for v in c["volumeMounts"]}
    pvc = yaml.safe_load((DEPLOY / "kubernetes" / "data-pvc.yaml").read_text())
    assert pvc["metadata"]["name"] == "htr-data" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]


# --------------------------------------------------------------------------- a real server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").exists() and (d / "postgres").exists():
            return d
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found and shutil.which("pg_ctl") else None


def _wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[:3]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.kraken
def test_enrich_collection_deployed_on_a_postgres_backed_server(tmp_path, schemas_dir):
    """PostgreSQL, `prefect server start` on it, `prefect deploy` of deploy/prefect.yaml, a process worker:
    a run triggered through the API completes and writes the page's schema-valid ALTO."""
    from htr.errors import ModelError
    from htr.models import models_dir, resolve

    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, postgres) missing: apt-get install postgresql")
    try:
        model = resolve("default")
    except ModelError as e:
        pytest.skip(f"no recognition model 'default' in {models_dir()} (set HTR_MODELS_DIR): {e}")
    xsd = need(schemas_dir / "alto-4-4.xsd", "ALTO 4.4 schema")

    # postgres refuses to run as root: run it as the `postgres` system user, in a folder it owns
    as_user: dict = {}
    pgdir = Path(tempfile.mkdtemp(prefix="htr-pg-"))
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no `postgres` user to run PostgreSQL as")
        os.chown(pgdir, pw.pw_uid, pw.pw_gid)
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    procs: list[subprocess.Popen] = []
    logs: list = []

    def start(cmd: list[str], name: str, **kw) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "wb")
        logs.append(log)
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kw)
        procs.append(p)
        return p

    pg_port, api_port = _free_port(), _free_port()
    api = f"http://127.0.0.1:{api_port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(
        {
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_API_URL": api,
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            "HTR_HOME": str(ROOT),  # read by deploy/prefect.yaml's pull step
        }
    )
    t0 = time.monotonic()
    try:
        data = pgdir / "data"
        subprocess.run(
            [str(pg / "initdb"), "-D", str(data), "-U", "prefect", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=pgdir,
            **as_user,
        )
        postgres = start(
            [
                str(pg / "postgres"),
                "-D",
                str(data),
                "-p",
                str(pg_port),
                "-k",
                str(pgdir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            "postgres",
            cwd=pgdir,
            **as_user,
        )
        deadline = time.monotonic() + 60
        while (
            subprocess.run(
                [str(pg / "pg_isready"), "-h", "127.0.0.1", "-p", str(pg_port)], capture_output=True
            ).returncode
            != 0
        ):
            assert postgres.poll() is None and time.monotonic() < deadline, (tmp_path / "postgres.log").read_text()
            time.sleep(0.3)
        subprocess.run(
            [str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "prefect", "prefect"],
            check=True,
            capture_output=True,
            timeout=60,
        )

        server_env = {
            **env,
            "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://prefect@127.0.0.1:{pg_port}/prefect",
        }
        server_env.pop("PREFECT_API_URL")
        server = start(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(api_port), "--no-ui"],
            "server",
            env=server_env,
        )
        _wait_http(f"{api}/health", server, 150, tmp_path / "server.log")
        t_server = time.monotonic() - t0

        def cli(*args: str) -> str:
            r = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
            assert r.returncode == 0, f"prefect {' '.join(args)}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
            return r.stdout

        cli("work-pool", "create", "htr-cpu", "--type", "process")
        cli("--no-prompt", "deploy", "--name", "enrich-collection", "--prefect-file", "deploy/prefect.yaml")
        worker = start(
            [PREFECT, "worker", "start", "--pool", "htr-cpu", "--type", "process", "--limit", "1"],
            "worker",
            env=env,
            cwd=tmp_path,
        )

        src = tmp_path / "src"
        src.mkdir()
        shutil.copy(ROOT / "sample_images" / "lettre_prefet_1934.jpg", src / "lettre_prefet_1934.jpg")
        # its lines as ALTO, re-read (what is checked is the deployment, not how Kraken finds lines)
        shutil.copy(ROOT / "sample_images" / "gt" / "lettre_prefet_1934.xml", src / "lettre_prefet_1934.xml")
        out = tmp_path / "out"
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: api}):
            run = run_deployment(
                "enrich-collection/enrich-collection",
                parameters={
                    "sources": [str(src)],
                    "output": str(out),
                    "settings": {"workers": 1, "recognize": {"model": model.path}, "segmentation_from": "alto"},
                },
                timeout=170 - (time.monotonic() - t0),
            )
        assert run.state is not None and run.state.is_completed(), (
            f"{run.state}\nworker log:\n{(tmp_path / 'worker.log').read_text()[-4000:]}"
        )
        assert worker.poll() is None
        from alto.validate import validate_file

        altos = sorted((out / "alto").glob("*.xml"))
        assert [a.stem for a in altos] == ["lettre_prefet_1934"]
        assert validate_file(altos[0], xsd_path=xsd) == []
        pages = json.loads((out / "run.json").read_text())["pages"]
        assert [p["status"] for p in pages] == ["done"]
        print(f"server healthy after {t_server:.0f} s; whole test {time.monotonic() - t0:.0f} s")
    finally:
        for p in reversed(procs):  # worker (and its flow-run subprocess), server, postgres: by PID
            if p.poll() is None:
                p.send_signal(signal.SIGINT if p.args[0].endswith("postgres") else signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            try:  # children left in the process group we created (a flow run of the worker)
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for log in logs:
            log.close()
        shutil.rmtree(pgdir, ignore_errors=True)
