"""The cost prediction's parts (pipelines/cost.py): the GPU and MFU it assumes and says, the record count it
estimates from a sample of an input, and how a stage's cost follows its settings."""
from __future__ import annotations

import json
import statistics

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.train.loop import TrainConfig
from components.train.plan import counts, named_config
from pipelines import cost
from pipelines.check import gpu_memory_of

H200 = {"nvidia.com/gpu.product": "NVIDIA-H200"}


def test_the_gpu_comes_from_the_node_selector_and_an_unknown_one_is_said_to_be_assumed(tmp_path):
    missing = tmp_path / "none.json"
    tp = cost.throughput(H200, missing)
    assert (tp.accelerator, tp.peak, tp.mfu) == ("NVIDIA-H200", 989e12, 0.30)
    assert gpu_memory_of(H200) == (141.0, "NVIDIA-H200")
    assert gpu_memory_of({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"})[0] == 40.0
    unknown = cost.throughput({"nvidia.com/gpu.product": "Tesla-K80"}, missing)
    assert unknown.accelerator == "H100 (assumed: Tesla-K80 is not a known GPU)" and unknown.peak == 989e12
    assert "train_node_selector names no GPU product" in cost.throughput({}, missing).accelerator
    assert "eval_node_selector names no GPU product" in cost.throughput({}, missing, "eval_node_selector").accelerator
    assert gpu_memory_of({})[0] == 80.0 and "assumed" in gpu_memory_of({})[1]


def test_a_recorded_measurement_replaces_the_reference_mfu_and_is_named(tmp_path):
    record = tmp_path / "measured-mfu.json"
    record.write_text(json.dumps({"mfu": 0.41, "device": "NVIDIA H100 80GB HBM3", "date": "2026-12-01",
                                  "by": "tests/benchmarks/bench_trainer.py", "settings": "batch 8"}))
    tp = cost.throughput(H200, record)
    assert tp.mfu == 0.41 and "measured by tests/benchmarks/bench_trainer.py on NVIDIA H100 80GB HBM3" in tp.basis
    assert cost.throughput(H200, tmp_path / "absent.json").basis == cost.REFERENCE_BASIS
    assert tp.gpu_hours(0.41 * 989e12 * 3600) == pytest.approx(1.0)


def _conversation(i: int) -> dict:
    return {"id": str(i), "image": f"img/{i}.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat is in the picture?"},
        {"from": "gpt", "value": "A market by the river. " * (1 + i % 5)}]}


def test_the_record_count_is_estimated_from_a_spread_sample(tmp_path, monkeypatch):
    from components.validate_data import sources

    jsonl = tmp_path / "sft.jsonl"
    jsonl.write_text("".join(json.dumps(_conversation(i)) + "\n" for i in range(3000)))
    monkeypatch.setattr(sources, "JSONL_SPLIT_BYTES", jsonl.stat().st_size // 10)   # ten byte ranges
    sample = cost.sample_input(str(jsonl), records=100, units=5)
    assert (len(sample.rows), sample.read_from, sample.files) == (100, 1, 1)
    assert len({r["id"] for r in sample.rows}) == 100 and max(int(r["id"]) for r in sample.rows) > 2500   # spread
    assert sample.estimated_rows == pytest.approx(3000, rel=0.05), sample.how

    folder = tmp_path / "parquet"
    folder.mkdir()
    for n in range(3):
        pq.write_table(pa.table({"image": [f"{i}.jpg" for i in range(40 + n)], "caption": ["c"] * (40 + n)}),
                       folder / f"{n}.parquet")
    exact = cost.sample_input(str(folder), records=30, units=3)
    assert (exact.estimated_rows, exact.how) == (123, "exact, from the Parquet footers")


def _stage(**settings) -> float:
    config = named_config("gemma-3-27b")
    sample = cost.Sample([], 1, 1, 1000, "given")
    rows = [{"_kind": "captions", "caption": "Pasar terapung " * n, "lang": "id"} for n in (1, 5, 20)]
    cfg = TrainConfig(**{"max_steps": 100, "batch_size": 8, "freeze_vision": True, **settings})
    tp = cost.Throughput("H100", 989e12, 0.3, "assumed")
    return cost.training_cost("cpt", cfg, rows, lambda texts: [len(t.split()) for t in texts], config, 32, tp,
                              sample)


def test_a_stage_costs_in_proportion_to_its_steps_and_more_when_the_tower_trains():
    base = _stage()
    assert base.samples == 100 * 8 * 32 and base.hours == pytest.approx(base.gpu_hours / 32)
    assert _stage(max_steps=200).flops == pytest.approx(2 * base.flops)
    assert _stage(grad_accum=2).gpu_hours == pytest.approx(2 * base.gpu_hours)
    assert _stage(freeze_vision=False).flops > base.flops
    c = counts(named_config("gemma-3-27b"))
    assert base.flops > 6 * c.language_model * 256 * base.samples   # each sample: at least an image's 256 tokens
    assert base.image_tokens == base.samples * 256 and base.images == base.samples


def test_a_caption_sample_costs_about_six_flops_per_parameter_and_token():
    """The 27B model's CPT sample of ~300 tokens with its vision tower frozen: 6 FLOPs per language-model parameter
    and token, plus a few percent for attention and the frozen tower's forward pass (a factor-of-two error in any
    part shows here)."""
    config = named_config("gemma-3-27b")
    lm = counts(config).language_model
    cost_ = _stage()
    words = statistics.mean(len(("Pasar terapung " * n).split()) for n in (1, 5, 20))
    per_sample = cost_.flops / cost_.samples
    dense = 6 * lm * (words + 256 + len(["Tuliskan"]))   # a lower bound: the instruction has more words
    assert 1.0 < per_sample / dense < 1.15, per_sample / dense


def test_replay_samples_are_priced_at_their_own_length_and_share():
    """replay_fraction f puts f replay rows beside each row of the stage's own: 1/(1+f) of the samples are the
    stage's, the rest replay (text only here), and the passes over the input count only the stage's own."""
    config = named_config("gemma-3-27b")
    sample = cost.Sample([], 1, 1, 1000, "given")
    rows = [{"_kind": "captions", "caption": "Pasar terapung", "lang": "id"}]
    replay = [{"_kind": "conversations", "messages": [{"role": "user", "content": "kata " * 600},
                                                      {"role": "assistant", "content": "ya"}]}]
    tp = cost.Throughput("H100", 989e12, 0.3, "assumed")

    def stage(f, with_replay):
        cfg = TrainConfig(max_steps=100, batch_size=8, freeze_vision=True, replay_fraction=f)
        return cost.training_cost("cpt", cfg, rows, lambda texts: [len(t.split()) for t in texts], config, 32, tp,
                                  sample, replay if with_replay else None)

    alone, mixed = stage(0.0, False), stage(0.25, True)
    assert mixed.images == pytest.approx(alone.images * 0.8)   # replay rows carry no image
    assert mixed.flops > alone.flops and "20% of the samples replay" in mixed.basis
    assert "25.60 passes" in alone.basis and "20.48 passes" in mixed.basis


def test_evaluation_is_priced_on_its_own_gpus_backend_and_reply_cap():
    """Prompts at the MFU, replies at the speed of reading the weights once per decoding step of a batch: 100
    CVQA items in batches of 16 decode 7 x the task's limit steps. transformers uses one of its GPUs at a time,
    vLLM all of them; a slower card's bandwidth shows; a reply cap shortens the decoding."""
    from components.evaluate.seahelm.suite import Suite
    from components.evaluate.seahelm.tasks import Item

    suite = Suite(tasks={})
    loaded = {("cvqa", "id"): [Item(str(i), "A", {"question": "Apa ini?", "option_a": "a", "option_b": "b",
                                                  "option_c": "c", "option_d": "d"}) for i in range(100)]}
    words = lambda texts: [len(t.split()) for t in texts]  # noqa: E731
    full, capped = cost.evaluation_load(suite, loaded, words), cost.evaluation_load(suite, loaded, words, 1)
    limit = full.items[0][2]
    assert (full.decode_steps, full.batch, full.backend) == (7 * limit, 16, "transformers")
    assert capped.decode_steps == 7 and all(g == 1 for _, _, g in capped.items)
    assert all(n == 1 for _, n, _ in full.items)   # CVQA shows one image
    vllm = cost.evaluation_load(suite, loaded, words, 0, "vllm")
    assert (vllm.decode_steps, vllm.batch) == (limit, 128)
    config = named_config("gemma-3-27b")
    weights = 2 * counts(config).total
    h100 = cost.throughput({"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})
    on_h100 = cost.evaluation_cost("base", full, config, 2, h100)
    capped_h100 = cost.evaluation_cost("base", capped, config, 2, h100)
    # the same prompts: the difference is the decoding, 7 x (limit - 1) more steps, each a read of the weights
    assert on_h100.hours - capped_h100.hours == pytest.approx(7 * (limit - 1) * weights / 3.35e12 / 3600)
    assert on_h100.gpu_hours == pytest.approx(2 * on_h100.hours)   # two GPUs held, one at work at a time
    tensor_parallel = cost.evaluation_cost("base", vllm, config, 2, h100)
    assert tensor_parallel.gpu_hours == pytest.approx(2 * tensor_parallel.hours) and \
        tensor_parallel.hours < on_h100.hours / 2
    l40s = cost.throughput({"nvidia.com/gpu.product": "NVIDIA-L40S"})
    slower = cost.evaluation_cost("base", full, config, 2, l40s).hours / on_h100.hours
    assert 989 / 362 < slower < 3.35 / 0.864   # between the ratios of their compute and of their bandwidth
    assert capped_h100.flops < on_h100.flops
    assert "evaluation on NVIDIA-L40S" in cost.on_what(h100, l40s)


def test_shards_are_counted_from_img2datasets_stats_and_else_estimated_from_their_bytes(tmp_path):
    import io
    import tarfile

    from tests.support.corpus import jpeg

    def shard(path, n):
        with tarfile.open(path, "w") as tar:
            for k in range(n):
                for name, blob in ((f"{k:05d}.jpg", jpeg(k, grain=20)), (f"{k:05d}.txt", b"Pasar terapung"),
                                   (f"{k:05d}.json", b'{"lang": "id"}')):
                    info = tarfile.TarInfo(name)
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))

    for n in range(4):
        shard(tmp_path / f"{n:05d}.tar", 40)
    by_bytes = cost.sample_input(str(tmp_path), records=20, units=2)
    assert by_bytes.read_from == 2 and by_bytes.estimated_rows == pytest.approx(160, rel=0.15), by_bytes.how
    for n in range(4):
        (tmp_path / f"{n:05d}_stats.json").write_text(json.dumps({"successes": 40, "count": 41}))
    counted = cost.sample_input(str(tmp_path), records=20, units=2)
    assert (counted.estimated_rows, counted.how) == (160, "img2dataset's _stats.json of 2 of 4 shards x 4")
