"""Nothing the project reads back unpickles: not task results (which live beside a run folder that may be
shared), not checkpoints, not arrays, not caches."""

from __future__ import annotations

import ast
import base64
import json
import pickle

import pytest

from tests.conftest import ROOT

PACKAGES = ("dataflux", "storage", "verifiers", "model", "flows")


def calls(package_paths):
    for path in package_paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                yield path, node


def sources():
    return [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]


def keywords(node: ast.Call) -> dict:
    return {k.arg: k.value for k in node.keywords}


def is_true(value) -> bool:
    return isinstance(value, ast.Constant) and value.value is True


def test_no_reader_unpickles():
    """No pickle/cloudpickle/dill/joblib load, no pandas read_pickle, every torch.load passes
    weights_only=True, no numpy load with allow_pickle=True."""
    offenders = []
    for path, node in calls(sources()):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
        kw = keywords(node)
        if owner in ("pickle", "cloudpickle", "dill", "joblib", "_pickle") and name in ("load", "loads"):
            offenders.append(f"{path}:{node.lineno} {owner}.{name}")
        if name in ("read_pickle", "Unpickler"):
            offenders.append(f"{path}:{node.lineno} {name}")
        if owner == "torch" and name == "load" and not is_true(kw.get("weights_only")):
            offenders.append(f"{path}:{node.lineno} torch.load without weights_only=True")
        if owner in ("np", "numpy") and name == "load" and is_true(kw.get("allow_pickle")):
            offenders.append(f"{path}:{node.lineno} numpy load with allow_pickle=True")
    assert not offenders, offenders


def test_every_prefect_task_and_flow_persists_json():
    """Prefect's default result serializer is pickle: every @task and @flow in flows/ names the JSON one."""
    missing = []
    for path in (ROOT / "flows").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "id", "") in ("task", "flow"):
                    value = keywords(dec).get("result_serializer")
                    if not (isinstance(value, ast.Name) and value.id == "SERIALIZER"
                            or isinstance(value, ast.Constant) and value.value == "json"):
                        missing.append(f"{path.name}:{node.name}")
                elif getattr(dec, "id", "") in ("task", "flow"):
                    missing.append(f"{path.name}:{node.name} (bare @{dec.id})")
    assert not missing, missing


def test_the_results_store_reads_only_plain_json_records():
    from flows.results import UnsafeResult, check_record

    good = json.dumps({"metadata": {"serializer": {"type": "json"}}, "result": json.dumps({"stats": {"rows_in": 3}})})
    assert check_record(good.encode(), "x") == good.encode()
    pickled = json.dumps({"metadata": {"serializer": {"type": "pickle", "picklelib": "cloudpickle"}},
                          "result": "gAWVAAAAAA=="})
    objects = json.dumps({"metadata": {"serializer": {"type": "json"}},
                          "result": json.dumps({"x": [{"__class__": "os.system", "data": "true"}]})})
    for bad in (pickled, objects, "not json", json.dumps({"result": "{}"})):
        with pytest.raises(UnsafeResult):
            check_record(bad.encode(), "x")


class Boom:
    """Unpickling this writes a file: the proof that something unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (_touch, (self.marker,))


def _touch(path):
    open(path, "w").close()
    return {"stage": "pwned"}


@pytest.mark.slow
def test_a_planted_pickle_result_is_never_loaded(tmp_path, monkeypatch):
    """A real Prefect task, cached in the run folder's results store: replacing its record with a pickle
    record (as Prefect itself would write one) makes the next run compute again, never unpickle."""
    import cloudpickle
    from prefect import flow, task

    from flows.results import SERIALIZER, results_storage

    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    calls_made = []
    storage = results_storage(tmp_path)  # what the synthesize flow uses for a local run folder

    @task(cache_key_fn=lambda *_: "dataflux-test-key", persist_result=True, result_serializer=SERIALIZER,
          result_storage=storage)
    def step() -> dict:
        calls_made.append(1)
        return {"stage": "ok", "version": 3}

    @flow(result_serializer=SERIALIZER)
    def pipeline() -> dict:
        state = step(return_state=True)
        return {"result": state.result(), "state": state.name}

    first = pipeline()
    assert first == {"result": {"stage": "ok", "version": 3}, "state": "Completed"}
    record = tmp_path / ".prefect-results" / "dataflux-test-key"
    assert json.loads(record.read_bytes())["metadata"]["serializer"]["type"] == "json"
    assert pipeline()["state"] == "Cached" and len(calls_made) == 1  # the JSON record is read back

    marker = tmp_path / "unpickled"
    payload = cloudpickle.dumps(Boom(str(marker)))
    pickle.loads(payload)  # the payload really does run code when unpickled
    assert marker.exists()
    marker.unlink()

    record.write_text(json.dumps({"metadata": {"serializer": {"type": "pickle", "picklelib": "cloudpickle"},
                                               "storage_key": str(record), "prefect_version": "3.9.1"},
                                  "result": base64.b64encode(payload).decode()}))
    third = pipeline()
    assert not marker.exists(), "a planted pickle result was unpickled"
    assert third == {"result": {"stage": "ok", "version": 3}, "state": "Completed"} and len(calls_made) == 2
    assert json.loads(record.read_bytes())["metadata"]["serializer"]["type"] == "json"  # overwritten
