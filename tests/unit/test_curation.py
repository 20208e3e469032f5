"""The curation rules one by one: near duplicates by banded pHash, Southeast-Asian relevance, language
identification and when it abstains, path confinement, SFT conversations and their seeded selection, and
image-text similarity with a (tiny, random) CLIP model."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from components.validate_data import checks, dedupe
from components.validate_data.checks import Reject
from components.validate_data.core import ValidateConfig, validate
from tests.support import corpus


def test_near_duplicates_are_found_within_the_bit_budget_and_the_group():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, size=200, dtype=np.uint64)
    flip = lambda h, bits: h ^ np.uint64(sum(1 << b for b in bits))  # noqa: E731
    hashes = np.concatenate([base, [flip(base[3], [0, 20, 40]), flip(base[4], [1, 17, 33, 60]), base[5]]])
    groups = np.zeros(len(hashes), dtype=np.int64)
    groups[-1] = 1   # the exact copy of row 5, but in another language
    near = dedupe.earliest_near(hashes, groups, max_bits=3)
    assert near[200] == 3            # 3 bits apart: found, whichever band they share
    assert near[201] == -1           # 4 bits apart: beyond the budget
    assert near[202] == -1           # same image, other group
    assert (near[:200] == -1).all()  # random hashes are ~32 bits apart
    assert dedupe.earliest_near(hashes, np.zeros(len(hashes), dtype=np.int64), 3)[202] == 5
    refs = np.array([flip(base[10], [5, 6])], dtype=np.uint64)
    assert list(np.flatnonzero(dedupe.near_any(base, refs, 3) >= 0)) == [10]


def test_sea_relevance_reads_places_foods_and_scripts_without_spaces():
    score = lambda text, lang=None: checks.sea_relevance([text], lang)  # noqa: E731
    assert score("A dog sleeping on a sofa")[0] == 0.0
    s, terms = score("Eating nasi goreng and satay at a night market in Jakarta")
    assert terms == ["jakarta", "nasi goreng", "satay"] and s == pytest.approx(1 - np.exp(-3))
    assert score("ร้านขายผัดไทยริมถนน")[1] == ["ผัดไทย"]                 # Thai: substring, no spaces
    assert score("Phở bò ở Hà Nội")[1] == ["hà nội", "phở"]               # Vietnamese, NFC and case folded
    assert score("Seekor kucing tidur", "id")[0] == pytest.approx(1 - np.exp(-0.5))  # the language prior
    assert score("https://example.org/photos/bali-beach.jpg")[1] == ["bali"]  # metadata such as a URL


def test_language_identification_and_when_it_abstains():
    ident = checks.LanguageIdentifier(["en", "id", "ms", "tl", "th", "vi", "jv"], min_chars=20, min_confidence=0.6)
    ok = ident.check("Seorang penjual sate di pasar malam sedang menyiapkan dagangannya", "id")
    assert ok.reject is None and ok.score > 0.6
    # Malay and Indonesian are too close to tell apart: no rejection either way
    assert ident.check("Seorang penjual sate di pasar malam sedang menyiapkan dagangannya", "ms").reject is None
    assert ident.check("Isang tindera ng adobo at sinigang sa palengke ng Maynila", "tl").reject is None
    # Javanese is unknown to the detector: it abstains
    assert ident.check("Wong wadon iku lagi adol sate ing pasar", "jv") == checks.LanguageVerdict("jv", None)
    bad = ident.check("Street vendors grilling satay at the busy night market in Bangkok", "vi")
    assert bad.reject.reason == "language_mismatch" and "identified 'en'" in bad.reject.detail
    assert ident.check("ok", "vi").reject is None                                 # too short to judge
    assert ident.check("ok", None).reject.reason == "language_unknown"
    named = ident.check("Một người phụ nữ bán phở trên vỉa hè ở Hà Nội", None)
    assert named.lang == "vi" and named.reject is None
    assert ident.check("ผู้หญิงขายส้มตำที่ตลาดในกรุงเทพ", "th") == checks.LanguageVerdict("th", 1.0)  # its script
    assert ident.check("A woman selling som tam at a market", "th").reject.reason == "language_mismatch"
    # languages the detector also weighs are named, and set aside unless accepted
    wider = checks.LanguageIdentifier(["en", "id"], min_chars=20, min_confidence=0.6, extra=["en", "fr"])
    french = wider.check("Ceci est une phrase en français sur le marché", None).reject
    assert french.reason == "language_not_accepted" and "identified 'fr'" in french.detail
    assert ident.check("Seorang penjual sate", "de").reject.reason == "language_not_accepted"


@pytest.mark.parametrize(("root", "base", "ref", "expected"), [
    ("/data", "/data/m", "img/a.jpg", "/data/m/img/a.jpg"),
    ("/data", "/data/m", "../other/a.jpg", "/data/other/a.jpg"),
    ("/data", "/data/m", "../../etc/passwd", None),
    ("/data", "/data", "/etc/passwd", None),
    ("/data", "/data", "/data2/a.jpg", None),
    ("s3://b/data", "s3://b/data/m", "img/a.jpg", "s3://b/data/m/img/a.jpg"),
    ("s3://b/data", "s3://b/data", "s3://other/data/a.jpg", None),
    ("s3://b/data", "s3://b/data", "../x/a.jpg", None),
])
def test_image_paths_are_confined_to_the_dataset_root(root, base, ref, expected):
    got = checks.confine(root, base, ref)
    if expected is None:
        assert isinstance(got, Reject) and got.reason == "image_outside_root"
    else:
        assert got == expected


def _archive(path, members: dict[str, bytes], mode: str = "w") -> None:
    import io
    import tarfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _conversations(tmp_path):
    (tmp_path / "images").mkdir()
    for i in range(3):
        (tmp_path / "images" / f"{i}.jpg").write_bytes(corpus.jpeg(i))
    # MAmmoTH-VL keeps its images in tar archives: a record may name a member as `archive.tar!/member`
    _archive(tmp_path / "media" / "shard_0.tar", {"single_image_data/10.jpg": corpus.jpeg(10)})
    _archive(tmp_path / "media" / "shard_1.tar.gz", {"single_image_data/11.jpg": corpus.jpeg(11)}, "w:gz")
    ask = lambda text, n=1: [{"from": "human", "value": "<image>\n" * n + text}, {"from": "gpt", "value": "Ya."}]  # noqa: E731
    rows = [{"id": f"ok-{i}", "image": f"images/{i % 3}.jpg", "source": "mammoth-a" if i % 2 else "mammoth-b",
             "conversations": ask(f"Apa ini? {i}")} for i in range(20)]
    rows += [
        {"id": "messages", "images": ["images/0.jpg"], "source": "mammoth-a", "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A picture."}]}]},
        {"id": "two-placeholders", "image": "images/1.jpg", "conversations": ask("x", 2)},
        {"id": "no-answer", "image": "images/1.jpg", "conversations": ask("x")[:1]},
        {"id": "video", "video": "clips/a.mp4", "conversations": ask("x")},
        {"id": "outside", "image": "../../etc/passwd", "conversations": ask("x")},
        {"id": "unknown-role", "image": "images/1.jpg",
         "conversations": [{"from": "robot", "value": "<image>x"}, {"from": "gpt", "value": "y"}]},
        {"id": "text-type", "messages": [{"role": "user", "content": [{"type": "audio"}]},
                                         {"role": "assistant", "content": "y"}]},
        {"id": "in-tar", "image": "media/shard_0.tar!/single_image_data/10.jpg", "conversations": ask("x")},
        {"id": "in-tar-gz", "image": "media/shard_1.tar.gz!/single_image_data/11.jpg", "conversations": ask("x")},
        {"id": "member-escapes", "image": "media/shard_0.tar!/../../../etc/passwd", "conversations": ask("x")},
        {"id": "member-missing", "image": "media/shard_0.tar!/single_image_data/nope.jpg", "conversations": ask("x")},
    ]
    return corpus.write_jsonl(tmp_path / "sft.jsonl", rows)


def test_conversations_are_checked_and_read_by_the_trainer(tmp_path):
    manifest = _conversations(tmp_path)
    report = validate(str(manifest), tmp_path / "out", ValidateConfig(max_quarantined_fraction=0.5))
    assert report.kind == "conversations" and report.rows_curated == 23
    reasons = {r["id"]: r["reason"] for r in pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()}
    assert reasons == {"two-placeholders": "image_count_mismatch", "no-answer": "conversation_invalid",
                       "video": "unsupported_media", "outside": "image_outside_root",
                       "unknown-role": "conversation_invalid", "text-type": "unsupported_media",
                       "member-escapes": "image_outside_root", "member-missing": "image_missing"}
    from components.train.data import RowSource, chat_sample

    out = str(tmp_path / "out" / "curated")
    samples = [chat_sample(row, out) for row in RowSource(out).unit_rows(0)]   # what the trainer's stream reads
    turns = samples[0]
    assert [t["role"] for t in turns] == ["user", "assistant"]
    assert turns[0]["content"][0]["type"] == "image" and turns[0]["content"][0]["image"].size == (128, 96)
    curated = {r["id"]: r for r in pq.read_table(tmp_path / "out" / "curated").to_pylist()}
    assert curated["in-tar"]["images"] == [f"{tmp_path}/media/shard_0.tar!/single_image_data/10.jpg"]
    ids = [r["id"] for r in pq.read_table(tmp_path / "out" / "curated").to_pylist()]
    for name in ("in-tar", "in-tar-gz"):   # the trainer reads archive members too
        assert samples[ids.index(name)][0]["content"][0]["image"].size == (128, 96)


def test_a_seeded_selection_with_a_source_mixture(tmp_path):
    manifest = _conversations(tmp_path)
    cfg = ValidateConfig(max_quarantined_fraction=0.5, sample_size=10, mixture="mammoth-a=0.7,mammoth-b=0.3", seed=1)
    first = validate(str(manifest), tmp_path / "a", cfg)
    validate(str(manifest), tmp_path / "b", cfg)
    other = validate(str(manifest), tmp_path / "c", cfg.model_copy(update={"seed": 2}))
    ids = lambda d: sorted(pq.read_table(d / "curated").column("id").to_pylist())  # noqa: E731
    assert ids(tmp_path / "a") == ids(tmp_path / "b") != ids(tmp_path / "c")
    sources = pq.read_table(tmp_path / "a" / "curated").column("source").to_pylist()
    assert sources.count("mammoth-a") == 7 and sources.count("mammoth-b") == 3
    assert first.rows_in == first.rows_curated + first.rows_quarantined + first.rows_not_selected == 31
    assert other.rows_curated == 10
    with pytest.raises(ValueError, match="mixture names source"):
        validate(str(manifest), tmp_path / "d", cfg.model_copy(update={"mixture": "nope=1"}))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A random CLIP model folder, its processor and a character tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
        CLIPTextConfig,
        CLIPVisionConfig,
        PreTrainedTokenizerFast,
    )

    path = tmp_path_factory.mktemp("clip")
    text = CLIPTextConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, max_position_embeddings=128, projection_dim=16, bos_token_id=0,
                          eos_token_id=1, pad_token_id=1)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=16)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(path)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    vocab = {"[UNK]": 0, "[PAD]": 1, **{chr(c): i + 2 for i, c in enumerate(range(32, 127))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(path)
    return path


def test_image_text_similarity_is_kept_as_a_column_and_thresholded(tiny_clip, tmp_path):
    rows = corpus.image_manifest(tmp_path, 10)
    manifest = corpus.write_jsonl(tmp_path / "m.jsonl", rows)
    cfg = ValidateConfig(languages="en,id,th,vi,tl", clip_model=str(tiny_clip))
    validate(str(manifest), tmp_path / "all", cfg)
    scores = pq.read_table(tmp_path / "all" / "curated").column("clip_score").to_pylist()
    assert len(scores) == 10 and all(-1 <= s <= 1 for s in scores) and len(set(scores)) == 10
    cut = sorted(scores)[3]   # the three lowest fall below it
    report = validate(str(manifest), tmp_path / "cut",
                      cfg.model_copy(update={"min_clip_score": cut, "max_quarantined_fraction": 0.5,
                                                        "min_language_share": 0.0}))
    assert report.reasons == {"low_clip_score": 3} and report.rows_curated == 7
    detail = pq.read_table(tmp_path / "cut" / "quarantine.parquet").column("detail")[0].as_py()
    assert detail.startswith("image-text cosine")
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["reasons"] == {"low_clip_score": 3}
