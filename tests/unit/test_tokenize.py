"""Text -> token ids without Ray: tokenizers round-trip, unknowns, padding, truncation, bad texts."""

import numpy as np
import pyarrow as pa
import pytest

from pipeline.data.batches import SequenceBatch
from pipeline.data.tokenize import PAD_ID, UNK_ID, decode, fit_tokenizer, tokenize_batch, tokens
from pipeline.errors import DataError

TRAIN = ["The film is a joy to watch.", "A dull, tedious film!", "Joy and wit: a fine film."]


def fitted(kind, *, vocab_size=200, lowercase=True, max_tokens=64):
    return fit_tokenizer([TRAIN], kind=kind, vocab_size=vocab_size, lowercase=lowercase, max_tokens=max_tokens)


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_char_and_bpe_round_trip_what_they_saw(kind):
    info = fitted(kind)
    batch = tokenize_batch(pa.table({"x": ["a fine film, a joy."], "y": [1]}), column="x", info=info)
    ids = batch.column("x").to_pylist()[0]
    assert UNK_ID not in ids and decode(ids, info) == "a fine film, a joy."


def test_word_tokens_are_words_and_punctuation_lowercased():
    assert tokens("The film, Dull!", fitted("word")) == ["the", "film", ",", "dull", "!"]
    assert tokens("The film", fitted("word", lowercase=False)) == ["The", "film"]


def test_unknown_tokens_map_to_unk_and_pad_is_id_0():
    info = fitted("word")
    ids = tokenize_batch(pa.table({"x": ["zebra film"]}), column="x", info=info).column("x").to_pylist()[0]
    assert ids[0] == UNK_ID and ids[1] not in (UNK_ID, PAD_ID)


def test_vocab_size_keeps_the_most_frequent_tokens():
    info = fitted("word", vocab_size=4)  # <pad>, <unk> and the two most frequent words
    ids = tokenize_batch(pa.table({"x": ["film a tedious"]}), column="x", info=info).column("x").to_pylist()[0]
    assert info.vocab_size == 4 and ids[2] == UNK_ID and UNK_ID not in ids[:2]


def test_long_texts_are_truncated_and_flagged():
    info = fitted("char", max_tokens=5)
    out = tokenize_batch(pa.table({"x": ["a joy", "a fine film"]}), column="x", info=info)
    assert [len(i) for i in out.column("x").to_pylist()] == [5, 5]
    assert out.column("truncated").to_pylist() == [False, True]


def test_collated_token_batches_pad_with_id_0():
    info = fitted("word")
    rows = tokenize_batch(pa.table({"x": ["a film", "a dull tedious film"], "y": [0, 1]}), column="x", info=info)
    batch = SequenceBatch("class")(rows)
    x = batch["x"][..., 0].numpy()  # (B, T) ids as floats
    assert batch["lengths"].tolist() == [2, 4] and np.all(x[0, 2:] == PAD_ID) and np.all(x[1] != PAD_ID)


@pytest.mark.parametrize(
    ("texts", "says"),
    [(["fine", "   "], "whitespace-only"), (["fine", None], "missing text"), ([1, 2], "expected strings")],
)
def test_bad_texts_are_one_sentence_data_errors(texts, says):
    with pytest.raises(DataError, match=says):
        tokenize_batch(pa.table({"x": texts}), column="x", info=fitted("word"))


def test_id_tokens_name_what_the_model_saw():
    from pipeline.data.tokenize import id_tokens

    info = fitted("word")
    ids = tokenize_batch(pa.table({"x": ["A dull zebra!"]}), column="x", info=info).column("x").to_pylist()[0]
    assert id_tokens([*ids, PAD_ID, PAD_ID], info) == ["a", "dull", "<unk>", "!"]


@pytest.mark.parametrize("kind", ["bpe", "char"])
def test_kept_whole_matches_are_single_tokens_and_decode_back(kind):
    from pipeline.data.tokenize import decode_batch, encode_texts

    texts = ["Hello %(name)s!", "Delete %(count)d items? %(name)s", "The {name} page", "Hello world, again"]
    info = fit_tokenizer(
        [texts * 5], kind=kind, vocab_size=60, lowercase=False, max_tokens=60, keep_whole=[r"%\(\w+\)[sd]", r"\{\w+\}"]
    )
    assert "%(name)s" in tokens("Hi %(name)s.", info) and "{name}" in tokens("The {name} page", info)
    ids, _ = encode_texts(texts, info)
    assert decode_batch(ids.to_pylist(), info) == texts  # spaces around the whole tokens restored
