"""`dataflux backfill` against a real Prefect server: it checks the partition choice, starts one run of
the `dataflux-backfill` deployment with absolute paths and the chosen partitions, and says which; with
the deployment missing it says how to register it. No worker serves the pool here: what the backfill
flow then does is tests/flows/test_watch.py's and test_run_folder_queue.py's.

The CLI runs in child processes (see tests/flows/test_cli_deploy.py for why)."""

import contextlib
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

DAYS = ["2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01"]


def _cli(local_prefect, *args):
    return subprocess.run([sys.executable, "-m", "dataflux.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env=local_prefect.env())


def test_backfill_starts_the_deployment_with_the_chosen_partitions(local_prefect, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    source = tmp_path / "audio"
    for day in DAYS:
        (source / day).mkdir(parents=True)
    (source / "notes.txt").write_text("a file, not a partition")
    common = ["backfill", "--source", str(source), "--run-dir", str(tmp_path / "runs"), "--config",
              "examples/demo.yaml"]
    r = _cli(local_prefect, *common, "--from", "2026-11-29")
    assert r.returncode == 2 and "argument --deployment: dataflux-backfill/dataflux-backfill is not on the Prefect " \
                                 "server (register it: dataflux deploy --only dataflux-backfill)" in r.stderr, r.stderr
    r = _cli(local_prefect, "deploy", "--only", "dataflux-backfill")
    assert r.returncode == 0, r.stderr[-3000:]
    started = []
    try:
        r = _cli(local_prefect, *common, "--from", "2026-11-29", "--to", "2026-11-30", "--max-concurrent", "3")
        assert r.returncode == 0, r.stderr[-3000:]
        m = re.search(r"started flow run (\S+) \(([0-9a-f-]{36})\) of dataflux-backfill/dataflux-backfill: "
                      r"2 partition\(s\), at most 3 at a time: 2026-11-29, 2026-11-30", r.stdout)
        assert m, r.stdout
        started.append(m.group(2))
        r = _cli(local_prefect, *common, "--partitions", "2026-12-01", "2026-11-28")
        assert r.returncode == 0, r.stderr[-3000:]
        m2 = re.search(r"\(([0-9a-f-]{36})\) of dataflux-backfill/dataflux-backfill: 2 partition\(s\), at most 2 "
                       r"at a time: 2026-11-28, 2026-12-01", r.stdout)
        assert m2, r.stdout
        started.append(m2.group(1))
        with get_client(sync_client=True) as client:
            by_range, by_list = (client.read_flow_run(i) for i in started)
            deployment = client.read_deployment_by_name("dataflux-backfill/dataflux-backfill")
        assert by_range.deployment_id == deployment.id and by_range.name == m.group(1)
        assert by_range.state.is_scheduled()  # queued for a worker on the deployment's pool
        assert by_range.parameters == {"source": str(source), "run_dir": str(tmp_path / "runs"),
                                       "config": str(ROOT / "examples" / "demo.yaml"), "max_concurrent": 3,
                                       "partitions_list": None, "start": "2026-11-29", "end": "2026-11-30"}
        assert by_list.parameters["partitions_list"] == ["2026-12-01", "2026-11-28"]
        assert (by_list.parameters["start"], by_list.parameters["max_concurrent"]) == (None, 2)
    finally:
        with get_client(sync_client=True) as client:  # the shared server: other tests count its deployments
            for run_id in started:
                client.delete_flow_run(run_id)
            with contextlib.suppress(ObjectNotFound):
                client.delete_deployment(client.read_deployment_by_name("dataflux-backfill/dataflux-backfill").id)
