"""XM3600 captioning scored as SEA-HELM scores it: RefCLIPScore with a CLIP judge
(seahelm_tasks/vision/xm3600/refclipscore_metric.py, src/serving/offline/openclip_serving.py @6844e6c).

- The caption is the rest of the line after the answer tag, else the whole response (tasks.extract_answer, as for
  every generated answer).
- With L2-normalised features, CLIP-S = 2.5 x max(cos(image, caption), 0) and Ref = the largest cos(caption,
  reference) over the item's references. The item's RefCLIPScore is their harmonic mean 2 x CLIP-S x Ref /
  (CLIP-S + Ref); where both are 0 it is 0 (SEA-HELM would divide by zero).
- normalized_refclipscore = 100 x max(mean, 0), and the same for normalized_clipscore. null_count counts empty
  captions.

The judge is behind a two-method interface. SEA-HELM's is open_clip's `xlm-roberta-large-ViT-H-14`
(laion/CLIP-ViT-H-14-frozen-xlm-roberta-large-laion5B-s13B-b90k, fp32): `OpenClipJudge`, in the GPU image only,
because open-clip-torch needs torchvision and timm. `TransformersClipJudge` runs any transformers CLIPModel
folder; the tests use a tiny random one.
"""
from __future__ import annotations

import io
from typing import Protocol

import numpy as np

CLIP_WEIGHT = 2.5


class ClipJudge(Protocol):
    def image_features(self, images: list[bytes]) -> np.ndarray: ...
    def text_features(self, texts: list[str]) -> np.ndarray: ...


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.sum(x ** 2, axis=1, keepdims=True))


def refclipscore(judge: ClipJudge, images: list[bytes], captions: list[str], references: list[list[str]]
                 ) -> tuple[dict, list[float]]:
    """(metrics, per-item RefCLIPScore x 100) for captions already extracted from the responses."""
    if not (len(images) == len(captions) == len(references)):
        raise ValueError("images, captions and references must have one entry per item")
    if any(not refs for refs in references):
        raise ValueError("every item needs at least one reference caption")
    image = _unit(judge.image_features(images))
    caption = _unit(judge.text_features(captions))
    clip_s = CLIP_WEIGHT * np.clip(np.sum(image * caption, axis=1), 0, None)
    flat = [r for refs in references for r in refs]
    ref_features = _unit(judge.text_features(flat))
    ref_s, start = [], 0
    for i, refs in enumerate(references):
        ref_s.append(float(np.max(ref_features[start:start + len(refs)] @ caption[i])))
        start += len(refs)
    ref_s = np.array(ref_s)
    denom = clip_s + ref_s
    per = np.where(denom != 0, 2 * clip_s * ref_s / np.where(denom != 0, denom, 1), 0.0)
    metrics = {"normalized_refclipscore": 100 * max(float(per.mean()), 0.0),
               "normalized_clipscore": 100 * max(float(clip_s.mean()), 0.0),
               "refclipscore": float(per.mean()), "clipscore": float(clip_s.mean()),
               "null_count": sum(1 for c in captions if c == ""),
               # SEA-HELM does not clip Ref at 0: a negative best caption-reference cosine next to a positive CLIP-S
               # makes the harmonic mean leave [0, 1] (a weak judge's failure, counted here so that it shows)
               "negative_ref_count": int(np.sum(ref_s < 0))}
    return metrics, [100 * max(float(p), 0.0) for p in per]


class TransformersClipJudge:
    """A transformers CLIPModel and its processor from a save_pretrained folder, fp32, batched."""

    def __init__(self, model_dir: str, device: str | None = None, batch_size: int = 64):
        import torch
        from transformers import AutoProcessor, CLIPModel

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = CLIPModel.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True).to(self.device)
        self.model.eval()
        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.batch_size = batch_size

    def image_features(self, images: list[bytes]) -> np.ndarray:
        import torch
        from PIL import Image

        out = []
        for i in range(0, len(images), self.batch_size):
            pil = [Image.open(io.BytesIO(b)).convert("RGB") for b in images[i:i + self.batch_size]]
            inputs = self.processor(images=pil, return_tensors="pt").to(self.device)
            with torch.no_grad():
                out.append(_features(self.model.get_image_features(**inputs)))
        return np.vstack(out)

    def text_features(self, texts: list[str]) -> np.ndarray:
        import torch

        texts = with_eos(self.processor.tokenizer, texts)
        out = []
        for i in range(0, len(texts), self.batch_size):
            inputs = self.processor(text=texts[i:i + self.batch_size], return_tensors="pt", padding=True,
                                    truncation=True).to(self.device)
            with torch.no_grad():
                out.append(_features(self.model.get_text_features(**inputs)))
        return np.vstack(out)


def with_eos(tokenizer, texts: list[str]) -> list[str]:
    """CLIP pools a text at its end-of-sequence token; a tokenizer that does not append one (a causal LM's, as in
    the demo) gets it appended, or every text would be pooled at its first token."""
    eos = tokenizer.eos_token
    if eos is None or tokenizer("a")["input_ids"][-1] == tokenizer.eos_token_id:
        return texts
    return [t + eos for t in texts]


def _features(output) -> np.ndarray:
    tensor = output if hasattr(output, "cpu") else output.pooler_output
    return tensor.float().cpu().numpy()


class OpenClipJudge:
    """SEA-HELM's judge: open_clip `xlm-roberta-large-ViT-H-14` from a local `open_clip_pytorch_model.bin` (the GPU
    image has open-clip-torch). Its text tower tokenises with xlm-roberta-large's Hugging Face tokenizer, which
    open_clip loads by name: `hf_cache` is a Hugging Face cache folder that holds it, so that nothing is downloaded
    at run time (HF_HUB_OFFLINE=1 in the image)."""

    ARCH = "xlm-roberta-large-ViT-H-14"

    def __init__(self, checkpoint: str, device: str | None = None, batch_size: int = 64, hf_cache: str = ""):
        import open_clip
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(self.ARCH, pretrained=checkpoint,
                                                                               device=self.device)
        self.model.eval()
        self.tokenizer = (open_clip.get_tokenizer(self.ARCH, cache_dir=hf_cache) if hf_cache
                          else open_clip.get_tokenizer(self.ARCH))
        self.batch_size = batch_size

    def image_features(self, images: list[bytes]) -> np.ndarray:
        import torch
        from PIL import Image

        out = []
        for i in range(0, len(images), self.batch_size):
            batch = torch.stack([self.preprocess(Image.open(io.BytesIO(b)).convert("RGB"))
                                 for b in images[i:i + self.batch_size]]).to(self.device)
            with torch.no_grad():
                out.append(self.model.encode_image(batch).float().cpu().numpy())
        return np.vstack(out)

    def text_features(self, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        for i in range(0, len(texts), self.batch_size):
            with torch.no_grad():
                tokens = self.tokenizer(texts[i:i + self.batch_size]).to(self.device)
                out.append(self.model.encode_text(tokens).float().cpu().numpy())
        return np.vstack(out)
