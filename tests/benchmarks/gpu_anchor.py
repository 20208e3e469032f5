# The reference loop the trainer is measured against (tests/benchmarks/bench_trainer.py): a plain transformers
# padded-batch AdamW loop on a Gemma-3-4B-shaped VLM, kept verbatim below this header so that figures compare.
"""Anchor figures for training a Gemma-3 vision-language model with plain transformers on one GPU.

Random weights in the Gemma-3-4B shape (text depth cut to --text-layers) and the SigLIP-So400m tower at
896 px; synthetic caption samples (one image, 16-256 caption tokens). Each mode runs a padded-batch AdamW
loop, the way a plain Trainer/TRL setup feeds a VLM (no packing), and reports tokens/s, samples/s, MFU
(FLOPs counted by torch's FlopCounterMode over one step, over 989 TFLOP/s dense bf16) and peak memory.
"""
import argparse, json, os, random, time

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

PEAK = 989e12  # H100 SXM dense bf16


def build(tiny: bool, text_layers: int, attn: str):
    if tiny:
        text = Gemma3TextConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=32,
                                layer_types=["sliding_attention", "full_attention"])
        vision = SiglipVisionConfig(image_size=64, patch_size=8, hidden_size=64, intermediate_size=128,
                                    num_hidden_layers=2, num_attention_heads=4, vision_use_head=False)
        mm, boi, eoi, img = 16, 7, 8, 9
    else:
        types = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(text_layers)]
        text = Gemma3TextConfig(vocab_size=262208, hidden_size=2560, intermediate_size=10240,
                                num_hidden_layers=text_layers, num_attention_heads=8, num_key_value_heads=4,
                                head_dim=256, sliding_window=1024, layer_types=types, query_pre_attn_scalar=256)
        vision = SiglipVisionConfig(image_size=896, patch_size=14, hidden_size=1152, intermediate_size=4304,
                                    num_hidden_layers=27, num_attention_heads=16, vision_use_head=False)
        mm, boi, eoi, img = 256, 255999, 256000, 262144
    cfg = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=mm,
                       boi_token_index=boi, eoi_token_index=eoi, image_token_index=img)
    cfg._attn_implementation = attn
    cfg.text_config._attn_implementation = attn
    cfg.vision_config._attn_implementation = attn
    return cfg


def samples(cfg, n, rng):
    mm = cfg.mm_tokens_per_image
    vocab = cfg.text_config.vocab_size
    out = []
    for _ in range(n):
        cap = [rng.randrange(300, min(vocab, 250000)) for _ in range(rng.randint(16, 256))]
        ids = [2, cfg.boi_token_index] + [cfg.image_token_index] * mm + [cfg.eoi_token_index] + cap + [1]
        tt = [0, 0] + [1] * mm + [0] * (len(cap) + 2)
        lab = [-100] * (3 + mm) + cap + [1]
        out.append((ids, tt, lab))
    return out


def length_grouped(data, bs, group=8):
    """Sort within windows of group*bs samples, then shuffle the batches: what a length-grouped sampler does."""
    out = []
    for i in range(0, len(data), group * bs):
        win = sorted(data[i:i + group * bs], key=lambda x: len(x[0]))
        out += [win[j:j + bs] for j in range(0, len(win) - bs + 1, bs)]
    random.Random(1).shuffle(out)
    return [x for b in out for x in b]


def batches(data, bs, dev, size):
    for i in range(0, len(data) - bs + 1, bs):
        chunk = data[i:i + bs]
        L = max(len(x[0]) for x in chunk)
        ids = torch.zeros(bs, L, dtype=torch.long)
        tt = torch.zeros(bs, L, dtype=torch.long)
        lab = torch.full((bs, L), -100, dtype=torch.long)
        am = torch.zeros(bs, L, dtype=torch.long)
        for r, (a, b, c) in enumerate(chunk):
            ids[r, :len(a)] = torch.tensor(a); tt[r, :len(b)] = torch.tensor(b)
            lab[r, :len(c)] = torch.tensor(c); am[r, :len(a)] = 1
        px = torch.randn(bs, 3, size, size, dtype=torch.bfloat16)
        yield {k: v.to(dev) for k, v in dict(input_ids=ids, token_type_ids=tt, labels=lab,
                                                attention_mask=am, pixel_values=px).items()}


def selected_loss(model, b):
    """Cross-entropy computed only where labels are set: no logits for image, prompt or pad positions."""
    labels = b["labels"]
    inputs = {k: v for k, v in b.items() if k != "labels"}
    h = model.model(**inputs).last_hidden_state[:, :-1]
    target = labels[:, 1:]
    keep = target != -100
    logits = model.lm_head(h[keep]).float()
    return torch.nn.functional.cross_entropy(logits, target[keep])


def step_loss(model, b, select):
    return selected_loss(model, b) if select else model(**b).loss


def run_mode(name, cfg, args, dev):
    torch.manual_seed(0)
    t0 = time.time()
    with torch.device(dev):
        model = Gemma3ForConditionalGeneration(cfg).to(torch.bfloat16)
    build_s = time.time() - t0
    if args.freeze_vision or "frozen-vision" in name:
        for p in model.model.vision_tower.parameters():
            p.requires_grad_(False)
    if "ckpt" in name:
        model.gradient_checkpointing_enable()
    if "compile" in name:  # regional compilation: each repeated block, not the whole model
        torch._dynamo.config.cache_size_limit = 64
        for m in model.modules():
            if type(m).__name__.endswith(("EncoderLayer", "DecoderLayer")):
                m.compile()
    select = "select" in name
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=dev == "cuda")
    rng = random.Random(0)
    steps = args.warmup + args.steps
    data = samples(cfg, steps * args.batch, rng)
    if "sorted" in name:
        data = length_grouped(data, args.batch)
    size = cfg.vision_config.image_size
    it = batches(data, args.batch, dev, size)
    flops = None
    times, toks, padded = [], 0, 0
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for s in range(steps):
        b = next(it)
        if s == args.warmup - 1:
            fc = FlopCounterMode(display=False)
            with fc:
                loss = step_loss(model, b, select)
                loss.backward()
            flops = fc.get_total_flops()
            opt.step(); opt.zero_grad(set_to_none=True)
            continue
        if dev == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss = step_loss(model, b, select)
        loss.backward()
        opt.step(); opt.zero_grad(set_to_none=True)
        if dev == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        if s >= args.warmup:
            times.append(dt)
            toks += int(b["attention_mask"].sum()); padded += b["attention_mask"].numel()
    step = sorted(times)[len(times) // 2]
    res = dict(mode=name, params_b=round(n_params / 1e9, 3), build_s=round(build_s, 1),
               step_s_median=round(step, 4), tokens_per_s=round(toks / sum(times)),
               samples_per_s=round(args.batch * len(times) / sum(times), 2),
               pad_fraction=round(1 - toks / padded, 3), flops_per_step_t=round((flops or 0) / 1e12, 2),
               mfu=round((flops or 0) / step / PEAK, 4), loss=round(float(loss.detach()), 3),
               peak_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 1) if dev == "cuda" else None)
    del model, opt
    if dev == "cuda":
        torch.cuda.empty_cache()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--text-layers", type=int, default=12)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--modes", default="sdpa,eager,sdpa-frozen-vision,sdpa-ckpt")
    ap.add_argument("--freeze-vision", action="store_true")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    import transformers
    print(json.dumps(dict(torch=torch.__version__, transformers=transformers.__version__,
                          gpu=torch.cuda.get_device_name() if dev == "cuda" else None)), flush=True)
    results = []
    for mode in args.modes.split(","):
        attn = "eager" if mode.startswith("eager") else "sdpa"  # mode: sdpa|eager[+sorted][+compile][+select][+ckpt][+frozen-vision]
        try:
            r = run_mode(mode, build(args.tiny, args.text_layers, attn), args, dev)
        except Exception as e:  # report and go on to the next mode
            r = dict(mode=mode, error=f"{type(e).__name__}: {str(e)[:300]}")
            if dev == "cuda":
                torch.cuda.empty_cache()
        print(json.dumps(r), flush=True)
        results.append(r)
    with open(os.path.join(args.out, "gpu_anchor.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
