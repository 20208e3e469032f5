"""The release run (pipelines/configs/sealion-v4-27b-vl.yaml) as the pipeline takes it: every argument known and
well-typed, its settings valid for their steps, its suite loadable with the release's tasks and languages, and its
stages within the memory of the GPUs it asks for."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "pipelines" / "configs" / "sealion-v4-27b-vl.yaml"
SUITE = REPO / "pipelines" / "configs" / "sealion-v4-27b-vl-suite.yaml"


def _uris(value):
    if isinstance(value, str):
        return [value] if "://" in value else []
    if isinstance(value, dict):
        return [u for v in value.values() for u in _uris(v)]
    return []


def test_the_release_arguments_are_the_pipelines_and_live_in_one_bucket():
    from pipelines.cli import load_arguments

    args = load_arguments(CONFIG, [], None)          # unknown, mistyped or invalid settings raise here
    assert args["base_model"].endswith("gemma-sea-lion-v4-27b-it")
    assert set(args["reference_models"]) == {"gemma-3-27b-it"}
    assert all(u.startswith("s3://sealion-vl/") for u in _uris(args)), _uris(args)
    assert args["sft_validation"]["sample_size"] == 540_000
    world = args["train_gpus"] * args["train_nodes"]
    for stage in ("cpt_training", "sft_training"):
        t = args[stage]
        assert t["batch_size"] * t.get("grad_accum", 1) * world == 256   # the global batch the comments cite


def test_the_release_suite_names_the_release_tasks_and_languages():
    from components.evaluate.seahelm.suite import load_suite

    runs = {(task, lang) for task, lang, *_ in load_suite(str(SUITE)).runs()}
    assert {("marvl", "id"), ("marvl", "ta")} <= runs
    assert {("cvqa", lang) for lang in ("id", "ms", "ta", "tl", "zh", "jv", "su")} <= runs
    assert {lang for task, lang in runs if task.startswith("xm3600")} >= {"zh", "th", "vi", "id", "en"}
    assert {lang for task, lang in runs if task.startswith("world_cuisine")} >= {"en", "id", "th", "tl", "zh", "jv",
                                                                                 "su"}
    assert {"nli", "sentiment", "qa", "translation-en-xx"} <= {task for task, _ in runs}   # text: what the base had


def test_both_stages_fit_the_gpus_the_release_asks_for():
    from components.train import plan
    from pipelines.cli import load_arguments

    args = load_arguments(CONFIG, [], None)
    for stage in ("cpt_training", "sft_training"):
        t = args[stage]
        req = plan.Request(model="gemma-3-27b", gpus=args["train_gpus"], nodes=args["train_nodes"],
                           batch=t["batch_size"], seq_len=t["max_length"],
                           activation_checkpointing=t["activation_checkpointing"], freeze_vision=t["freeze_vision"])
        assert plan.plan(req, with_advice=False).fits, stage
        one_node = plan.plan(plan.Request(**{**req.__dict__, "nodes": 1}), with_advice=False)
        assert not one_node.fits      # why it asks for more than one node
