"""Label masking: only model turns are trained on; image tokens, their delimiters, prompts, padding never."""
from components.common.chat import IGNORE, attach_images, caption_conversation, collate, special_image_ids


def _processor_and_config(demo):
    from transformers import AutoConfig, AutoProcessor

    return AutoProcessor.from_pretrained(demo.base_model), AutoConfig.from_pretrained(demo.base_model)


def test_caption_labels_cover_exactly_the_caption_and_end_of_turn(demo):
    from PIL import Image

    processor, config = _processor_and_config(demo)
    tok = processor.tokenizer
    images = [Image.new("RGB", (64, 64), (200, 30, 30)), Image.new("RGB", (64, 64), (30, 30, 200))]
    convs = [attach_images(caption_conversation(c, "Describe the image in English."), [im])
             for c, im in zip(["two red circles on the left", "one blue square"], images, strict=True)]
    batch = collate(processor, convs, special_image_ids(config))
    assert set(batch) >= {"input_ids", "attention_mask", "token_type_ids", "pixel_values", "labels"}
    for row, caption in enumerate(["two red circles on the left", "one blue square"]):
        ids, labels = batch["input_ids"][row], batch["labels"][row]
        kept = ids[labels != IGNORE].tolist()
        # what is trained on is the caption followed by <end_of_turn>, nothing else
        assert tok.decode(kept[:-1]) == caption
        assert kept[-1] == tok.convert_tokens_to_ids("<end_of_turn>")
        # every image position is an image token, bidirectional (token_type 1), and masked
        image_pos = (ids == config.image_token_id)
        assert int(image_pos.sum()) == config.mm_tokens_per_image
        assert bool((batch["token_type_ids"][row][image_pos] == 1).all())
        for special in (config.image_token_id, config.boi_token_id, config.eoi_token_id,
                        tok.convert_tokens_to_ids("<pad>")):
            assert bool((labels[ids == special] == IGNORE).all())
    # the shorter row is padded, and padding is never a label
    pad = batch["attention_mask"][1] == 0
    assert int(pad.sum()) > 0 and bool((batch["labels"][1][pad] == IGNORE).all())


def test_sft_labels_only_on_every_assistant_turn(demo):
    processor, config = _processor_and_config(demo)
    tok = processor.tokenizer
    conv = [{"role": "user", "content": [{"type": "text", "text": "What colour?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
            {"role": "user", "content": [{"type": "text", "text": "How many?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "two"}]}]
    batch = collate(processor, [conv], special_image_ids(config))
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    eot = tok.convert_tokens_to_ids("<end_of_turn>")
    kept = ids[labels != IGNORE].tolist()
    assert tok.decode([t for t in kept if t != eot]) .replace(" ", "") == "redtwo"
    assert kept.count(eot) == 2  # each assistant turn ends with a trained <end_of_turn>
    # user text is never trained on
    assert "What" not in tok.decode(kept) and "How" not in tok.decode(kept)


def test_attach_images_rejects_more_images_than_slots():
    import pytest

    with pytest.raises(ValueError, match="fewer image slots"):
        attach_images([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], ["img"])
