"""The embedded default is deterministic and cached by its generator's hash."""
import json
from pathlib import Path

from components.common import records
from components.common.languages import LANGUAGES
from components.common.storage import fingerprint
from components.evaluate.tasks import get_task
from demo import corpus
from demo.build import generator_hash

SMALL = corpus.CorpusSizes(cpt_scenes=6, sft_scenes=6, eval_scenes_per_lang=1, mc_per_lang=4, text_per_lang=1)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = corpus.build_corpus(tmp_path / "a", seed=7, sizes=SMALL)
    corpus.build_corpus(tmp_path / "b", seed=7, sizes=SMALL)
    corpus.build_corpus(tmp_path / "c", seed=8, sizes=SMALL)
    assert fingerprint(str(tmp_path / "a")) == fingerprint(str(tmp_path / "b")) != fingerprint(str(tmp_path / "c"))
    assert a["captions"] == 6 * SMALL.cpt_langs_per_scene and a["eval_mc"] == 4 * len(LANGUAGES)


def test_cache_key_follows_seed_and_source():
    assert generator_hash(1) == generator_hash(1) != generator_hash(2)


def test_demo_records_follow_the_data_contracts(demo):
    cap = json.loads(Path(demo.captions).read_text().splitlines()[0])
    records.require(cap, records.CAPTION_REQUIRED, "captions")
    for task in ("captions", "multiple_choice", "text"):
        t = get_task(task)
        item = json.loads((Path(demo.eval_dir) / t.filename).read_text().splitlines()[0])
        records.require(item, t.required, t.filename)
    mc = json.loads((Path(demo.eval_dir) / "mc.jsonl").read_text().splitlines()[0])
    assert 0 <= mc["answer"] < len(mc["options"])
    info = json.loads((demo.root / "DONE").read_text())
    # the base model learned its text before any image: the loss fell from ~ln(vocab) to well under 1
    assert info["text_pretrain_loss"]["first"] > 6 and info["text_pretrain_loss"]["last"] < 0.5
