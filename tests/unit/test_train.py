"""The trainer on the tiny model: it learns, saves bf16, resumes exactly after SIGKILL (one process and two FSDP2
processes), normalises the loss over the accumulated batch, keeps Gemma 3's masks in length-grouped batches,
streams its data from a resumable position, and refuses what it cannot use."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from components.train import recipes
from components.train.loop import TrainConfig
from tests.support.weights import assert_same_weights, load_weights

SEAVL = [sys.executable, "-m", "pipelines.cli"]


def test_cpt_loss_falls_and_the_model_is_saved_in_bf16(demo, curated, tmp_path):
    logged = []
    cfg = TrainConfig(max_steps=30, batch_size=8, learning_rate=2e-3, warmup_steps=5, log_every=10)
    result = recipes.cpt(demo.base_model, curated, tmp_path / "model", cfg, lambda m, s: logged.append((s, m)))
    assert result.steps == 30 and result.samples == 256
    # The base has never seen an image prompt: caption loss starts high and falls by more than half.
    assert result.first_loss > 2.0 and result.final_loss < result.first_loss / 2
    assert [s for s, _ in logged] == [10, 20, 30]
    assert {"train/loss", "train/lr", "train/grad_norm", "train/samples_per_s", "train/tokens_per_s",
            "train/padding_fraction"} <= set(logged[0][1])
    # length-grouped batches: at most 5% of the token slots are padding
    assert all(m["train/padding_fraction"] <= 0.05 for _, m in logged)
    weights = load_weights(tmp_path / "model")
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.bfloat16}
    assert json.loads((tmp_path / "model" / "config.json").read_text())["dtype"] == "bfloat16"
    assert (tmp_path / "model" / "processor_config.json").exists()
    # what the tracking wrapper logs: the config as params, first/final loss and wall time on the pipeline run
    logged_run = result.logged("cpt", cfg, init_model=demo.base_model, data=curated)
    assert logged_run.params["max_steps"] == 30 and logged_run.params["data"] == curated
    assert logged_run.pipeline_metrics["cpt/final_loss"] == result.final_loss


def _train_cmd(demo, curated, out, *extra):
    return [*SEAVL, "train", "cpt", "--init-model", demo.base_model, "--data", curated, "--out", str(out),
            "--set", "max_steps=24", "--set", "batch_size=8", "--set", "save_dtype=fp32", "--set", "warmup_steps=4",
            *extra]


def _kill_after(cmd: list[str], marker: Path, timeout: float = 240, delay: float = 0.0) -> None:
    """Start `cmd`, SIGKILL its whole process group `delay` seconds after `marker` exists."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(delay)
    assert proc.poll() is None, "training ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "two-processes-fsdp2"])
def test_sigkill_then_restart_ends_with_the_uninterrupted_weights(demo, curated, tmp_path, processes, figure):
    """kill -9 at a random moment after the step-8 checkpoint, then the same command again: it resumes at the last
    complete checkpoint (model, optimizer, scheduler, RNG and data position) and ends bit for bit where an
    uninterrupted run ends. With two processes the model is sharded by FSDP2 over gloo and the checkpoint is
    written in shards."""
    import random

    par = ["--processes", str(processes)]
    started = time.perf_counter()
    subprocess.run(_train_cmd(demo, curated, tmp_path / "full", *par), check=True, capture_output=True)
    uninterrupted = time.perf_counter() - started
    resumable = _train_cmd(demo, curated, tmp_path / "resumed", "--checkpoint-uri", str(tmp_path / "ckpt"),
                           "--set", "checkpoint_every=8", *par)
    started = time.perf_counter()
    _kill_after(resumable, tmp_path / "ckpt" / "step-00000008" / "COMPLETE", delay=random.uniform(0, 0.5))
    written = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    last = max(int(p.parent.name[5:]) for p in (tmp_path / "ckpt").glob("step-*/COMPLETE"))
    time.sleep(1.5)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == written   # no worker outlived the kill
    assert not (tmp_path / "resumed" / "config.json").exists()
    done = subprocess.run(resumable, check=True, capture_output=True, text=True)
    interrupted = time.perf_counter() - started
    assert "resumed from" in done.stderr and f"step-{last:08d} at step {last}" in done.stderr
    assert "24 steps" in done.stdout
    assert_same_weights(load_weights(tmp_path / "full"), load_weights(tmp_path / "resumed"))
    shards = list((tmp_path / "ckpt").glob("step-*/*.distcp"))
    assert len({p.name for p in shards}) == processes   # one shard file per rank
    figure(f"kill -9 at a random moment after the step-8 checkpoint (resumed at step {last}), {processes} "
           f"process(es): killed and resumed run "
           f"{interrupted:.1f} s against {uninterrupted:.1f} s uninterrupted, {interrupted - uninterrupted:.1f} s "
           f"lost (a restart, and the steps since the checkpoint); same final weights")


def test_workers_and_activation_checkpointing_change_nothing_but_speed_and_memory(demo, curated, tmp_path):
    """DataLoader workers take turns and DataLoader interleaves them back: the same batches in the same order.
    Recomputing activations in backward gives the same gradients."""
    cfg = TrainConfig(max_steps=4, batch_size=8, warmup_steps=1)
    plain = recipes.cpt(demo.base_model, curated, tmp_path / "a", cfg)
    workers = recipes.cpt(demo.base_model, curated, tmp_path / "b", cfg.model_copy(update={"num_workers": 2}))
    recomputed = recipes.cpt(demo.base_model, curated, tmp_path / "c",
                             cfg.model_copy(update={"activation_checkpointing": True}))
    assert workers.losses == plain.losses
    assert recomputed.losses == pytest.approx(plain.losses, rel=1e-5)


def test_two_fsdp2_processes_stay_in_step_when_one_has_a_batch_without_images(demo, curated, tmp_path):
    """Text replay makes whole batches without images. Such a batch would skip the sharded vision layers'
    collectives on one rank while the other runs them (a hang, or gloo's "collective mismatch")."""
    from itertools import islice

    from components.train.data import Stream, micro_batches

    replay = str(demo.root / "data" / "text.jsonl")
    settings = dict(batch_size=4, window_batches=4, replay_fraction=0.5, seed=0)
    stream = Stream("captions", curated, replay_uri=replay, **settings)

    def text_only(rank):
        return [all(r["_kind"] == "replay" for r in b) for _, b in islice(micro_batches(stream, rank, 2, 0), 12)]

    assert any(a != b for a, b in zip(text_only(0), text_only(1), strict=True))   # the case arises in 12 steps
    sets = [f"{k}={v}" for k, v in {**settings, "max_steps": 12, "replay_data": replay}.items()]
    done = subprocess.run([*SEAVL, "train", "cpt", "--init-model", demo.base_model, "--data", curated, "--out",
                           str(tmp_path / "m"), "--processes", "2", *[a for kv in sets for a in ("--set", kv)]],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "12 steps" in done.stdout


def test_checkpoints_keep_the_last_k_and_skip_incomplete_ones(demo, curated, tmp_path):
    ckpt = tmp_path / "ckpt"
    cfg = TrainConfig(max_steps=10, batch_size=8, checkpoint_every=2, keep_checkpoints=2, warmup_steps=2)
    recipes.cpt(demo.base_model, curated, tmp_path / "m", cfg, checkpoint_uri=str(ckpt))
    assert sorted(p.name for p in ckpt.iterdir()) == ["step-00000006", "step-00000008"]
    # a checkpoint cut off while being written (no COMPLETE marker) is never resumed from
    (ckpt / "step-00000008" / "COMPLETE").unlink()
    from components.train.checkpoints import Checkpoints

    found = Checkpoints(str(ckpt), identity=json.loads((ckpt / "step-00000006" / "trainer.json").read_text())
                        ["identity"]).latest()
    assert found.endswith("step-00000006")


def _mounts_allowed() -> bool:
    return subprocess.run(["unshare", "--mount", "--map-root-user", "true"], capture_output=True).returncode == 0


def test_a_full_disk_while_checkpointing_is_named_and_the_previous_checkpoint_is_resumed(demo, curated, tmp_path,
                                                                                        figure):
    """Checkpoints on a tmpfs with room for one and a half: step 2 is written, step 4 meets a full disk. The run
    stops naming the disk and the intact step-2 checkpoint, and leaves nothing of step 4; on a larger disk the
    same command resumes at step 2 and ends with the weights of an uninterrupted run. (A private mount namespace:
    the tmpfs is real, and gone when the test ends.)"""
    assert _mounts_allowed(), "unshare --mount --map-root-user is needed to mount a small tmpfs"
    sets = ["--set", "max_steps=5", "--set", "checkpoint_every=2", "--set", "keep_checkpoints=2"]
    full = subprocess.run([*_train_cmd(demo, curated, tmp_path / "full", *sets),
                           "--checkpoint-uri", str(tmp_path / "ref-ckpt")], capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-2000:]
    one = sum(p.stat().st_size for p in (tmp_path / "ref-ckpt" / "step-00000002").iterdir())
    disk = tmp_path / "disk"
    disk.mkdir()
    cmd = " ".join(f"'{a}'" for a in [*_train_cmd(demo, curated, tmp_path / "resumed", *sets),
                                      "--checkpoint-uri", str(disk)])
    script = f"""
        mount -t tmpfs -o size={one * 3 // 2} seavl-full {disk}
        {cmd} > {tmp_path}/1.out 2> {tmp_path}/1.err; echo $? > {tmp_path}/1.rc
        ls -R {disk} > {tmp_path}/1.ls
        mount -o remount,size={one * 4} {disk}
        started=$(date +%s.%N)
        {cmd} > {tmp_path}/2.out 2> {tmp_path}/2.err; echo $? > {tmp_path}/2.rc
        echo "$started $(date +%s.%N)" > {tmp_path}/2.time
    """
    subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", script], check=True, timeout=600)
    read = lambda name: (tmp_path / name).read_text()  # noqa: E731
    assert read("1.rc").strip() != "0"
    err = read("1.err")
    assert "checkpoint step 4 could not be written" in err and "No space left on device" in err, err[-2000:]
    assert "the last complete checkpoint, step 2, is intact" in err and "Traceback" not in err
    listing = read("1.ls")
    assert "step-00000002" in listing and "COMPLETE" in listing and "step-00000004" not in listing
    assert read("2.rc").strip() == "0", read("2.err")[-2000:]
    assert "resumed from" in read("2.err") and "step 2" in read("2.err")
    assert_same_weights(load_weights(tmp_path / "full"), load_weights(tmp_path / "resumed"))
    figure(f"full disk at the step-4 checkpoint ({one / 2**20:.1f} MiB each): stopped with the step-2 checkpoint "
           f"intact; the restart redid 2 of 5 steps and ended with the uninterrupted weights")


def test_a_checkpoint_of_another_configuration_is_refused(demo, curated, tmp_path):
    from components.train.checkpoints import CheckpointMismatch

    ckpt = str(tmp_path / "ckpt")
    recipes.cpt(demo.base_model, curated, tmp_path / "a", TrainConfig(max_steps=4, batch_size=8, checkpoint_every=2),
                checkpoint_uri=ckpt)
    with pytest.raises(CheckpointMismatch, match="learning_rate"):
        recipes.cpt(demo.base_model, curated, tmp_path / "b",
                    TrainConfig(max_steps=4, batch_size=8, checkpoint_every=2, learning_rate=1e-4),
                    checkpoint_uri=ckpt)
    # operational settings may change between a run and its resumption
    recipes.cpt(demo.base_model, curated, tmp_path / "c",
                TrainConfig(max_steps=4, batch_size=8, checkpoint_every=2, log_every=1), checkpoint_uri=ckpt)


# --- the loss ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(demo):
    from components.common.chat import collate, special_image_ids
    from components.common.models import load_vlm
    from components.train.data import Stream

    model, processor = load_vlm(Path(demo.base_model))
    model.eval()
    never = special_image_ids(model.config)
    return model, processor, lambda convs: collate(processor, convs, never), Stream


def _caption_batch(demo, collate, rows):
    from components.train.data import caption_sample

    root = Path(demo.captions).parent
    return collate([caption_sample({**r, "image": str(root / r["image"])}) for r in rows])


def _demo_rows(demo, n, start=0):
    return [json.loads(line) for line in Path(demo.captions).read_text().splitlines()[start:start + n]]


def test_labelled_loss_equals_the_models_own_loss(demo, tiny):
    from components.train.loss import LabelledLoss

    model, _, collate, _ = tiny
    batch = _caption_batch(demo, collate, _demo_rows(demo, 6))
    with torch.no_grad():
        reference = model(**batch).loss
        total, count = LabelledLoss(model, chunk_rows=7)(**batch)   # several chunks
    assert count == int((batch["labels"][:, 1:] != -100).sum())
    assert float(total / count) == pytest.approx(float(reference), rel=1e-5)


def test_accumulated_gradient_is_the_mean_over_every_labelled_token(demo, tiny):
    """Two micro-batches with different numbers of labelled tokens give the gradient of the two as one batch;
    averaging the two micro-batch means (what dividing each loss by grad_accum does) would not."""
    from components.train.loop import accumulate
    from components.train.loss import LabelledLoss
    from components.train.parallel import Dist

    model, processor, collate, _ = tiny
    module = LabelledLoss(model)
    dist = Dist(0, 1, 0, torch.device("cpu"))
    rows = _demo_rows(demo, 5)
    rows[0] = {**rows[0], "caption": rows[0]["caption"] * 4}      # far more labelled tokens in the first batch
    first, second = _caption_batch(demo, collate, rows[:2]), _caption_batch(demo, collate, rows[2:])
    both = _caption_batch(demo, collate, rows)

    def grads(micro):
        model.zero_grad()
        accumulate(module, micro, dist)
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    split, whole = grads([first, second]), grads([both])
    def rel(a, b):
        return float((a - b).norm() / b.norm())

    assert rel(split, whole) < 1e-5
    model.zero_grad()
    for b in (first, second):   # the mean of micro-batch means
        total, count = module(**{k: v for k, v in b.items() if k != "micro_batch"})
        (total / count / 2).backward()
    means = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    model.zero_grad()
    assert rel(means, whole) > 1e-2


def test_grouped_batches_keep_gemma3_masks(demo, tiny):
    """In a length-grouped (right-padded) batch each sample's outputs are what it gives alone: padding is never
    attended. Image tokens attend to each other both ways (a change to the last image token reaches the first),
    text before an image never sees it, and text after it does."""
    model, processor, collate, _ = tiny
    rows = _demo_rows(demo, 3)
    rows[1] = {**rows[1], "caption": rows[1]["caption"] + " and more words"}
    batch = _caption_batch(demo, collate, rows)
    assert (batch["attention_mask"] == 0).any()    # the batch has padding
    with torch.no_grad():
        together = model.model(**{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids",
                                                        "pixel_values")}).last_hidden_state
        for i in range(3):
            alone = _caption_batch(demo, collate, rows[i:i + 1])
            single = model.model(**{k: alone[k] for k in ("input_ids", "attention_mask", "token_type_ids",
                                                          "pixel_values")}).last_hidden_state[0]
            n = int(batch["attention_mask"][i].sum())
            assert torch.allclose(together[i, :n], single[:n], atol=1e-5)

    one = _caption_batch(demo, collate, rows[:1])
    image = (one["token_type_ids"][0] == 1).nonzero().flatten()
    first_img, last_img = int(image[0]), int(image[-1])

    def hidden(perturb: bool):
        def hook(module, args, output):
            if perturb:   # change only the last image token's embedding, after the vision tower
                output = output.clone()
                output[:, -1] += 1.0
            return output
        handle = model.model.multi_modal_projector.register_forward_hook(hook)
        try:
            with torch.no_grad():
                return model.model(**{k: one[k] for k in ("input_ids", "attention_mask", "token_type_ids",
                                                          "pixel_values")}).last_hidden_state[0]
        finally:
            handle.remove()

    base, changed = hidden(False), hidden(True)
    assert not torch.allclose(base[first_img], changed[first_img])        # bidirectional among image tokens
    assert torch.allclose(base[:first_img], changed[:first_img])          # causal for what precedes the image
    assert not torch.allclose(base[last_img + 1:], changed[last_img + 1:])  # text after it sees it


# --- the data stream -----------------------------------------------------------------------------------------


def test_stream_resumes_from_a_position_and_splits_over_ranks_and_workers(curated):
    from itertools import islice

    from components.train.data import Stream, micro_batches

    stream = Stream("captions", curated, batch_size=8, window_batches=4, seed=1)
    assert stream.layout.batches_per_epoch == 32
    ids = [[r["caption"] for r in rows] for _, rows in islice(micro_batches(stream, 0, 1, 0), 70)]
    # an epoch visits every row once; the next epoch in another order
    assert sorted(c for b in ids[:32] for c in b) == sorted(c for b in ids[32:64] for c in b)
    assert ids[:32] != ids[32:64]
    # from a position: exactly the tail of the stream
    assert [[r["caption"] for r in rows] for _, rows in islice(micro_batches(stream, 0, 1, 37), 10)] == ids[37:47]
    # two ranks take alternate global batches; two workers of a rank alternate within its share
    rank0 = [[r["caption"] for r in b] for _, b in islice(micro_batches(stream, 0, 2, 0), 8)]
    rank1 = [[r["caption"] for r in b] for _, b in islice(micro_batches(stream, 1, 2, 0), 8)]
    assert rank0 == ids[0:16:2] and rank1 == ids[1:16:2]
    w0 = list(islice(micro_batches(stream, 0, 1, 0, worker=0, workers=2), 4))
    w1 = list(islice(micro_batches(stream, 0, 1, 0, worker=1, workers=2), 4))
    interleaved = [b for pair in zip(w0, w1, strict=True) for b in pair]
    assert [k for k, _ in interleaved] == list(range(8))
    assert [[r["caption"] for r in b] for _, b in interleaved] == ids[:8]


def test_a_window_mixes_rows_of_many_units(tmp_path):
    """Shards are often of one source or language: a window of batches draws from many of them, not one."""
    from itertools import islice

    import pyarrow as pa
    import pyarrow.parquet as pq

    from components.train.data import Stream, micro_batches

    n = 400
    table = pa.table({"image": ["x.jpg"] * n, "member": [None] * n, "caption": [f"row {i}" for i in range(n)],
                      "lang": ["en"] * n})
    pq.write_table(table, tmp_path / "part-0.parquet", row_group_size=10)   # 40 units of 10 rows
    stream = Stream("captions", str(tmp_path), batch_size=8, window_batches=4, shuffle_units=8, seed=0)
    assert len(stream.primary.units) == 40
    first_window = [r["caption"] for _, b in islice(micro_batches(stream, 0, 1, 0), 4) for r in b]
    assert len({int(c.split()[1]) // 10 for c in first_window}) >= 6
    epoch = [r["caption"] for _, b in islice(micro_batches(stream, 0, 1, 0), stream.layout.batches_per_epoch)
             for r in b]
    assert sorted(epoch) == sorted(table.column("caption").to_pylist())   # every row once per epoch


def test_benchmark_runs_with_the_tiny_shape(tmp_path):
    """The GPU benchmark's code path, on the CPU: the trainer and the reference loop side by side."""
    from tests.benchmarks.bench_trainer import main

    results = main(["--tiny", "--steps", "2", "--warmup", "1", "--out", str(tmp_path)])
    ref, ours, ratio = results
    assert ref["mode"] == "sdpa" and ours["mode"] == "trainer"
    assert ours["samples_per_s"] > 0 and ref["samples_per_s"] > 0 and ratio["ratio_samples_per_s"] > 0
    assert ours["pad_fraction"] <= 0.05 < ref["pad_fraction"]
    assert json.loads((tmp_path / "bench_trainer.json").read_text()) == results


def test_replay_rows_are_mixed_into_every_window(demo, curated):
    from itertools import islice

    from components.train.data import Stream, micro_batches

    stream = Stream("captions", curated, batch_size=8, window_batches=4, seed=0,
                    replay_uri=str(demo.root / "data" / "text.jsonl"), replay_fraction=0.25)
    assert len(stream) == 256 + 64
    rows = [r for _, b in islice(micro_batches(stream, 0, 1, 0), stream.layout.batches_per_epoch) for r in b]
    assert sum(r["_kind"] == "replay" for r in rows) == 64
    replay = next(r for r in rows if r["_kind"] == "replay")
    sample = stream.sample(replay)
    assert all(c["type"] == "text" for m in sample for c in m["content"])
    with pytest.raises(ValueError, match="replay fraction"):
        Stream("captions", curated, batch_size=8, replay_uri="x", replay_fraction=1.5)


# --- settings and what is refused ----------------------------------------------------------------------------


def test_lr_warms_up_then_decays_by_cosine_to_the_floor():
    from components.train.loop import lr_lambda

    f = lr_lambda(TrainConfig(max_steps=110, warmup_steps=10, min_lr_ratio=0.1))
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)
    assert f(30) > f(60) > f(90)


def test_lora_trains_adapters_and_saves_a_merged_full_model(demo, curated, tmp_path):
    cfg = TrainConfig(max_steps=6, batch_size=8, lora_rank=4, learning_rate=1e-2, warmup_steps=1, save_dtype="fp32")
    recipes.cpt(demo.base_model, curated, tmp_path / "m", cfg)
    trained, base = load_weights(tmp_path / "m"), load_weights(demo.base_model)
    assert trained.keys() == base.keys()                      # merged: no adapter tensors left
    q = next(k for k in base if "language_model" in k and "q_proj" in k)
    assert not torch.equal(trained[q], base[q].float())        # the adapters changed the projections
    vision = next(k for k in base if "vision_tower" in k)
    assert torch.equal(trained[vision], base[vision].float())  # the base weights themselves stayed


def test_freezing_keeps_the_vision_tower_fixed(demo, curated, tmp_path):
    cfg = TrainConfig(max_steps=3, batch_size=8, freeze_vision=True, save_dtype="fp32", warmup_steps=1)
    recipes.cpt(demo.base_model, curated, tmp_path / "m", cfg)
    trained, base = load_weights(tmp_path / "m"), load_weights(demo.base_model)
    assert all(torch.equal(trained[k], base[k].float()) for k in base if "vision_tower" in k)
    assert any(not torch.equal(trained[k], base[k].float()) for k in base if "language_model" in k)


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*SEAVL, *args], capture_output=True, text=True)


def test_bad_input_is_named_and_exits_2(demo, curated, tmp_path):
    common = ["--init-model", demo.base_model, "--data", curated, "--out", str(tmp_path / "o")]
    r = _cli("train", "dpo", *common)
    assert r.returncode == 2 and "unknown stage 'dpo'" in r.stderr
    r = _cli("train", "cpt", *common, "--set", "learning_rat=1e-3")
    assert r.returncode == 2 and "learning_rat" in r.stderr
    # a model folder with only pickle weights is refused before anything is unpickled
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for f in Path(demo.base_model).iterdir():
        if f.suffix != ".safetensors":
            (pickled / f.name).write_bytes(f.read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    r = _cli("train", "cpt", "--init-model", str(pickled), "--data", curated, "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "pickle" in r.stderr and "pytorch_model.bin" in r.stderr
    # an empty curated dataset: said before the model loads
    import pyarrow.parquet as pq

    empty = tmp_path / "empty"
    empty.mkdir()
    table = pq.read_table(next(Path(curated).glob("*.parquet")))
    pq.write_table(table.slice(0, 0), empty / "part-0.parquet")
    r = _cli("train", "cpt", "--init-model", demo.base_model, "--data", str(empty), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "holds no rows" in r.stderr and "Loading weights" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_out_of_memory_says_what_seavl_plan_advises(demo, curated, tmp_path, monkeypatch):
    from components.train import loop

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(loop, "train", oom)
    with pytest.raises(recipes.OutOfMemory, match="activation-checkpointing"):
        recipes.cpt(demo.base_model, curated, tmp_path / "m", TrainConfig(max_steps=1, batch_size=8))


# --- the planner ---------------------------------------------------------------------------------------------


def test_plan_byte_counts_match_a_real_models_tensors(demo, tiny):
    """Weights, gradients and optimizer state as the planner counts them, against the demo model's tensors
    after a real AdamW step (one process: nothing sharded)."""
    from components.common.models import load_vlm
    from components.train import parallel
    from components.train.plan import Request, counts, state_bytes

    model, _ = load_vlm(Path(demo.base_model))
    parallel.freeze(model, vision=True, projector=False, language_model=False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-3)
    model(**_caption_batch(demo, tiny[2], _demo_rows(demo, 2))).loss.backward()
    opt.step()

    def nbytes(tensors):
        return sum(t.numel() * t.element_size() for t in tensors)

    real = {"weights": nbytes(model.parameters()),   # tied embeddings and output projection: one tensor
            "gradients": nbytes(p.grad for p in trainable),
            "optimizer": nbytes(v for s in opt.state.values() for k, v in s.items() if k != "step")}
    planned = state_bytes(counts(model.config), Request(model=demo.base_model, freeze_vision=True))
    assert planned == real


def test_plan_says_27b_full_fine_tuning_needs_8_gpus_with_activation_checkpointing():
    one = json.loads(_cli("plan", "--model", "gemma-3-27b", "--gpus", "1", "--json").stdout)
    assert one["fits"] is False and one["per_gpu_gb"] > 400
    assert one["params"]["total"] == pytest.approx(27.4e9, rel=0.01)
    assert any("--gpus 8 --activation-checkpointing" in a and "(fits)" in a for a in one["advice"])
    eight = json.loads(_cli("plan", "--model", "gemma-3-27b", "--gpus", "8", "--activation-checkpointing",
                            "--json").stdout)
    assert eight["fits"] is True and eight["per_gpu_gb"] < 80
    text = _cli("plan", "--model", "gemma-3-27b", "--gpus", "1").stdout
    assert "does not fit" in text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_the_trainer_beats_the_reference_and_the_planner_is_within_20_percent(tmp_path):
    """The benchmark on the Gemma-3-4B shape (only where a GPU is present): the trainer's samples/s against the
    reference loop's, and the planner's per-GPU total against the peak memory the trainer reached."""
    from components.train.plan import Request, plan
    from tests.benchmarks.bench_trainer import main

    ref, ours, ratio = main(["--steps", "6", "--warmup", "2", "--out", str(tmp_path)])
    assert ratio["ratio_samples_per_s"] > 1.0 and ours["pad_fraction"] <= 0.05
    shaped = tmp_path / "config.json"
    from transformers import AutoProcessor

    from demo.build import ensure_demo
    from tests.benchmarks.bench_trainer import model_config

    model_config(False, 12, AutoProcessor.from_pretrained(ensure_demo().base_model).tokenizer).to_json_file(shaped)
    planned = plan(Request(model=str(shaped), gpus=1, batch=8, seq_len=300)).per_gpu_gb
    assert abs(planned - ours["peak_mem_gb"]) <= 0.2 * ours["peak_mem_gb"]
