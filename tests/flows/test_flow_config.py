"""A flow run with a bad config fails at once, with one line that names the key path; overrides given
as flow parameters go through the same loader as `dataflux run --set`."""

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # a Prefect flow run in ephemeral mode (~10 s)


@pytest.mark.parametrize("change, expected", [
    ({"verify": {"answerres": []}}, "verify.answerres: unknown key"),
    ({"filter": {"max_rounds": "many"}}, "filter.max_rounds"),
])
def test_a_bad_config_fails_the_flow_run_naming_the_key(tmp_path, monkeypatch, change, expected):
    from flows.synthesize import synthesize

    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    demo = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    for section, values in change.items():
        demo[section] = {**demo.get(section, {}), **values}
    demo["source"] = str(ROOT / "examples" / "demo_audio")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(demo))
    state = synthesize(config=str(bad), run_dir=str(tmp_path / "run"), return_state=True)
    assert state.is_failed()
    message = str(state.message) + " " + repr(state.result(raise_on_failure=False))
    assert expected in message and str(bad) in message, message
    assert not (tmp_path / "run").exists()  # refused before anything ran


def test_an_override_parameter_is_validated_like_set(tmp_path, monkeypatch):
    from flows.synthesize import synthesize

    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    state = synthesize(config=str(ROOT / "examples" / "demo.yaml"), run_dir=str(tmp_path / "run"),
                       overrides=["verify.batch_size=-x"], return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert "verify.batch_size" in str(error) and "\n" not in str(error).strip(), error
    assert not (tmp_path / "run").exists()
