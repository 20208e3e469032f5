"""Training samples: caption pairs (CPT) and conversations (SFT), each a conversation with its images."""
from __future__ import annotations

from components.common import records
from components.common.chat import attach_images, caption_conversation
from components.common.languages import caption_prompt


class CaptionSamples:
    """CPT samples from a curated caption manifest (image URIs already resolved by validate_data)."""

    def __init__(self, manifest_uri: str):
        self.rows = records.read_jsonl(manifest_uri)
        for row in self.rows[:1]:
            records.require(row, records.CAPTION_REQUIRED, manifest_uri)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> list[dict]:
        row = self.rows[i]
        image = records.load_image(row["image"])
        return attach_images(caption_conversation(row["caption"], caption_prompt(row["lang"])), [image])


class ChatSamples:
    """SFT samples: the messages format, or LLaVA-style `conversations` (MAmmoTH-VL), converted on read."""

    def __init__(self, manifest_uri: str):
        self.manifest_uri = manifest_uri
        self.rows = [r if "messages" in r else records.llava_to_messages(r) for r in records.read_jsonl(manifest_uri)]
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
