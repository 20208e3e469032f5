"""Training samples: caption pairs (CPT) and conversations (SFT), each a conversation with its images."""
from __future__ import annotations

from components.common import records
from components.common.chat import attach_images, caption_conversation
from components.common.languages import caption_prompt

CAPTION_COLUMNS = ["image", "member", "caption", "lang"]


class CaptionSamples:
    """CPT samples from the curated caption dataset (validate_data's Parquet folder: image URIs resolved, or a
    shard URI and member). Holds the four columns it reads in memory; streaming them is the trainer's next step."""

    def __init__(self, dataset_uri: str):
        self.rows = list(records.iter_rows(dataset_uri, columns=CAPTION_COLUMNS))
        if not self.rows:
            raise ValueError(f"{dataset_uri} holds no caption pairs")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> list[dict]:
        row = self.rows[i]
        image = records.load_image(row["image"], row.get("member"))
        return attach_images(caption_conversation(row["caption"], caption_prompt(row["lang"])), [image])


def _conversation(row: dict) -> dict:
    if "messages" not in row:
        return records.llava_to_messages(row)
    if isinstance(row["messages"], str):   # the curated Parquet keeps messages as JSON
        import json

        return {**row, "messages": json.loads(row["messages"])}
    return row


class ChatSamples:
    """SFT samples: the curated conversations (Parquet), or a JSONL file in the messages format or LLaVA-style
    `conversations` (MAmmoTH-VL), converted on read. Image paths are taken relative to the file."""

    def __init__(self, manifest_uri: str):
        self.manifest_uri = manifest_uri
        self.rows = [_conversation(r) for r in records.iter_rows(manifest_uri)]
        for row in self.rows[:1]:
            records.require(row, records.SFT_REQUIRED, manifest_uri)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> list[dict]:
        row = self.rows[i]
        images = [records.load_image(records.resolve(self.manifest_uri, p)) for p in row.get("images") or []]
        return attach_images(row["messages"], images)


class WithReplay:
    """A stage's samples plus text-only rehearsal samples, `fraction` x as many, drawn without replacement
    where possible. Mixing some of the base model's text data back in keeps the text ability that pure
    caption or instruction training would otherwise wear away (the gate checks it)."""

    def __init__(self, primary, replay, fraction: float, seed: int):
        import random

        if not 0 <= fraction <= 1:
            raise ValueError(f"replay fraction must be within [0, 1], got {fraction}")
        self.primary, self.replay = primary, replay
        size = len(replay) if replay is not None else 0
        n = round(len(primary) * fraction) if size else 0
        # distinct draws while n <= size; past that, every replay sample repeats about n/size times
        self.replay_index = [i % size for i in random.Random(seed).sample(range(max(n, size)), n)]

    def __len__(self) -> int:
        return len(self.primary) + len(self.replay_index)

    def __getitem__(self, i: int):
        if i < len(self.primary):
            return self.primary[i]
        return self.replay[self.replay_index[i - len(self.primary)]]
