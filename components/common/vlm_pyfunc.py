"""The MLflow flavor of a registered model version: `mlflow.pyfunc.load_model("models:/NAME@champion")`.

A version is an MLflow model whose `weights/` folder is the `save_pretrained` folder training wrote (bf16
safetensors, config, processor), with `checksums.json` (sha256 of every file in it) and the model card
(`README.md`) beside. Loading checks the checksums (SEAVL_VERIFY_CHECKSUMS=0 skips that, e.g. in a server whose
copy was checked when it was downloaded).
This module is the version's loader (MLflow's `loader_module` workflow); it is copied into each version
(`code/`), so loading needs torch, transformers, pillow and pandas, not this project.

Request: rows (a pandas DataFrame, or a list of dicts) with
    prompt     str, required: the user's message
    image      bytes, optional: the image (any format Pillow reads)
    image_uri  str, optional: where the image is instead; the schemes a server follows are listed in
               SEAVL_IMAGE_URI_SCHEMES (default "https,s3,gs"; add "file" for local paths, "http" for plain
               HTTP), so that a caller cannot make a served model read its local files or internal addresses;
               at most SEAVL_MAX_IMAGE_BYTES (default 50 MB) are read
A row with neither is a text-only request. Params: `max_new_tokens` (default 128).
Response: one generated string per row, greedy, without special tokens.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

WEIGHTS = "weights"
CHECKSUMS = "checksums.json"
MAX_NEW_TOKENS = 128
BATCH = 8


class ChecksumMismatch(OSError):
    """A downloaded file differs from the one registered."""


def weights_folder(root: Path, check: bool = True) -> Path:
    """The save_pretrained folder of a downloaded version, its files checked against the registered checksums
    (ChecksumMismatch names any that differ, or a version without them); `root` itself when it is a plain
    save_pretrained folder."""
    root = Path(root)
    if not (root / "MLmodel").exists():
        return root
    if not (root / CHECKSUMS).exists():
        raise ChecksumMismatch(f"{root} has no {CHECKSUMS}: its weights cannot be checked")
    if check:
        verify(root / WEIGHTS, json.loads((root / CHECKSUMS).read_text(encoding="utf-8")))
    return root / WEIGHTS


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def checksums(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder`."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def verify(folder: Path, expected: dict[str, str]) -> None:
    """Raise ChecksumMismatch naming every file that is missing or differs from `expected`."""
    folder = Path(folder)
    bad = [rel for rel, digest in expected.items() if not (folder / rel).is_file() or sha256(folder / rel) != digest]
    if bad:
        raise ChecksumMismatch(f"{len(bad)} file(s) of {folder} are missing or differ from the registered "
                               f"checksums: {', '.join(sorted(bad)[:5])}")


def _load_pyfunc(path: str) -> VisionLanguageModel:
    return VisionLanguageModel(Path(path))


class VisionLanguageModel:
    """A Gemma-3 vision-language model answering prompts about images (module docstring for the request)."""

    def __init__(self, root: Path):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        folder = weights_folder(root, check=os.environ.get("SEAVL_VERIFY_CHECKSUMS", "1") != "0")
        cuda = torch.cuda.is_available()
        self.processor = AutoProcessor.from_pretrained(folder, trust_remote_code=False)
        self.model = AutoModelForImageTextToText.from_pretrained(
            folder, dtype=torch.bfloat16 if cuda else torch.float32, device_map="auto" if cuda else None,
            use_safetensors=True, trust_remote_code=False).eval()

    def predict(self, model_input, params: dict | None = None) -> list[str]:
        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        max_new = int((params or {}).get("max_new_tokens") or MAX_NEW_TOKENS)
        conversations = [_conversation(row) for row in rows]
        replies: list[str] = [""] * len(rows)
        # rows with and without an image go in separate batches: one processor call takes one kind
        for kind in (True, False):
            todo = [i for i, c in enumerate(conversations) if _has_image(c) == kind]
            for start in range(0, len(todo), BATCH):
                positions = todo[start:start + BATCH]
                for i, reply in zip(positions, self._generate([conversations[i] for i in positions], max_new),
                                    strict=True):
                    replies[i] = reply
        return replies

    def _generate(self, conversations: list[list[dict]], max_new_tokens: int) -> list[str]:
        import torch

        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"   # generation continues from the last position of every row
        batch = self.processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=True,
                                                   return_dict=True, return_tensors="pt",
                                                   processor_kwargs={"padding": True})
        device = next(self.model.parameters()).device
        batch = {k: v.to(device, dtype=self.model.dtype) if v.is_floating_point() else v.to(device)
                 for k, v in batch.items()}
        with torch.no_grad():
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
        return [r.strip() for r in self.processor.batch_decode(out[:, batch["input_ids"].shape[1]:],
                                                               skip_special_tokens=True)]


def _has_image(conversation: list[dict]) -> bool:
    return any(part.get("type") == "image" for part in conversation[0]["content"])


def _conversation(row: dict) -> list[dict]:
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"every row needs a non-empty `prompt` string, got {prompt!r}")
    content: list[dict] = [{"type": "text", "text": prompt}]
    image = _image(row)
    if image is not None:
        content.insert(0, {"type": "image", "image": image})
    return [{"role": "user", "content": content}]


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and value != value)  # pandas fills gaps with NaN


def _image(row: dict):
    from PIL import Image

    data, uri = row.get("image"), row.get("image_uri")
    if _present(data) and _present(uri):
        raise ValueError("a row gives `image` or `image_uri`, not both")
    if _present(uri):
        data = _read(str(uri))
    if not _present(data):
        return None
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f"`image` holds the image's bytes, got {type(data).__name__}; give a path or URI as "
                         "`image_uri`")
    try:
        return Image.open(io.BytesIO(data)).convert("RGB")
    except OSError as err:
        raise ValueError(f"the image cannot be read: {err}") from None


def _read(uri: str) -> bytes:
    """The bytes at `uri`, if its scheme is allowed (module docstring) and it is not too large."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else "file"
    allowed = {s.strip().lower() for s in os.environ.get("SEAVL_IMAGE_URI_SCHEMES", "https,s3,gs").split(",")}
    if scheme not in allowed:
        raise ValueError(f"image_uri scheme {scheme!r} is not allowed here (SEAVL_IMAGE_URI_SCHEMES: "
                         f"{','.join(sorted(allowed))}); send the image's bytes as `image`")
    limit = int(os.environ.get("SEAVL_MAX_IMAGE_BYTES", 50 * 1024 * 1024))
    if scheme in ("http", "https"):
        from urllib.request import urlopen

        with urlopen(uri, timeout=60) as f:  # noqa: S310 (the scheme is on the allow list)
            data = f.read(limit + 1)
    elif scheme == "file":
        with open(uri.removeprefix("file://"), "rb") as f:
            data = f.read(limit + 1)
    else:
        import fsspec

        with fsspec.open(uri, "rb") as f:
            data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"the image at {uri} is larger than {limit} bytes (SEAVL_MAX_IMAGE_BYTES)")
    return data
