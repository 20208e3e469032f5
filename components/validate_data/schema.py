"""The curated datasets' schemas and the quarantine's reason codes, defined once (README, "Data contract").

validate_data writes these tables; training streams `curated/` (captions) or `curated/` (conversations).
"""
from __future__ import annotations

import pyarrow as pa

# Curated caption pairs: one Parquet dataset of several files under DIR/curated/.
CAPTIONS = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    # A file URI (local path or s3://), or the URI of the WebDataset shard that holds the image ...
    pa.field("image", pa.string(), nullable=False),
    # ... with the image's member name in that shard (`{key}.jpg`); null for a plain file.
    pa.field("member", pa.string()),
    pa.field("caption", pa.string(), nullable=False),    # NFC-normalised
    pa.field("lang", pa.string(), nullable=False),       # ISO 639-1, declared or identified
    pa.field("source", pa.string(), nullable=False),
    pa.field("sea_score", pa.float32(), nullable=False),  # Southeast-Asian relevance in [0, 1)
    pa.field("lang_score", pa.float32()),                # detector's confidence in `lang`; null = abstained
    pa.field("clip_score", pa.float32()),                # image-text cosine; null without a CLIP model
    pa.field("sha256", pa.string(), nullable=False),     # of the image bytes
    pa.field("phash", pa.string(), nullable=False),      # 64-bit perceptual hash, 16 hex digits
    pa.field("width", pa.int32(), nullable=False),
    pa.field("height", pa.int32(), nullable=False),
])

# Curated instruction conversations (SFT): the messages format, images as URIs (or shard URI + member).
CONVERSATIONS = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("messages", pa.string(), nullable=False),   # JSON: [{"role", "content": [{"type", ...}]}]
    pa.field("images", pa.list_(pa.string()), nullable=False),
    pa.field("lang", pa.string()),
    pa.field("source", pa.string(), nullable=False),
    pa.field("chars", pa.int32(), nullable=False),       # text length of the whole conversation
])

# Rows set aside: where each came from, why, and its original fields (JSON, long values cut).
QUARANTINE = pa.schema([
    pa.field("id", pa.string()),
    pa.field("unit", pa.string(), nullable=False),       # the manifest or shard it was read from
    pa.field("position", pa.int64(), nullable=False),    # its row (manifest) or sample (shard) number there
    pa.field("reason", pa.string(), nullable=False),     # a code from REASONS
    pa.field("detail", pa.string(), nullable=False),     # readable, at most DETAIL_CHARS characters
    pa.field("record", pa.string(), nullable=False),     # the original fields as JSON, values cut
])

# Internal columns a check task adds for the merge step (dropped from the curated output).
ORDINAL = "_ordinal"   # global reading order: unit index * 2**32 + position; dedupe keeps the first
UNIT = "_unit"
PAIR_KEY = "_pair"     # hash of image bytes + normalised caption (exact duplicates)

REASONS = {
    # the record itself
    "record_unreadable": "the line or sample could not be parsed (not JSON, not a record, wrong types)",
    "missing_field": "a required field is absent or null",
    "id_invalid": "the id is empty or not a string/number",
    "shard_truncated": "the sample was cut off by the end of a truncated shard",
    "member_name_unsafe": "a shard member's name is absolute or leaves the archive (`../`)",
    # the image
    "image_missing": "the image file does not exist",
    "image_outside_root": "the image path leads outside the dataset's root",
    "image_empty": "the image file has zero bytes",
    "image_corrupt": "the bytes are not a decodable image",
    "image_truncated": "the image data ends early",
    "image_too_large": "more pixels than the decompression-bomb limit",
    "image_too_small": "a side is below the minimum",
    "image_aspect": "the aspect ratio is beyond the limit",
    "image_mode": "an unsupported pixel mode",
    "image_unreadable": "the storage refused or failed to return the image",
    # the caption
    "caption_empty": "no caption text",
    "caption_not_utf8": "the caption is not valid UTF-8",
    "caption_control_chars": "the caption contains control characters",
    "caption_too_long": "the caption is longer than the limit",
    # language and relevance
    "language_not_accepted": "the language is not one the run trains",
    "language_unknown": "no language declared and none identified with confidence",
    "language_mismatch": "language identification disagrees with the declared language",
    "low_sea_relevance": "Southeast-Asian relevance below the threshold",
    "low_clip_score": "image-text similarity below the threshold",
    # across rows (decided in the merge step)
    "duplicate_id": "an earlier row has the same id",
    "duplicate": "an earlier row has the same image bytes and normalised caption",
    "near_duplicate": "an earlier row in the same language has a near-identical image (perceptual hash)",
    "eval_overlap": "the image is (nearly) an image of an evaluation set",
    # conversations
    "conversation_invalid": "roles out of order, an empty turn, or no assistant answer",
    "image_count_mismatch": "the number of <image> placeholders differs from the images given",
    "unsupported_media": "video or another medium the model cannot take",
    "conversation_too_long": "the conversation's text is longer than the limit",
}

DETAIL_CHARS = 300
VALUE_CHARS = 200


def cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how long it was."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text)} characters]"
