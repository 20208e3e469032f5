"""Instructions the model is given, per language: the same text in training and in evaluation."""
from __future__ import annotations

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
