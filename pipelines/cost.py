"""What a run will cost, predicted before it starts: per stage (CPT, SFT, the evaluation of every model) the
tokens (text and image), FLOPs, GPU-hours and wall-clock time on the requested GPUs.

- Training. A stage runs `max_steps` optimizer steps of batch_size x grad_accum x GPUs samples. A sample's FLOPs
  are the planner's (components/train/plan.py: text_flops + images x image_flops, the useful FLOPs the trainer's
  MFU counts, padding excluded), averaged over a sample of the stage's input: SAMPLE_RECORDS records spread
  evenly over up to SAMPLE_UNITS of its shards, row groups or byte ranges, sized as the trainer sizes them
  (data.sample_sizes, the base model's own tokenizer). The input's row count is estimated from the same sample.
- Evaluation. Every item of every run of the suite: its SEA-HELM prompt in tokens, its images (the tower and their
  tokens) and the task's token limit generated (or the run's cap), forward only (plan.forward_flops); for the base,
  the CPT model, the candidate, the champion and each reference model. Time: the prompts at the MFU, the replies
  at the speed of reading the weights once per decoding step of a batch (decoding is memory-bound), every reply to
  its limit (an upper bound); on the eval backend's use of the GPUs. The scorers (MetricX, the CLIP judge) are not
  counted.
- Time = FLOPs / (MFU x the GPU's dense bf16 peak). The MFU is the project's own, measured by
  tests/benchmarks/bench_trainer.py on a GPU and recorded in MEASURED (`--record`), when that file exists;
  otherwise REFERENCE_MFU, measured for the reference loop (a plain transformers loop on a Gemma-3-4B-shaped VLM,
  one H100, bf16, everything trained; FLOPs counted over padded batches), and perfect scaling over the run's GPUs.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components.common import storage

SAMPLE_RECORDS = 512       # records read to measure a training input
SAMPLE_UNITS = 16          # spread over at most this many shards / row groups / byte ranges
MEASURED = Path(__file__).resolve().parent / "configs" / "measured-mfu.json"
REFERENCE_MFU = 0.30
REFERENCE_BASIS = ("assumed: the reference loop's MFU as measured on one H100 (tests/benchmarks/gpu_anchor.py: a "
                   "plain padded transformers loop, Gemma-3-4B-shaped VLM, bf16, batch 8, everything trained, FLOPs "
                   "counted over its padded batches, 2026-11-26), scaling perfectly over the run's GPUs; this "
                   "project's trainer has not been measured on a GPU yet (tests/benchmarks/bench_trainer.py "
                   "--record pipelines/configs/measured-mfu.json)")
DEFAULT_ACCELERATOR = "H100"
TAR_OVERHEAD = 3 * (512 + 256)   # three tar members per sample: a header each, half a block of padding on average
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json")


@dataclass(frozen=True)
class Sample:
    """Records read from a training input, and what they say about the whole."""
    rows: list[dict]
    files: int                 # shards / manifests of the input
    read_from: int             # of which were read
    estimated_rows: int        # the input's records, estimated (exact for Parquet)
    how: str                   # how the estimate was made


@dataclass(frozen=True)
class StageCost:
    stage: str
    samples: int               # training samples, or evaluation items
    text_tokens: float
    images: float
    image_tokens: float        # images x the model's tokens per image
    flops: float
    gpus: int
    gpu_hours: float
    hours: float               # wall-clock on `gpus`
    basis: str                 # what the figures rest on, in words


@dataclass(frozen=True)
class Throughput:
    accelerator: str
    peak: float                # FLOP/s, dense bf16, one GPU
    mfu: float
    basis: str
    bandwidth: float = 3.35e12  # memory bandwidth, bytes/s, one GPU

    def gpu_hours(self, flops: float) -> float:
        return flops / (self.mfu * self.peak) / 3600


def throughput(node_selector: dict | None, record: Path = MEASURED, selector: str = "train_node_selector"
               ) -> Throughput:
    """The GPU a node selector (the run parameter `selector`) asks for (its gpu.product label, else
    DEFAULT_ACCELERATOR) and the MFU to expect: the project's measured one (`record`) when it exists and reads,
    else REFERENCE_MFU."""
    from components.train.plan import accelerator, requested_accelerator

    label, known = requested_accelerator(node_selector)
    name = label if known else DEFAULT_ACCELERATOR
    _, peak, _, bandwidth = known or accelerator(DEFAULT_ACCELERATOR)
    why = f"{selector} names no GPU product" if not label else f"{label} is not a known GPU"
    assumed = "" if known else f" (assumed: {why})"
    mfu, basis = REFERENCE_MFU, REFERENCE_BASIS
    if record.exists():
        try:
            measured = json.loads(record.read_text())
            by = measured.get("by", "tests/benchmarks/bench_trainer.py")
            mfu, basis = float(measured["mfu"]), (f"measured by {by} on {measured.get('device', '?')}, "
                                                 f"{measured.get('date', '?')}: {measured.get('settings', '')}")
            if not 0 < mfu <= 1:
                raise ValueError(f"an MFU of {mfu}")
        except (ValueError, KeyError, TypeError) as err:
            mfu, basis = REFERENCE_MFU, f"{REFERENCE_BASIS}; {record} could not be used ({err})"
    return Throughput(f"{name}{assumed}", peak, mfu, basis, bandwidth)


def token_counter(read: Callable[[str], bytes]) -> tuple[Callable[[list[str]], list[int]], str]:
    """A function counting tokens with a model's own tokenizer (`read(name)`: one file of the model's folder; its
    tokenizer files only are read), and what it is; UTF-8 bytes / 4 when the tokenizer cannot be loaded (said)."""
    import tempfile

    from transformers import AutoTokenizer

    try:
        with tempfile.TemporaryDirectory(prefix="seavl-tokenizer-") as tmp:
            found = 0
            for name in TOKENIZER_FILES:
                try:
                    Path(tmp, name).write_bytes(read(name))
                    found += 1
                except FileNotFoundError:
                    continue
            if not found:
                raise FileNotFoundError("no tokenizer files")
            tokenizer = AutoTokenizer.from_pretrained(tmp)
    except Exception as err:  # noqa: BLE001 (an estimate without the tokenizer is still an estimate; said)
        return (lambda texts: [max(1, len(t.encode()) // 4) for t in texts],
                f"UTF-8 bytes / 4 (the base model's tokenizer could not be loaded: {err})")

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []

    return count, "the base model's tokenizer"


def input_bytes(uri: str, files: list[str]) -> int:
    """The bytes of an input's `files` (sources.list_inputs): one listing of its folder, not a request per file."""
    fs, path = storage.filesystem(uri)
    if len(files) == 1:
        return fs.info(storage.filesystem(files[0])[1])["size"]
    listed = {name.rstrip("/"): info["size"] for name, info in fs.find(path, detail=True).items()}
    return sum(listed.get(storage.filesystem(f)[1], 0) for f in files)


def _spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n), first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def sample_input(uri: str, records: int = SAMPLE_RECORDS, units: int = SAMPLE_UNITS) -> Sample:
    """Up to `records` readable records of the training input at `uri`, spread evenly over up to `units` of its
    units of work (sources.plan_units), and an estimate of its record count from them."""
    from components.validate_data.sources import _row_groups, plan_units, read_unit, shard_samples

    plan = plan_units(uri)
    kind, files = plan[0].kind, list(dict.fromkeys(u.uri for u in plan))   # sources.list_inputs's, in its order
    chosen = [plan[i] for i in _spread(len(plan), units)]
    per_unit = max(1, records // len(chosen))
    rows, sizes, read_files = [], [], set()
    for unit in chosen:
        got, first, last = 0, None, None
        for record in read_unit(unit):
            if record.problem:
                continue
            rows.append(dict(record.fields, _image_bytes=len(record.image_bytes or b"")))
            first = record.position if first is None else first
            last, got = record.position, got + 1
            if got >= per_unit:
                break
        read_files.add(unit.uri)
        if kind == "jsonl" and got > 1:   # positions are byte offsets: bytes per record
            sizes.append((last - first) / (got - 1))
    if not rows:
        raise ValueError(f"no readable record in the {len(chosen)} part(s) of {uri} read")
    total_bytes = input_bytes(uri, files) if kind != "parquet" else 0
    if kind == "parquet":
        counted = [sum(_row_groups(f)) for f in sorted(read_files)]
        estimate = round(statistics.mean(counted) * len(files))
        how = "exact, from the Parquet footers" if len(counted) == len(files) else (
            f"{len(counted)} of {len(files)} files' footers x {len(files)}")
    elif kind == "jsonl":
        per_record = statistics.mean(sizes) if sizes else total_bytes / len(rows)
        estimate, how = round(total_bytes / per_record), f"{total_bytes:,} bytes / {per_record:,.0f} bytes per record"
    elif (stats := [shard_samples(f) for f in sorted(read_files)]) and None not in stats:   # img2dataset's counts
        estimate = round(statistics.mean(stats) * len(files))
        how = ("exact, from img2dataset's _stats.json files" if len(stats) == len(files) else
               f"img2dataset's _stats.json of {len(stats)} of {len(files)} shards x {len(files)}")
    else:
        per_sample = statistics.mean(r["_image_bytes"] + len(json.dumps(r).encode()) + TAR_OVERHEAD for r in rows)
        estimate, how = round(total_bytes / per_sample), f"{total_bytes:,} bytes / ~{per_sample:,.0f} bytes per sample"
    return Sample([{k: v for k, v in r.items() if k != "_image_bytes"} for r in rows], len(files), len(read_files),
                  estimate, how)


def as_training_rows(kind: str, rows: list[dict], known_languages) -> list[dict]:
    """Raw records as the trainer's rows of `kind` (captions or conversations): a caption whose language has no
    instruction (or none yet: validation detects it) is sized with the English one."""
    if kind == "captions":
        return [{"_kind": "captions", "caption": str(r.get("caption") or ""),
                 "lang": r.get("lang") if r.get("lang") in known_languages else "en"} for r in rows]
    return [{**r, "_kind": "conversations"} for r in rows
            if "messages" in r or isinstance(r.get("conversations"), list)]


def _per_sample(rows: list[dict], count_tokens, config, c, lora: bool, tower_trains: bool):
    """(text tokens, images, training FLOPs, length in tokens) of each row as a sample."""
    from components.train import plan
    from components.train.data import sample_sizes

    texts, images = sample_sizes(rows, count_tokens)
    per_image = config.mm_tokens_per_image
    lengths = [t + n * per_image for t, n in zip(texts, images, strict=True)]
    flops = [plan.text_flops(config, c, n, lora) + i * plan.image_flops(config, c, tower_trains)
             for n, i in zip(lengths, images, strict=True)]
    return texts, images, flops, lengths


def training_cost(stage: str, settings, rows: list[dict], count_tokens, config, world: int, tp: Throughput,
                  sample: Sample, replay: list[dict] | None = None) -> StageCost:
    """A training stage's cost: its samples (max_steps x global batch) at the mean per-sample FLOPs of `rows`;
    with replay (`replay`: its sampled rows, as the trainer's), replay_fraction more rows of it beside each
    window's rows, at their own mean."""
    from components.train import plan

    if not rows:
        raise ValueError(f"{stage}: none of the {len(sample.rows)} sampled records is a {stage} sample")
    c = plan.counts(config)
    lora = settings.lora_rank > 0
    tower_trains = not (settings.freeze_vision or lora)
    texts, images, flops, lengths = _per_sample(rows, count_tokens, config, c, lora, tower_trains)
    means = [statistics.mean(texts), statistics.mean(images), statistics.mean(flops)]
    share = 1.0   # of the samples, the stage's own data
    replayed = ""
    if replay and settings.replay_fraction:
        share = 1 / (1 + settings.replay_fraction)
        r_texts, r_images, r_flops, _ = _per_sample(replay, count_tokens, config, c, lora, tower_trains)
        means = [share * m + (1 - share) * statistics.mean(r)
                 for m, r in zip(means, (r_texts, r_images, r_flops), strict=True)]
        replayed = (f"; {1 - share:.0%} of the samples replay ({statistics.mean(r_texts):,.0f} text tokens each, "
                    f"mean of {len(replay)} records)")
    mean_text, mean_images, mean_flops = means
    samples = settings.max_steps * settings.batch_size * settings.grad_accum * world
    total = samples * mean_flops
    gpu_hours = tp.gpu_hours(total)
    over = sum(n > settings.max_length for n in lengths) if settings.max_length else 0
    basis = (f"{settings.max_steps:,} steps x {samples // settings.max_steps:,} samples; per sample "
             f"{statistics.mean(texts):,.0f} text tokens + {statistics.mean(images):.2f} image(s) (mean of {len(rows)} "
             f"records from {sample.read_from} of {sample.files} file(s)), longest {max(lengths):,} tokens"
             + (f", {over} over max_length {settings.max_length:,}" if over else "") + replayed
             + f"; input ~{sample.estimated_rows:,} records ({sample.how}): "
             f"{samples * share / sample.estimated_rows:,.2f} passes over it")
    per_image = config.mm_tokens_per_image
    return StageCost(stage, samples, samples * mean_text, samples * mean_images, samples * mean_images * per_image,
                     total, world, gpu_hours, gpu_hours / world, basis)


@dataclass(frozen=True)
class EvalLoad:
    """What one evaluation of the suite asks of a model, before its shape is known: per item, prompt tokens,
    images and tokens generated; and the decoding steps of its batches (each batch decodes to its task's limit)."""
    items: list[tuple[int, int, int]]
    runs: int
    decode_steps: int
    batch: int
    backend: str


def evaluation_load(suite, loaded: dict, count_tokens, max_new_tokens: int = 0, backend: str = "auto") -> EvalLoad:
    """The items of every run of `suite` (`loaded`: {(task, lang): items}), SEA-HELM's prompt for each, replies
    capped at `max_new_tokens` when > 0 (the run's eval_max_new_tokens), batched as `backend` batches them
    (transformers: the suite's batch_size; vLLM: 8 of them at a time; auto: transformers, the default GPU image's)."""
    import math

    from components.evaluate.seahelm import tasks as sh

    if max_new_tokens:
        suite = suite.model_copy(update={"max_new_tokens": max_new_tokens})
    backend = "vllm" if backend == "vllm" else "transformers"
    batch = suite.batch_size * (8 if backend == "vllm" else 1)   # inference.VllmModel hands vLLM batch_size x 8
    out, steps = [], 0
    for (task, lang), items in loaded.items():
        if suite.max_items:
            items = items[:suite.max_items]
        texts = [sh.conversation(task, lang, getattr(i, "fields", {}), [])[0]["content"][0]["text"] for i in items]
        generated, pictures = suite.limit(task, lang), sh.images_per_item(task)
        out += [(t, pictures, generated) for t in count_tokens(texts)]
        steps += math.ceil(len(items) / batch) * generated
    return EvalLoad(out, len(loaded), steps, batch, backend)


def evaluation_cost(role: str, load: EvalLoad, config, gpus: int, tp: Throughput) -> StageCost:
    """One model's evaluation: its prompts (and images) processed at the MFU, its replies decoded at the speed of
    reading the bf16 weights once per generated token of a batch (decoding is memory-bound), every reply to its
    task's limit (an upper bound). transformers spreads the layers over the GPUs, one at work at a time; vLLM splits
    every layer over them (tensor parallel)."""
    from components.train import plan

    c = plan.counts(config)
    per_image = config.mm_tokens_per_image
    image = plan.image_flops(config, c, trains=False)
    prefill = sum(plan.forward_flops(config, c, p + n * per_image) + n * image for p, n, _ in load.items)
    flops = sum(plan.forward_flops(config, c, p + n * per_image + g) + n * image for p, n, g in load.items)
    weights = 2 * c.total   # bf16
    one_gpu = prefill / (tp.mfu * tp.peak) + load.decode_steps * weights / tp.bandwidth   # seconds
    hours = one_gpu / 3600 / (gpus if load.backend == "vllm" else 1)
    tokens = sum(p + g for p, _, g in load.items)
    images = sum(n for _, n, _ in load.items)
    basis = (f"{len(load.items):,} items of {load.runs} task/language runs on {load.backend}; prompts at the MFU, "
             f"replies decoded in batches of {load.batch}, each step reading the {weights / 1e9:,.0f} GB of bf16 "
             f"weights at {tp.bandwidth / 1e12:g} TB/s per GPU, every reply to its task's limit (an upper bound: "
             f"{load.decode_steps:,} steps); "
             + ("the layers spread over the GPUs, one at work at a time" if load.backend == "transformers"
                else "tensor parallel over the GPUs") + "; scorers not counted")
    return StageCost(f"evaluate {role}", len(load.items), tokens, images, images * per_image, flops, gpus,
                     hours * gpus, hours, basis)


def duration(hours: float) -> str:
    if hours >= 48:
        return f"{hours / 24:.1f} d"
    if hours >= 1:
        return f"{hours:.1f} h"
    if hours * 60 >= 1:
        return f"{hours * 60:.0f} min"
    return f"{hours * 3600:.0f} s"


def gpu_hours(n: float) -> str:
    return f"{n:,.0f}" if n >= 100 else f"{n:.1f}" if n >= 1 else f"{n:.3f}"


def count(n: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:,.0f}"


def bases(costs: list[StageCost]) -> list[tuple[list[str], str]]:
    """(stages, basis) with the stages that rest on the same basis together, so that each is said once."""
    grouped: dict[str, list[str]] = {}
    for c in costs:
        grouped.setdefault(c.basis, []).append(c.stage)
    return [(stages, basis) for basis, stages in grouped.items()]


def on_what(train: Throughput, evaluation: Throughput | None) -> str:
    """Where the costs are predicted for, in words: the GPU(s) and the MFU."""
    def gpu(tp: Throughput) -> str:
        return f"{tp.accelerator} ({tp.peak / 1e12:,.0f} TFLOP/s bf16 per GPU)"

    if evaluation is None or (evaluation.accelerator, evaluation.peak) == (train.accelerator, train.peak):
        return f"{gpu(train)} at MFU {train.mfu:.2f}"
    return f"training on {gpu(train)}, evaluation on {gpu(evaluation)}, at MFU {train.mfu:.2f}"
