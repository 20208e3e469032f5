"""The trainer next to the reference loop (tests/benchmarks/gpu_anchor.py), in the same process, on the same shape.

    python -m tests.benchmarks.bench_trainer                 GPU: Gemma-3-4B shape (12 text layers, SigLIP at 896 px)
    python -m tests.benchmarks.bench_trainer --tiny          CPU: the reference's tiny shape (what `make bench` and the
                                                             tests run)

Both train the same randomly initialised model shape on the same caption samples (the reference gets their token
ids directly and random pixels; the trainer reads them as a curated Parquet dataset with JPEG images, through its
DataLoader, processor and length-grouped batches), AdamW, the same batch size, everything trained unless
--freeze-vision. Prints samples/s, useful tokens/s, MFU on useful tokens (the same FLOP count for both: plan.py,
padding excluded; the reference's own FlopCounter MFU is printed too), padding fraction, peak memory, final loss,
and the ratio of samples/s. Asserts nothing about time; writes bench_trainer.json to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

from tests.benchmarks import gpu_anchor as anchor


def _processor(tokenizer, chat_template: str, image_size: int, mm_tokens: int):
    from transformers import Gemma3Processor
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    images = Gemma3ImageProcessorPil(size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3,
                                     image_std=[0.5] * 3, do_pan_and_scan=False)
    return Gemma3Processor(image_processor=images, tokenizer=tokenizer, chat_template=chat_template,
                           image_seq_length=mm_tokens)


def model_config(tiny: bool, text_layers: int, tokenizer):
    """The reference's shape, with the special-token ids of the tokenizer the trainer's processor uses."""
    cfg = anchor.build(tiny, text_layers, "sdpa")
    ids = tokenizer.convert_tokens_to_ids
    cfg.text_config.vocab_size = max(cfg.text_config.vocab_size, len(tokenizer))
    cfg.boi_token_id, cfg.eoi_token_id = ids("<start_of_image>"), ids("<end_of_image>")
    cfg.image_token_id = ids("<image_soft_token>")
    cfg.text_config.pad_token_id = cfg.pad_token_id = ids("<pad>")
    return cfg


def captions(tokenizer, n: int, rng: random.Random, lo: int = 16, hi: int = 256) -> list[str]:
    """Caption texts of `lo`..`hi` tokens (the reference's range), from the tokenizer's own word pieces."""
    words = [t for t in tokenizer.get_vocab() if t.isascii() and t.isalpha() and len(t) > 2]
    out = []
    for _ in range(n):
        ids = tokenizer(" ".join(rng.choice(words) for _ in range(hi)), add_special_tokens=False)["input_ids"]
        out.append(tokenizer.decode(ids[:rng.randint(lo, hi)]))
    return out


def write_dataset(root: Path, texts: list[str], image_size: int, distinct_images: int = 16) -> str:
    """A curated caption dataset (the data step's Parquet columns) with JPEG images on disk."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(0)
    images = []
    for i in range(distinct_images):
        path = root / "images" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (image_size, image_size, 3), dtype=np.uint8)).save(path, quality=90)
        images.append(str(path))
    table = pa.table({"id": [str(i) for i in range(len(texts))], "image": [images[i % distinct_images]
                                                                            for i in range(len(texts))],
                      "member": [None] * len(texts), "caption": texts, "lang": ["en"] * len(texts)})
    (root / "curated").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / "curated" / "part-0.parquet", row_group_size=20_000)
    return str(root / "curated")


def reference(cfg, processor, texts: list[str], args, dev: str) -> dict:
    """The reference loop (gpu_anchor.run_mode) fed the same samples as token ids."""
    from PIL import Image

    from components.common.chat import caption_conversation, collate, special_image_ids
    from components.common.languages import caption_prompt

    never = special_image_ids(cfg)
    blank = Image.new("RGB", (8, 8))
    rows = []
    for text in texts:
        conv = caption_conversation(text, caption_prompt("en"))
        conv[0]["content"][0]["image"] = blank
        b = collate(processor, [conv], never)
        rows.append((b["input_ids"][0].tolist(), b["token_type_ids"][0].tolist(), b["labels"][0].tolist()))
    anchor.samples = lambda _cfg, n, _rng: rows[:n]   # the reference draws its samples from here
    mode = "sdpa-frozen-vision" if args.freeze_vision else "sdpa"
    res = anchor.run_mode(mode, cfg, argparse.Namespace(batch=args.batch, steps=args.steps, warmup=args.warmup,
                                                        freeze_vision=args.freeze_vision), dev)
    if "error" not in res:
        timed = rows[args.warmup * args.batch:(args.warmup + args.steps) * args.batch]
        seconds = args.batch * args.steps / res["samples_per_s"]
        res["useful_flops"] = _useful_flops(cfg, [len(ids) for ids, _, _ in timed], len(timed), args.freeze_vision)
        res["seconds"] = seconds
    return res


def _useful_flops(cfg, lengths: list[int], images: int, freeze_vision: bool) -> float:
    from components.train import plan

    c = plan.counts(cfg)
    return sum(plan.text_flops(cfg, c, n) for n in lengths) + images * plan.image_flops(cfg, c, not freeze_vision)


def trainer(model_dir: Path, data: str, out: Path, args, dev: str) -> dict:
    import torch

    from components.train import recipes
    from components.train.loop import TrainConfig

    steps = []
    cfg = TrainConfig(max_steps=args.warmup + args.steps, batch_size=args.batch, learning_rate=1e-5, warmup_steps=0,
                      mixed_precision="bf16" if dev == "cuda" else "no", freeze_vision=args.freeze_vision,
                      log_every=1, num_workers=args.workers, compile_layers=args.compile, save_dtype="bf16",
                      activation_checkpointing=args.activation_checkpointing)
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = recipes.cpt(str(model_dir), data, out, cfg, lambda m, s: steps.append((s, m)))
    timed = [m for s, m in steps if s > args.warmup]
    step_seconds = [args.batch / m["train/samples_per_s"] for m in timed]   # log_every=1: one step per line
    seconds = sum(step_seconds)
    tokens = sum(m["train/tokens_per_s"] * t for m, t in zip(timed, step_seconds, strict=True))
    out_row = {"mode": "trainer", "samples_per_s": round(args.batch * len(timed) / seconds, 2),
               "tokens_per_s": round(tokens / seconds), "seconds": seconds, "loss": round(result.losses[-1], 3),
               "pad_fraction": round(sum(m["train/padding_fraction"] for m in timed) / len(timed), 3)}
    if any("train/mfu" in m for m in timed):
        out_row["mfu_useful"] = round(sum(m["train/mfu"] * t for m, t in zip(timed, step_seconds, strict=True))
                                      / seconds, 4)
    if dev == "cuda":
        out_row["peak_mem_gb"] = round(max(m.get("train/peak_memory_gb", 0) for m in timed), 1)
    return out_row


def record(path: Path, ours: dict, device: str, args) -> None:
    """The trainer's measured MFU (on useful tokens), its card and settings: what `seavl check` uses
    (pipelines/cost.py) in place of the reference loop's."""
    import datetime

    settings = (f"Gemma-3-4B-shaped VLM with {args.text_layers} text layers, batch {args.batch}, "
                f"{'vision frozen' if args.freeze_vision else 'everything trained'}"
                f"{', activation checkpointing' if args.activation_checkpointing else ''}"
                f"{', per-layer compile' if args.compile else ''}, {ours['samples_per_s']} samples/s")
    path.write_text(json.dumps({"mfu": ours["mfu_useful"], "device": device, "date": datetime.date.today().isoformat(),
                                "by": "tests/benchmarks/bench_trainer.py", "settings": settings}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> list[dict]:
    import torch
    from transformers import AutoProcessor, Gemma3ForConditionalGeneration

    from components.train import plan
    from demo.build import ensure_demo

    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="the reference's tiny shape (CPU)")
    ap.add_argument("--text-layers", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the trainer")
    ap.add_argument("--freeze-vision", action="store_true")
    ap.add_argument("--activation-checkpointing", action="store_true")
    ap.add_argument("--compile", action="store_true", help="per-layer torch.compile in the trainer")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--record", default="", help="on a GPU: write the trainer's MFU here (pipelines/configs/"
                    "measured-mfu.json is what `seavl check` predicts costs from)")
    args = ap.parse_args(argv)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    base = AutoProcessor.from_pretrained(ensure_demo().base_model)
    cfg = model_config(args.tiny, args.text_layers, base.tokenizer)
    processor = _processor(base.tokenizer, base.chat_template, cfg.vision_config.image_size, cfg.mm_tokens_per_image)
    rng = random.Random(0)
    n = max(args.batch * (args.warmup + args.steps), 64 * args.batch)   # one full length-sorting window at least
    texts = captions(base.tokenizer, n, rng)
    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
                      "params_b": round(plan.counts(cfg).total / 1e9, 3), "batch": args.batch, "steps": args.steps,
                      "freeze_vision": args.freeze_vision}), flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        data = write_dataset(tmp, texts, cfg.vision_config.image_size)
        torch.manual_seed(0)
        Gemma3ForConditionalGeneration(cfg).to(torch.bfloat16).save_pretrained(tmp / "model")
        processor.save_pretrained(tmp / "model")
        print(json.dumps({"setup_s": round(time.perf_counter() - t0, 1)}), flush=True)
        ref = reference(cfg, processor, texts, args, dev)
        ours = trainer(tmp / "model", data, tmp / "out", args, dev)
    peak = plan.peak_flops(torch.device(dev))
    for row in (ref, ours):
        if "error" in row:
            continue
        if row is ref:
            row["mfu_flopcounter"] = row.pop("mfu")
            if peak:
                row["mfu_useful"] = round(row["useful_flops"] / row["seconds"] / peak, 4)
        row.pop("useful_flops", None)
        results.append(row)
        print(json.dumps(row), flush=True)
    if "error" not in ref:
        ratio = ours["samples_per_s"] / ref["samples_per_s"]
        print(f"ratio trainer/reference samples/s: {ratio:.2f}  (padding {ref['pad_fraction']:.1%} -> "
              f"{ours['pad_fraction']:.1%}; MFU on useful tokens {ref.get('mfu_useful', 'n/a')} -> "
              f"{ours.get('mfu_useful', 'n/a')})", flush=True)
        results.append({"ratio_samples_per_s": round(ratio, 3)})
    else:
        print(json.dumps(ref), flush=True)
        results.append(ref)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "bench_trainer.json").write_text(json.dumps(results, indent=1))
    if args.record and "mfu_useful" in ours:
        record(Path(args.record), ours, torch.cuda.get_device_name(), args)
    return results


if __name__ == "__main__":
    main()
