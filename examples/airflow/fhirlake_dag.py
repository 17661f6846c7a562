"""Nightly fhirlake runs, one Airflow task per source.

Each task runs

    fhirlake run --config CONFIG --source NAME --summary FILE --log-format json

and pushes the run summary (JSON) to XCom.

Retry policy. fhirlake's exit code says whether trying again can help:

    0    success                                   -> task succeeds, summary to XCom
    5    transient: network, 429, 5xx, max-wait    -> retry (Airflow retries)
    7    busy: another writer holds the warehouse,
         or another worker the source's lease      -> retry (Airflow retries)
    2    usage/config error                        -> fail now, no retry: fix the config
    3    authentication/authorization failed       -> fail now, no retry: fix credentials
    4    export failed or expired on the server    -> fail now; the next run starts a new export
    6    too many rejected lines/values            -> fail now; nothing was committed,
                                                      inspect the summary and fhirlake_rejects
    1    unclassified                              -> fail now, alert
    130  interrupted (SIGINT/SIGTERM)              -> fail now; rerunning resumes the same job

Why a Python task around subprocess and not BashOperator: BashOperator raises
the same AirflowException for every non-zero exit code, so `retries` would
also retry a wrong password or a broken config three times (and hammer the
payer's token endpoint). Its `skip_on_exit_code` marks the task *skipped*,
which hides the failure. Here the callable raises AirflowFailException for
the codes that must not be retried (Airflow fails the task at once, ignoring
`retries`) and a plain AirflowException for 5 and 7, so the normal
`retries`/`retry_delay` apply.

One warehouse has one writer. fhirlake locks WAREHOUSE.lock for the whole
run and exits 7 when another process holds it; this DAG avoids that instead
of retrying into it: max_active_runs=1 (no overlap between nights) and every
task in the pool POOL, which must have exactly one slot:

    airflow pools set fhirlake_warehouse 1 "one fhirlake writer per warehouse"

Give any other DAG or job that writes the same warehouse (a manual --full
reload, fhirlake load, fhirlake rebuild) the same pool. With several
warehouses, use one pool per warehouse.

Many workers, one lake (README, "Many workers, one lake"). With
SHARED_LAKE = True, every source has its own warehouse file
(WAREHOUSE_DIR/<source>/) and all of them publish to the Iceberg lake and
PostgreSQL catalog the config names. The tasks are then mapped dynamically,
one per source, and run at the same time on any workers (up to
MAX_PARALLEL). The lake holds each source's state: a task on a worker whose
disk lacks the source's warehouse (a new pod, another machine) restores the
source from the lake first, so WAREHOUSE_DIR need not be a persistent volume
(one saves the restore's read). A run leases its source in the catalog, so
two runs of one source never overlap (exit 7, retried, while another holds
it; a dead worker's lease expires after --lease-ttl). Concurrent commits to
the same Iceberg table are retried by fhirlake itself. No pool is needed.

Secrets. The config file refers to secrets as env:NAME. The task reads each
secret from an Airflow Connection (its password field, so it can live in a
secrets backend: Vault, AWS Secrets Manager, ...) and hands it to fhirlake in
the environment of the child process only. Nothing secret is on the command
line (visible in `ps` and in the task log) or in the rendered template.

Written for Airflow 2.7+ and Airflow 3 (the imports below pick the right
module); not tied to an executor.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pendulum

from airflow.exceptions import AirflowException, AirflowFailException

try:  # Airflow 3
    from airflow.sdk import DAG, Connection, task

    def _secret(conn_id: str) -> str:
        return Connection.get(conn_id).password
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.hooks.base import BaseHook

    def _secret(conn_id: str) -> str:
        return BaseHook.get_connection(conn_id).password


# --- Settings ---------------------------------------------------------------

FHIRLAKE = "/usr/local/bin/fhirlake"
CONFIG = "/etc/fhirlake/fhirlake.yaml"
# Run summaries, one file per source, Airflow run and try. Keep them: they are
# the per-run audit trail (counts and timings, no PHI).
SUMMARY_DIR = Path("/data/fhirlake/summaries")
POOL = "fhirlake_warehouse"

# Many warehouses, one lake: one warehouse per source under WAREHOUSE_DIR,
# sources in parallel (see the module's docstring).
SHARED_LAKE = False
WAREHOUSE_DIR = Path("/data/fhirlake/warehouses")
MAX_PARALLEL = 4

# The sources to run: name in the config file -> {environment variable named
# in the config as env:NAME: Airflow Connection id holding the secret}.
# This is the only place sources are listed.
SOURCES: dict[str, dict[str, str]] = {
    "bison-provider-access": {"BISON_PA_CLIENT_SECRET": "fhirlake_bison_provider_access"},
    "bison-payer-to-payer": {"BISON_P2P_CLIENT_SECRET": "fhirlake_bison_payer_to_payer"},
}

RETRYABLE = {5, 7}
MEANING = {
    1: "unclassified failure",
    2: "usage or configuration error: fix the config, do not retry",
    3: "authentication or authorization failed: check the credentials, do not retry",
    4: "export failed or expired on the server: the next run starts a new export",
    5: "transient failure (network, 429, 5xx, max-wait): safe to retry",
    6: "too many rejects: nothing was committed; inspect the summary and fhirlake_rejects",
    7: "busy: another fhirlake process writes the warehouse, or another worker runs the source; retry later",
    130: "interrupted: rerunning the same command resumes the same server job",
}

# Only what fhirlake needs from the worker's environment; the worker's own
# variables (Airflow's database URL, cloud credentials) are not passed on.
PASS_ENV = ("PATH", "HOME", "TZ", "LANG", "SSL_CERT_FILE", "SSL_CERT_DIR",
            "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")


# --- The task ---------------------------------------------------------------

@task(pool=POOL, multiple_outputs=False)
def run_source(source: str, ti=None) -> dict | list:
    """Run one source; return its run summary (pushed to XCom as return_value)."""
    run_key = re.sub(r"[^A-Za-z0-9_.-]", "_", ti.run_id)
    summary = SUMMARY_DIR / source / f"{run_key}.try{ti.try_number}.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.unlink(missing_ok=True)  # never report a previous attempt's summary

    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.update({var: _secret(conn_id) for var, conn_id in SOURCES[source].items()})

    cmd = [FHIRLAKE, "--log-format", "json", "run",
           "--config", CONFIG, "--source", source, "--summary", str(summary)]
    if SHARED_LAKE:
        warehouse = WAREHOUSE_DIR / source / "warehouse.duckdb"
        warehouse.parent.mkdir(parents=True, exist_ok=True)
        cmd += ["--warehouse", str(warehouse)]
    print("running:", " ".join(cmd))
    # JSON logs (stderr) and the result lines (stdout) go to the task log as
    # they come. fhirlake logs counts and ids, never resource content or tokens.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    try:
        for line in proc.stdout:
            print(line, end="")
        code = proc.wait()
    finally:
        # Airflow stops a task by raising inside it (execution_timeout, "mark
        # failed", worker shutdown). Do not leave fhirlake running and holding
        # the warehouse lock: SIGTERM makes it keep its job state and exit 130,
        # so the next try resumes the same server job.
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()

    result = _read_summary(summary)
    if code == 0:
        return result
    if result is not None:
        # Counts only, useful for the alert: rejects, export errors, timings.
        print("run summary:", json.dumps(result))
    message = f"fhirlake run --source {source} exited {code}: {MEANING.get(code, 'unknown exit code')}"
    if code in RETRYABLE:
        raise AirflowException(message)      # Airflow applies retries / retry_delay
    raise AirflowFailException(message)      # fails at once, retries are skipped


def _read_summary(path: Path) -> dict | list | None:
    """The run summary, made fit for XCom, or None when fhirlake wrote none.

    XCom lives in Airflow's metadata database and shows in the UI, so the
    list of back-filled Patient ids (member identifiers, possibly thousands)
    is replaced by its length; the file on disk keeps the full list.
    A payer-to-payer source may commit several runs (one per matched group),
    so a list of summaries is accepted too.
    """
    if not path.exists():
        return None
    data = json.loads(path.read_text())

    def slim(s: dict) -> dict:
        backfill = s.get("backfill") or {}
        if isinstance(backfill.get("patients"), list):
            s["backfill"] = {**backfill, "patients": len(backfill["patients"])}
        return s

    return [slim(s) for s in data] if isinstance(data, list) else slim(data)


# --- The DAG ----------------------------------------------------------------

with DAG(
    dag_id="fhirlake_nightly",
    description="Bulk FHIR $export from payer APIs into DuckDB and Parquet",
    schedule="0 2 * * *",                    # 02:00 every night, in start_date's time zone
    start_date=pendulum.datetime(2026, 1, 1, tz="America/New_York"),
    catchup=False,                           # watermarks make each run incremental; no backfill of missed nights
    max_active_runs=1,                       # one night at a time: one writer per warehouse
    default_args={
        "retries": 4,                        # only reached for exit codes 5 and 7
        "retry_delay": timedelta(minutes=10),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=2),
        # Longer than polling.max_wait in the config (24h), so that a slow
        # payer makes fhirlake give up by itself with exit 5 (retried, resumes
        # the same server job) rather than being killed by Airflow.
        "execution_timeout": timedelta(hours=26),
    },
    tags=["fhirlake", "etl"],
) as dag:
    if SHARED_LAKE:
        # One mapped task per source, in parallel: each writes its own
        # warehouse and its own sources of the shared lake.
        run_source.override(task_id="run_source", pool="default_pool",
                            max_active_tis_per_dag=MAX_PARALLEL).expand(source=list(SOURCES))
    else:
        # Independent tasks: a failing source does not hold up the others;
        # the one-slot pool runs them one after the other.
        for name in SOURCES:
            run_source.override(task_id=f"run_{name.replace('-', '_')}")(name)


# --- Alternative: KubernetesPodOperator --------------------------------------
#
# To run fhirlake in its own pod instead of on the worker (image with the
# fhirlake binary; the config from a ConfigMap; secrets from a Kubernetes
# Secret, exposed as the environment variables the config names):
#
# from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
# from kubernetes.client import models as k8s
#
# for name in SOURCES:
#     KubernetesPodOperator(
#         task_id=f"run_{name.replace('-', '_')}",
#         pool=POOL,
#         name=f"fhirlake-{name}",
#         image="registry.example.org/fhirlake:1.0.0",
#         cmds=["fhirlake"],
#         arguments=["--log-format", "json", "run", "--config", "/etc/fhirlake/fhirlake.yaml",
#                    "--source", name, "--summary", "/airflow/xcom/return.json"],
#         do_xcom_push=True,                   # the sidecar pushes /airflow/xcom/return.json to XCom
#         env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name="fhirlake-secrets"))],
#         volumes=[
#             k8s.V1Volume(name="data", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name="fhirlake-data")),
#             k8s.V1Volume(name="config", config_map=k8s.V1ConfigMapVolumeSource(name="fhirlake-config")),
#         ],
#         volume_mounts=[
#             k8s.V1VolumeMount(name="data", mount_path="/data/fhirlake"),
#             k8s.V1VolumeMount(name="config", mount_path="/etc/fhirlake", read_only=True),
#         ],
#     )
#
# Notes for the pod variant:
# - The PVC holds warehouse, lake and work_dir. work_dir must survive the pod
#   (not an emptyDir), or a retry cannot resume the server job. Use a
#   ReadWriteOnce block volume: the warehouse lock is a file lock, which is not
#   reliable on NFS/EFS-style shared file systems.
# - KubernetesPodOperator fails the task for every non-zero exit code, so
#   `retries` would retry 2, 3, 4 and 6 too. Keep the policy above by giving it
#   retries=0 and a wrapper: subclass it, call super().execute() in a try
#   block, and on failure read the container's exit code from the pod status
#   (pod.status.container_statuses[].state.terminated.exit_code); raise
#   AirflowException for 5/7 and AirflowFailException for the rest (then set
#   retries again). Or accept retries on every failure and rely on the alerts.
# - The summary file is the XCom: the sidecar reads /airflow/xcom/return.json.
#   It holds the back-filled Patient ids; write it elsewhere and push a slimmed
#   copy if those must stay out of the metadata database.
