"""Row-level curation of one unit: every record becomes a candidate row or a quarantined row with its reason.

`RowChecker` holds the scorers built once per worker (language detector, lexicon, optional CLIP model) and
turns `sources.Record`s into rows of the curated schema plus the merge step's internal columns.
"""
from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass

from components.common import records, storage
from components.validate_data import checks
from components.validate_data.checks import Reject
from components.validate_data.schema import ORDINAL, PAIR_KEY, UNIT, VALUE_CHARS, cut
from components.validate_data.sources import Record, Unit

METADATA_FIELDS = ("url", "title", "tags", "keywords", "alt", "page_title")   # read for relevance
LANG_FIELDS = ("lang", "language")


@dataclass
class Verdict:
    row: dict | None = None          # a candidate row
    reject: Reject | None = None
    image: bytes | None = None       # the row's image bytes (for image-text scoring)


def original(record: Record) -> str:
    """The record's original fields as JSON, each long value cut, bytes replaced by their length."""
    if record.raw is not None and not record.fields:
        return json.dumps({"line": cut(record.raw, VALUE_CHARS)}, ensure_ascii=False)

    def short(value):
        if isinstance(value, bytes):
            return f"<{len(value)} bytes>"
        if isinstance(value, str):
            return cut(value, VALUE_CHARS)
        if isinstance(value, dict):
            return {k: short(v) for k, v in list(value.items())[:20]}
        if isinstance(value, list):
            return [short(v) for v in value[:20]]
        return value

    text = json.dumps({k: short(v) for k, v in record.fields.items()}, ensure_ascii=False, default=str)
    return text.encode("utf-8", "replace").decode("utf-8")


def quarantine_row(record: Record, unit: Unit, reject: Reject) -> dict:
    rid = record.fields.get("id") if record.fields else None
    return {"id": None if rid is None else cut(str(rid), VALUE_CHARS), "unit": unit.uri, "position": record.position,
            "reason": reject.reason, "detail": cut(reject.detail, 300), "record": original(record)}


def record_id(fields: dict) -> str | Reject:
    rid = fields.get("id", fields.get("key"))
    if rid is None:
        return Reject("missing_field", "no `id`")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or not str(rid).strip():
        return Reject("id_invalid", f"id {cut(repr(rid), 80)} is not a non-empty string or integer")
    return str(rid)


def declared_language(fields: dict) -> str | None | Reject:
    value = next((fields[f] for f in LANG_FIELDS if fields.get(f) is not None), None)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        return Reject("record_unreadable", f"lang is {cut(repr(value), 40)}, expected an ISO 639-1 code")
    return value.strip().lower().replace("_", "-").split("-")[0]


class RowChecker:
    def __init__(self, cfg, unit: Unit):
        self.cfg, self.unit = cfg, unit
        self.languages = checks.LanguageIdentifier(cfg.language_list, cfg.lang_min_chars, cfg.lang_min_confidence,
                                                   cfg.lang_high_accuracy, records.split_list(cfg.lang_extra))
        self.lexicon = checks.load_lexicon()
        self.base = storage.parent(unit.uri)

    def read_image(self, record: Record, ref) -> tuple[str, str | None, bytes] | Reject:
        """(URI, member, bytes) of the record's image: from the shard, or the file it names under the dataset
        root, or a member of a tar archive there (`media/shard_0.tar!/images/a.jpg`; member None for a file)."""
        if record.image_bytes is not None:
            return self.unit.uri, record.member, record.image_bytes
        if isinstance(ref, (dict, bytes)):
            return Reject("record_unreadable", "embedded image bytes are not supported in a manifest: write the "
                                               "images as files or WebDataset shards")
        if not isinstance(ref, str) or not ref.strip():
            return Reject("missing_field", f"no image path (image = {cut(repr(ref), 60)})")
        path, member = records.split_member(ref)
        uri = checks.confine(self.unit.root, self.base, path)
        if isinstance(uri, Reject):
            return uri
        if member is not None and (member.startswith("/") or ".." in member.split("/")):
            return Reject("image_outside_root", f"archive member {cut(member, 120)!r} leads outside its archive")
        try:
            return uri, member, records.read_image_bytes(uri, member)
        except FileNotFoundError as err:
            return Reject("image_missing", cut(f"{err}" if member else f"{uri} does not exist", 200))
        except IsADirectoryError:
            return Reject("image_missing", f"{cut(uri, 200)} is a folder")
        except (OSError, RuntimeError, tarfile.TarError) as err:   # faults that survived fsspec's retries
            return Reject("image_unreadable", cut(f"{uri}: {err}", 200))

    def image(self, data: bytes) -> checks.ImageInfo | Reject:
        c = self.cfg
        return checks.inspect_image(data, min_side=c.min_side, max_aspect=c.max_aspect, max_pixels=c.max_pixels)

    def caption_text(self, record: Record) -> dict | Reject:
        """The table checks of a caption pair (id, caption, language, relevance), before any image is read."""
        if record.problem:
            return Reject(*record.problem)
        fields = record.fields
        rid = record_id(fields)
        if isinstance(rid, Reject):
            return rid
        caption = checks.check_caption(fields.get("caption"), self.cfg.min_caption_chars, self.cfg.max_caption_chars)
        if isinstance(caption, Reject):
            return caption
        declared = declared_language(fields)
        if isinstance(declared, Reject):
            return declared
        lang = self.languages.check(caption, declared)
        if lang.reject:
            return lang.reject
        metadata = [str(fields[f]) for f in METADATA_FIELDS if fields.get(f)]
        sea, terms = checks.sea_relevance([caption, *metadata], lang.lang, self.lexicon)
        if sea < self.cfg.min_sea_score:
            return Reject("low_sea_relevance", f"score {sea:.2f} < {self.cfg.min_sea_score} (terms found: "
                                               f"{terms or 'none'})")
        source = fields.get("source")
        return {"id": rid, "caption": caption, "lang": lang.lang, "lang_score": lang.score, "sea_score": sea,
                "source": str(source) if source else self.unit.source}

    def caption(self, record: Record, ordinal: int) -> Verdict:
        """A caption pair: the table checks (cheap) first, then the image is read, decoded and hashed."""
        text = self.caption_text(record)
        if isinstance(text, Reject):
            return Verdict(reject=text)
        got = self.read_image(record, record.fields.get("image"))
        if isinstance(got, Reject):
            return Verdict(reject=got)
        uri, member, data = got
        info = self.image(data)
        if isinstance(info, Reject):
            return Verdict(reject=info)
        row = {"id": text["id"], "image": uri, "member": member, "caption": text["caption"],
               "lang": text["lang"], "source": text["source"], "sea_score": text["sea_score"],
               "lang_score": text["lang_score"], "clip_score": None, "sha256": info.sha256, "phash": info.phash,
               "width": info.width, "height": info.height, ORDINAL: ordinal, UNIT: self.unit.uri,
               PAIR_KEY: checks.pair_key(info.sha256, text["caption"])}
        return Verdict(row=row, image=data)

    def conversation(self, record: Record, ordinal: int) -> Verdict:
        """An instruction sample (messages format or LLaVA-style `conversations`)."""
        if record.problem:
            return Verdict(reject=Reject(*record.problem))
        fields = record.fields
        rid = record_id(fields)
        if isinstance(rid, Reject):
            return Verdict(reject=rid)
        if fields.get("video"):
            return Verdict(reject=Reject("unsupported_media", f"video {cut(str(fields['video']), 80)!r}"))
        parsed = parse_conversation(fields)
        if isinstance(parsed, Reject):
            return Verdict(reject=parsed)
        messages, images = parsed
        chars = sum(len(c.get("text", "")) for m in messages for c in m["content"])
        if chars > self.cfg.max_conversation_chars:
            return Verdict(reject=Reject("conversation_too_long",
                                         f"{chars} characters of text, limit {self.cfg.max_conversation_chars}"))
        uris, hashes = [], []
        for ref in images:
            got = self.read_image(record, ref)
            if isinstance(got, Reject):
                return Verdict(reject=got)
            uri, member, data = got
            info = self.image(data)
            if isinstance(info, Reject):
                return Verdict(reject=Reject(info.reason, f"{cut(uri, 120)}: {info.detail}"))
            uris.append(f"{uri}{records.ARCHIVE_SEP}{member}" if member else uri)
            hashes.append(info.sha256)
        lang = declared_language(fields)
        text = json.dumps(messages, ensure_ascii=False, sort_keys=True)
        source = fields.get("source") or fields.get("data_source")
        return Verdict(row={
            "id": rid, "messages": text, "images": uris, "lang": lang if isinstance(lang, str) else None,
            "source": str(source) if source else self.unit.source, "chars": chars,
            ORDINAL: ordinal, UNIT: self.unit.uri, PAIR_KEY: checks.pair_key(",".join(hashes), text)})


def parse_conversation(fields: dict) -> tuple[list[dict], list] | Reject:
    """(messages, image references) of a sample, checked: roles in order, no empty turn, an assistant answer,
    as many image slots as images."""
    if "messages" in fields:
        messages = fields["messages"]
        if isinstance(messages, str):
            try:
                messages = json.loads(messages)
            except json.JSONDecodeError as err:
                return Reject("record_unreadable", f"messages is not JSON: {err.msg}")
        images = fields.get("images") or []
        placeholders = None
    elif "conversations" in fields:
        turns = fields["conversations"]
        if not isinstance(turns, list) or not all(isinstance(t, dict) and isinstance(t.get("value"), str)
                                                  for t in turns):
            return Reject("conversation_invalid", "conversations is not a list of {from, value} turns")
        placeholders = sum(t["value"].count("<image>") for t in turns)
        try:
            converted = records.llava_to_messages(fields)
        except (ValueError, KeyError, TypeError) as err:
            return Reject("conversation_invalid", cut(str(err), 200))
        messages, images = converted["messages"], converted["images"]
    else:
        return Reject("missing_field", "neither `messages` nor `conversations`")
    images = [images] if isinstance(images, str) else list(images)
    if not isinstance(messages, list) or not messages:
        return Reject("conversation_invalid", "no turns")
    roles = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
            m["content"] = content
        if not isinstance(content, list) or not content:
            return Reject("conversation_invalid", f"an empty or malformed turn: {cut(repr(m), 80)}")
        kinds = {c.get("type") for c in content if isinstance(c, dict)}
        if kinds - {"text", "image"}:
            return Reject("unsupported_media", f"content of type {sorted(kinds - {'text', 'image'})}")
        roles.append(m.get("role"))
    body = roles[1:] if roles[0] == "system" else roles
    expected = ["user", "assistant"] * (len(body) // 2 + 1)
    if not body or body != expected[:len(body)] or body[-1] != "assistant":
        return Reject("conversation_invalid", f"roles {roles}: expected user/assistant turns in turn, ending with "
                                              f"an answer")
    slots = sum(c.get("type") == "image" for m in messages for c in m["content"])
    if placeholders is not None and placeholders != len(images):
        return Reject("image_count_mismatch", f"{placeholders} <image> placeholder(s) for {len(images)} image(s)")
    if slots != len(images):
        return Reject("image_count_mismatch", f"{slots} image slot(s) for {len(images)} image(s)")
    return messages, images
