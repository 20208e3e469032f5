"""The embedded default is deterministic and cached by its generator's hash."""
import json
from pathlib import Path

from components.common import records
from components.common.languages import LANGUAGES
from components.common.storage import fingerprint
from components.evaluate.seahelm.suite import load_suite
from demo import corpus
from demo.build import generator_hash

SMALL = corpus.CorpusSizes(cpt_scenes=6, sft_scenes=6)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = corpus.build_corpus(tmp_path / "a", seed=7, sizes=SMALL)
    corpus.build_corpus(tmp_path / "b", seed=7, sizes=SMALL)
    corpus.build_corpus(tmp_path / "c", seed=8, sizes=SMALL)
    assert fingerprint(str(tmp_path / "a")) == fingerprint(str(tmp_path / "b")) != fingerprint(str(tmp_path / "c"))
    assert a["captions"] == 6 * SMALL.cpt_langs_per_scene and a["cvqa"] == 16 * 5


def test_cache_key_follows_seed_and_source():
    assert generator_hash(1) == generator_hash(1) != generator_hash(2)


def test_demo_records_follow_the_data_contracts(demo):
    cap = json.loads(Path(demo.captions).read_text().splitlines()[0])
    records.require(cap, records.CAPTION_REQUIRED, "captions")
    # the evaluation suite reads the demo's files through the public-schema adapters, every task and language
    suite = load_suite(demo.suite)
    runs = suite.runs()
    assert {t for t, *_ in runs} == {"xm3600", "cvqa", "marvl", "world_cuisine_task1", "world_cuisine_task2",
                                     "translation-en-xx", "translation-xx-en"}
    assert {lang for _, lang, _, _ in runs} == set(LANGUAGES)
    from components.evaluate.seahelm.tasks import load_items

    for task, lang, data, root in runs:
        items = load_items(task, lang, data, root)
        assert len(items) >= 8 and len({i.id for i in items}) == len(items), (task, lang)
    sft = [json.loads(line) for line in Path(demo.root / "data" / "sft.jsonl").read_text().splitlines()]
    tagged = [r for r in sft if r["messages"][0]["content"][0]["type"] == "text"
              and "ANSWER" in r["messages"][0]["content"][0]["text"]]
    assert len(tagged) > 200   # SEA-HELM's prompt formats are part of the instruction mixture
    info = json.loads((demo.root / "DONE").read_text())
    # the base model learned its text before any image: the loss fell from ~ln(vocab) to well under 1
    assert info["text_pretrain_loss"]["first"] > 6 and info["text_pretrain_loss"]["last"] < 0.5
