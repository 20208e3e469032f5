"""A tiny Gemma-3 vision-language model made from scratch: tokenizer, processor, chat template, weights.

The shapes are Gemma 3's (Gemma3ForConditionalGeneration with a SigLIP tower, a pooling projector and
bidirectional attention over image tokens), shrunk so that the whole pipeline trains on a CPU in minutes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>",
                  "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>")
BYTE_TOKENS = tuple(f"<0x{i:02X}>" for i in range(256))
CHAT_TEMPLATE_FILE = Path(__file__).with_name("chat_template.jinja")


@dataclass(frozen=True)
class TinyModelConfig:
    """Sizes of the tiny model. Image 64 px in 8 px patches gives an 8x8 grid, pooled 2x2 into 16 tokens."""
    vocab_size: int = 1024          # BPE merges learned on the demo corpus, plus specials and 256 byte tokens
    hidden_size: int = 96
    intermediate_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 24
    sliding_window: int = 512       # every position: the local layers see the whole turn (SEA-HELM's
                                    # prompts are longer than the demo's own)
    image_size: int = 64
    patch_size: int = 8
    vision_hidden: int = 64
    vision_layers: int = 2
    mm_tokens_per_image: int = 16   # a perfect square dividing (64/8)^2 = 64
    max_position_embeddings: int = 512
    seed: int = 0


def train_tokenizer(texts: list[str], vocab_size: int):
    """A Gemma-style BPE tokenizer (byte fallback, '▁' for spaces) trained on `texts`."""
    from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import GemmaTokenizer

    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    bpe.normalizer = normalizers.Replace(" ", "▁")
    # Learn merges inside words only; Gemma's own pipeline (no pre-tokenizer) then reproduces them.
    bpe.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(BYTE_TOKENS), special_tokens=list(SPECIAL_TOKENS),
                                  show_progress=False, max_token_length=8)
    bpe.train_from_iterator(texts, trainer=trainer)
    learned = sorted(bpe.get_vocab().items(), key=lambda kv: kv[1])
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + BYTE_TOKENS)}
    for tok, _ in learned:
        if tok not in vocab:
            vocab[tok] = len(vocab)
    merges = [tuple(m) if not isinstance(m, str) else tuple(m.split(" ")) for m in _merges(bpe)]
    tokenizer = GemmaTokenizer(
        vocab=vocab, merges=merges,
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>"},
        add_bos_token=True, add_eos_token=False, padding_side="right",
    )
    # The turn markers must stay atomic and be dropped by skip_special_tokens, as in Gemma's tokenizer.
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in ("<start_of_turn>", "<end_of_turn>")],
                         special_tokens=True)
    return tokenizer


def _merges(bpe) -> list:
    import json
    return json.loads(bpe.to_str())["model"]["merges"]


def build_processor(tokenizer, cfg: TinyModelConfig):
    """Gemma-3 processor around `tokenizer`, with the PIL image processor (no torchvision needed)."""
    from transformers import Gemma3Processor
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    image_processor = Gemma3ImageProcessorPil(
        size={"height": cfg.image_size, "width": cfg.image_size},
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], do_pan_and_scan=False,
    )
    return Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer,
                           chat_template=CHAT_TEMPLATE_FILE.read_text(),
                           image_seq_length=cfg.mm_tokens_per_image)


def build_model(tokenizer, cfg: TinyModelConfig):
    """A randomly initialised Gemma3ForConditionalGeneration of the tiny shape."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    ids = tokenizer.convert_tokens_to_ids
    layer_types = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(cfg.num_layers)]
    text = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim, sliding_window=cfg.sliding_window, layer_types=layer_types,
        max_position_embeddings=cfg.max_position_embeddings, query_pre_attn_scalar=cfg.head_dim,
        pad_token_id=ids("<pad>"), bos_token_id=ids("<bos>"), eos_token_id=[ids("<eos>"), ids("<end_of_turn>")],
    )
    vision = SiglipVisionConfig(
        image_size=cfg.image_size, patch_size=cfg.patch_size, hidden_size=cfg.vision_hidden,
        intermediate_size=cfg.vision_hidden * 2, num_hidden_layers=cfg.vision_layers, num_attention_heads=4,
        vision_use_head=False,
    )
    config = Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=cfg.mm_tokens_per_image,
        boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
        pad_token_id=ids("<pad>"), bos_token_id=ids("<bos>"), eos_token_id=[ids("<eos>"), ids("<end_of_turn>")],
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(cfg.seed)
    model = Gemma3ForConditionalGeneration(config)
    model.generation_config.eos_token_id = [ids("<eos>"), ids("<end_of_turn>")]
    model.generation_config.pad_token_id = ids("<pad>")
    return model
