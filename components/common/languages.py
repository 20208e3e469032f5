"""The languages the project trains and evaluates by default, and the instruction that asks for a caption in
each. Defined here once: validation, the pipeline's defaults, evaluation and the demo all read this list."""
from __future__ import annotations

# English plus the Southeast-Asian languages of SEA-HELM's vision tasks (ISO 639-1; Tagalog is `tl`).
LANGUAGES = ("en", "id", "ms", "th", "vi", "tl", "zh", "ta")

# The same text in training (CPT caption pairs) and in evaluation (captioning prompts).
CAPTION_PROMPTS = {
    "en": "Describe the image in English.",
    "id": "Jelaskan gambar ini dalam bahasa Indonesia.",
    "ms": "Huraikan gambar ini dalam bahasa Melayu.",
    "th": "อธิบายภาพนี้เป็นภาษาไทย",
    "vi": "Mô tả hình ảnh này bằng tiếng Việt.",
    "tl": "Ilarawan ang larawang ito sa Tagalog.",
    "zh": "用中文描述这张图片。",
    "ta": "இந்தப் படத்தை தமிழில் விவரிக்கவும்.",
}


def caption_prompt(lang: str) -> str:
    """The instruction that asks for a caption in `lang`."""
    try:
        return CAPTION_PROMPTS[lang]
    except KeyError:
        raise ValueError(f"no caption instruction for language {lang!r}; known: {sorted(CAPTION_PROMPTS)}") from None

