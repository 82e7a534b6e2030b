"""A flow run with a bad config fails at once, with one line that names the key path; overrides given
as flow parameters go through the same loader as `dataflux run --set`.

The flow runs in a child process against the shared local Prefect server: an in-process flow run
would leave Prefect's console logging bound to this test's captured stream for the tests after it."""

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

CHILD = """
import json, sys
from flows.synthesize import synthesize
out = []
for config, run_dir, overrides in json.loads(sys.argv[1]):
    state = synthesize(config=config, run_dir=run_dir, overrides=overrides, return_state=True)
    out.append({"failed": state.is_failed(), "error": str(state.result(raise_on_failure=False))})
print("RESULT " + json.dumps(out))
"""


def test_bad_configs_fail_the_flow_run_naming_the_key(local_prefect, tmp_path):
    cases, expected = [], []
    for i, (change, text) in enumerate([({"verify": {"answerres": []}}, "verify.answerres: unknown key"),
                                        ({"filter": {"max_rounds": "many"}}, "filter.max_rounds")]):
        demo = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
        for section, values in change.items():
            demo[section] = {**demo.get(section, {}), **values}
        demo["source"] = str(ROOT / "examples" / "demo_audio")
        bad = tmp_path / f"bad{i}.yaml"
        bad.write_text(yaml.safe_dump(demo))
        cases.append([str(bad), str(tmp_path / f"run{i}"), None])
        expected.append((text, str(bad)))
    cases.append([str(ROOT / "examples" / "demo.yaml"), str(tmp_path / "run2"), ["verify.batch_size=-x"]])
    expected.append(("verify.batch_size", "override"))
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    line = next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))
    results = json.loads(line.removeprefix("RESULT "))
    for (text, where), got, case in zip(expected, results, cases):
        assert got["failed"], got
        assert text in got["error"] and where in got["error"] and "\n" not in got["error"].strip(), got
        assert not (tmp_path / case[1]).exists()  # refused before anything ran
