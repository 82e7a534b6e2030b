"""The typed config: one loader and one override syntax for the pipeline and training configs; a
misspelled key, a wrong type or an unknown backend is one line naming the file and the key path,
before anything runs; the committed JSON schema is the generated one."""

import json
import subprocess
import sys

import pytest

import dataflux.cli
from dataflux.annotate.caption import CaptionConfig, OpenAICaptionConfig
from dataflux.cli import main
from dataflux.config import RunConfig, load_config, schema
from dataflux.llm.client import Endpoint, LocalEndpoint
from dataflux.settings import ConfigError, apply_overrides, parse_assignments
from dataflux.stages.generate import GenerateConfig, LocalWriterConfig, OpenAIWriterConfig
from dataflux.stages.verify import (AnalyzerAnswererConfig, EurekaAnswererConfig, LocalJudgeConfig,
                                    OpenAIAnswererConfig, OpenAIJudgeConfig, RulesJudgeConfig)
from tests.conftest import ROOT

DEMO = ROOT / "examples" / "demo.yaml"
TRAIN = ROOT / "examples" / "train-tiny.yaml"


def write(tmp_path, text: str, name: str = "c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_configs_load():
    config = load_config(DEMO)
    assert config.source == str((DEMO.parent / "demo_audio").resolve())  # relative to the file
    assert config.ingest.limits.max_clip_s == 30.0 and config.filter.policy.discard_split is True
    assert [a.stack for a in config.verify.answerers] == ["whisper", "signal"]
    assert isinstance(config.generate, GenerateConfig) and config.generate.writer == "template"
    from model.train import load_train_config

    train = load_train_config(TRAIN)
    assert train.corpora[0].run_dir == "../runs/demo" and train.corpora[0].ratio == 1.0
    assert train.lr == {"audio_tower": 0.0003, "adapter": 0.003, "language_model": 0.003} and train.lora is None


def test_sections_are_frozen_and_keep_tuples():
    config = load_config(None, ["annotate.skip=[asr, dnsmos]", "annotate.tags.rate_sps=[3, 7]"])
    assert config.annotate.skip == ("asr", "dnsmos") and config.annotate.tags.rate_sps == (3.0, 7.0)
    with pytest.raises(ValueError):
        config.annotate.batch_size = 3


@pytest.mark.parametrize("text, problem", [
    ("verify: {answerres: []}\n", "verify.answerres: unknown key (expected one of: answerers, judge,"),
    ("sourse: x\n", "sourse: unknown key (expected one of: source, out, runner,"),
    ("ingest: {limits: {max_clip: 3}}\n", "ingest.limits.max_clip: unknown key"),
    ("verify: {batch_size: many}\n", "verify.batch_size: Input should be a valid integer"),
    ("filter: {policy: {keep_consistency: STRONG_MATCH}}\n",
     "filter.policy.keep_consistency: Input should be a valid tuple"),
    ("verify: {judge: {backend: oracle}}\n",
     "verify.judge.backend: unknown value 'oracle' (expected one of: rules, local, openai, vllm, hf)"),
    ("generate: {writer: poet}\n",
     "generate.writer: unknown value 'poet' (expected one of: template, local, openai, vllm, hf)"),
    ("verify: {answerers: [{name: a, backend: analyzer}, {name: b, backend: psychic}]}\n",
     "verify.answerers.1.backend: unknown value 'psychic' (expected one of: analyzer, openai, eureka, vllm, hf)"),
    ("verify: {answerers: [{name: a, backend: analyzer, stak: signal}, {name: b, backend: analyzer}]}\n",
     "verify.answerers.0.stak: unknown key (expected one of: name, backend, stack)"),
    ("generate: {writer: openai, endpoint: {base_url: 'http://h/v1', model: m, concurency: 2}}\n",
     "generate.endpoint.concurency: unknown key (expected one of: base_url, model, api_key_env,"),
    ("generate: {writer: openai}\n", "generate.endpoint: Field required"),
    ("annotate: {resources: {asr: {gpus: 1}}}\n", "annotate.resources.asr.gpus: unknown key"),
    ("annotate: {resources: {whisper: {num_gpus: 1}}}\n", "annotate.resources.whisper: unknown key (expected 'decode'"),
    ("annotate: {caption: {backend: openai, model: m}}\n", "annotate.caption.base_url: Field required"),
    ("verify: {answerers: [{name: a, backend: analyzer}]}\n",
     "verify.answerers: Value error, verify needs at least two"),
    ("runner: spark\n", "runner: Input should be 'local' or 'ray'"),
    ("- a list\n", "the top level must be a mapping"),
])
def test_a_bad_config_is_one_line_naming_the_file_and_the_key(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and problem in message, message
    assert "\n" not in message


@pytest.mark.parametrize("text", ["verify: {answerres: []}\n", "sourse: x\n", "verify: {batch_size: many}\n",
                                  "verify: {judge: {backend: oracle}}\n"])
def test_dataflux_run_exits_2_with_one_line_before_anything_runs(tmp_path, capsys, monkeypatch, text):
    monkeypatch.setattr(dataflux.cli, "_run", lambda *a, **k: pytest.fail("the pipeline started"))
    path = write(tmp_path, text)
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    key = text.split(":")[0] if "{" not in text.split(":")[0] else ""
    assert err.count("\n") == 1 and err.startswith(f"dataflux: error: {path}: {key}"), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, problem", [
    ("max_step: 3\n", "max_step: unknown key (expected one of: model, whisper"),
    ("lora: {rank: 8}\n", "lora.rank: unknown key (expected one of: r, alpha, dropout, target_modules)"),
    ("lr: {adaptor: 0.1}\n", "lr.adaptor: unknown key (expected 'audio_tower', 'adapter' or 'language_model')"),
    ("corpora: [{run_dir: r, verson: 1}]\n", "corpora.0.verson: unknown key (expected one of: run_dir, version,"),
    ("batch_size: four\n", "batch_size: Input should be a valid integer"),
    ("freeze: half\n", "freeze: Input should be 'adapter-only' or 'full'"),
])
def test_dataflux_train_exits_2_with_one_line(tmp_path, capsys, monkeypatch, text, problem):
    import model.train

    monkeypatch.setattr(model.train, "train", lambda *a, **k: pytest.fail("training started"))
    path = write(tmp_path, text)
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"dataflux: error: {path}: {problem}" + err.split(problem, 1)[1] and err.count("\n") == 1, err


def test_the_processes_exit_2_without_a_traceback(tmp_path):
    bad = write(tmp_path, "verify: {answerres: []}\n")
    for command in (["run", "--config", bad, "--out", tmp_path / "run"],
                    ["train", "--config", write(tmp_path, "lora: {rank: 8}\n", "t.yaml")]):
        r = subprocess.run([sys.executable, "-m", "dataflux.cli", *map(str, command)], capture_output=True,
                           text=True, cwd=ROOT)
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert ("verify.answerres: unknown key" if command[0] == "run" else "lora.rank: unknown key") in r.stderr


def test_overrides_are_yaml_values_at_dotted_keys_applied_before_validation():
    assigned = parse_assignments(["verify.batch_size=8", "annotate.skip=[asr,dnsmos]", "out=runs/x=1", "ray_address="])
    assert assigned == {"verify.batch_size": 8, "annotate.skip": ["asr", "dnsmos"], "out": "runs/x=1",
                        "ray_address": None}
    data = {"verify": {"answerers": [{"name": "a"}, {"name": "b"}]}}
    assert apply_overrides(data, ["verify.answerers.1.stack=signal", "filter.policy.discard_split=false"]) == {
        "verify": {"answerers": [{"name": "a"}, {"name": "b", "stack": "signal"}]},
        "filter": {"policy": {"discard_split": False}}}
    assert data == {"verify": {"answerers": [{"name": "a"}, {"name": "b"}]}}  # the input is not changed
    config = load_config(DEMO, ["verify.batch_size=8", "annotate.skip=[asr,dnsmos]",
                                "verify.answerers.0.stack=signal", "generate.writer=openai",
                                "generate.endpoint={base_url: 'http://h/v1', model: m}"])
    assert config.verify.batch_size == 8 and config.annotate.skip == ("asr", "dnsmos")
    assert config.verify.answerers[0].stack == "signal"
    assert isinstance(config.generate, OpenAIWriterConfig) and config.generate.endpoint.model == "m"
    assert config.generate.questions_per_node == 5  # the rest of the section is the file's
    # a dict (flow parameters) takes values as they are; `source` from an override is not moved beside the file
    assert load_config(DEMO, {"source": "audio", "verify.batch_size": 3}).source == "audio"


@pytest.mark.parametrize("overrides, problem", [
    (["verify.batch_sise=8"], "examples/demo.yaml (override): verify.batch_sise: unknown key"),
    (["verify.batch_size=lots"], "examples/demo.yaml (override): verify.batch_size: Input should be a valid integer"),
    (["verify.judge.backend=oracle"], "examples/demo.yaml (override): verify.judge.backend: unknown value 'oracle'"),
    (["verify"], "override 'verify': expected section.key=value"),
    (["runner.mode=x"], "override runner.mode: runner is not a mapping"),
    (["verify.answerers.5.stack=signal"], "override verify.answerers.5.stack: '5' is not an index of a list of 2"),
    (["annotate.skip=[asr"], "override 'annotate.skip=[asr': the value is not valid YAML"),
])
def test_overrides_are_validated(overrides, problem):
    with pytest.raises(ConfigError) as e:
        load_config(DEMO, overrides)
    assert problem in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_the_cli_flags_and_set_go_through_the_loader(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(dataflux.cli, "_run", lambda config, until, args, command: seen.update(config=config) or 0)
    assert main(["run", "--config", str(DEMO), "--out", str(tmp_path / "r"), "--set", "verify.batch_size=4",
                 "--set", "annotate.skip=[asr]", "--runner", "ray", "--set", "runner=local"]) == 0
    config = seen["config"]
    assert (config.out, config.runner, config.verify.batch_size, config.annotate.skip) == (
        str(tmp_path / "r"), "ray", 4, ("asr",))  # a dedicated flag wins over --set
    assert main(["ingest", str(ROOT / "examples" / "demo_audio"), "--out", str(tmp_path / "r"),
                 "--set", "ingest.batch_size=2"]) == 0
    assert seen["config"].ingest.batch_size == 2 and seen["config"].source.endswith("demo_audio")

    import model.train

    monkeypatch.setattr(model.train, "train", lambda config, corpora, resume: seen.update(train=config) or {
        "steps": 0, "samples_seen": 0, "skipped_too_long": 0, "checkpoint": "c"})
    assert main(["train", "--config", str(TRAIN), "--max-steps", "3", "--set", "lora={r: 4}",
                 "--set", "lr.adapter=0.5", "--out", str(tmp_path / "t")]) == 0
    train = seen["train"]
    assert (train.max_steps, train.lora.r, train.lora.alpha, train.lr["adapter"], train.output_dir) == (
        3, 4, 16, 0.5, str(tmp_path / "t"))


def test_discriminated_unions_choose_the_backend_model():
    config = RunConfig.model_validate({
        "annotate": {"caption": {"backend": "openai", "model": "omni", "base_url": "http://h/v1"}},
        "generate": {"writer": "local"},
        "verify": {"answerers": [{"name": "a", "backend": "analyzer", "stack": "signal"},
                                 {"name": "b", "backend": "openai",
                                  "endpoint": {"base_url": "http://h/v1", "model": "m"}},
                                 {"name": "c", "backend": "eureka", "checkpoint": "ckpt/final"}],
                   "judge": {"backend": "openai", "endpoint": {"base_url": "http://j/v1", "model": "judge"},
                             "rules_dir": "rules"}}})
    assert isinstance(config.annotate.caption, OpenAICaptionConfig)
    assert isinstance(config.generate, LocalWriterConfig) and isinstance(config.generate.endpoint, LocalEndpoint)
    assert config.generate.endpoint.base_url is None  # the embedded server is started for the stage
    assert [type(a) for a in config.verify.answerers] == [AnalyzerAnswererConfig, OpenAIAnswererConfig,
                                                          EurekaAnswererConfig]
    assert isinstance(config.verify.answerers[1].endpoint, Endpoint)
    assert isinstance(config.verify.judge, OpenAIJudgeConfig) and config.verify.judge.rules_dir == "rules"
    # without the key, the first member is the default
    config = RunConfig.model_validate({"annotate": {"caption": {"seed": 3}}, "generate": {"questions_per_node": 2},
                                       "verify": {"judge": {}}})
    assert type(config.annotate.caption) is CaptionConfig and config.annotate.caption.seed == 3
    assert type(config.generate) is GenerateConfig and type(config.verify.judge) is RulesJudgeConfig
    assert type(RunConfig.model_validate({"verify": {"judge": {"backend": "local"}}}).verify.judge) is LocalJudgeConfig
    with pytest.raises(ValueError, match="rules_dir"):  # a field of another backend is an unknown key
        RunConfig.model_validate({"verify": {"judge": {"backend": "rules", "rules_dir": "x"}}})
    with pytest.raises(ValueError, match="needs its model name"):
        RunConfig.model_validate({"generate": {"writer": "local", "endpoint": {"base_url": "http://h/v1"}}})


def test_the_hash_covers_everything_but_the_run_folder():
    config = load_config(DEMO)
    assert config.hash() == config.model_copy(update={"out": "elsewhere"}).hash()
    assert config.hash() != load_config(DEMO, ["verify.batch_size=3"]).hash()
    assert config.hash() != load_config(DEMO, ["verify.answerers.1.stack=whisper"]).hash()
    assert config.hash() == load_config(DEMO).hash()  # stable across loads


def test_the_committed_schema_is_the_generated_one(capsys):
    committed = json.loads((ROOT / "docs" / "config.schema.json").read_text())
    assert committed == schema(), "regenerate: dataflux config schema > docs/config.schema.json"
    assert main(["config", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == committed
    assert committed["additionalProperties"] is False and "verify" in committed["properties"]
