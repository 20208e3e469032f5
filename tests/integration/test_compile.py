"""The compiled pipeline: what a user uploads in the Kubeflow UI."""
import yaml
from typer.testing import CliRunner

from pipelines.cli import app


def test_compile_writes_yaml_that_loads_back(tmp_path):
    out = tmp_path / "p.yaml"
    result = CliRunner().invoke(app, ["compile", "-o", str(out), "--image-registry", "registry.local/team"])
    assert result.exit_code == 0, result.output
    spec, platform = list(yaml.safe_load_all(out.read_text()))  # pipeline spec + Kubernetes platform spec
    assert "exit-handler-1" in spec["root"]["dag"]["tasks"] and "kubernetes" in platform["platforms"]
    comp_names = set(spec["components"])
    for step in ("validate-data", "train-cpt", "train-sft", "evaluate", "gate", "register", "promote", "finish-run"):
        assert f"comp-{step}" in comp_names
    params = spec["root"]["inputDefinitions"]["parameters"]
    # every parameter a user sees in the UI has a default; the commit is recorded at compile time
    assert all("defaultValue" in p for p in params.values())
    assert params["git_commit"]["defaultValue"] != ""
    assert params["cpt_max_steps"]["parameterType"] == "NUMBER_INTEGER"
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"registry.local/team/sealion-vl-gpu:0.1.0", "registry.local/team/sealion-vl-cpu:0.1.0"}
    # the pipeline loads back as a component
    from kfp import components

    loaded = components.load_component_from_file(str(out))
    assert "caption_manifest" in loaded.component_spec.inputs


def test_kubernetes_settings_are_compiled_in(tmp_path):
    out = tmp_path / "p.yaml"
    CliRunner().invoke(app, ["compile", "-o", str(out)])
    docs = list(yaml.safe_load_all(out.read_text()))
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    cpt = platform["exec-train-cpt"]
    assert cpt["secretAsEnv"][0]["secretName"] == "seavl-mlflow"
    assert cpt["tolerations"][0]["key"] == "nvidia.com/gpu"
    spec = docs[0]["deploymentSpec"]["executors"]["exec-train-cpt"]["container"]["resources"]
    assert spec["accelerator"]["resourceCount"] == "1"


def test_run_rejects_unknown_parameters(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("no_such_parameter: 1\n")
    result = CliRunner().invoke(app, ["run", "--config", str(cfg)])
    assert result.exit_code != 0 and "unknown pipeline parameter" in result.output


def test_overrides_are_typed_and_demo_paths_filled(tmp_path):
    from pipelines.cli import DEFAULT_CONFIG, load_arguments

    args = load_arguments(DEFAULT_CONFIG, ["cpt_learning_rate=2e-3", "cpt_max_steps=5", "languages=en,th"],
                          tmp_path)
    assert args["cpt_learning_rate"] == 0.002 and args["cpt_max_steps"] == 5 and args["languages"] == "en,th"
    assert args["base_model"] == f"{tmp_path}/base-model"
