"""Text -> token ids: a tokenizer fitted on the training split, applied in Ray Data to every split.

The tokenizer is HF `tokenizers` (Rust, trained in seconds): `char` (every character a token),
`word` (words and punctuation, split on whitespace) or `bpe` (byte-pair merges over words, with
the word boundary kept as `▁`, so decoding restores the spaces). Ids 0 and 1 are `<pad>` and
`<unk>`: padding is id 0 (the embedding's `padding_idx`), a token the training split never had is
`<unk>`. Texts longer than `max_tokens` keep their first `max_tokens` tokens and are counted.

The fitted tokenizer is one JSON string (`Tokenizer.to_str`), kept in the model's DataInfo: it
travels with every checkpoint and logged model, and each Ray Data worker rebuilds it once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from pipeline.errors import DataError

TokenizerKind = Literal["char", "word", "bpe"]
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
BOS_TOKEN, EOS_TOKEN = "<s>", "</s>"  # a decoder's target side (translate): ids 2 and 3
BOS_ID, EOS_ID = 2, 3


@dataclass
class TextInfo:
    """How a model's text inputs were tokenized; saved with the model (DataInfo.text)."""

    tokenizer: TokenizerKind
    lowercase: bool
    max_tokens: int
    vocab_size: int
    tokenizer_json: str  # the fitted HF tokenizer
    truncated: dict[str, int] = field(default_factory=dict)  # split -> texts cut at max_tokens


def _new_tokenizer(kind: TokenizerKind, *, vocab_size: int, lowercase: bool, decoder_side: bool):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    specials = [PAD_TOKEN, UNK_TOKEN] + ([BOS_TOKEN, EOS_TOKEN] if decoder_side else [])  # ids 0, 1 (, 2, 3)
    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
        # "first": only a text's start gets the boundary mark, so text after a whole token (keep_whole) decodes back
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
        tok.decoder = decoders.Metaspace(prepend_scheme="first")
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    else:
        tok = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
        if kind == "word":
            tok.pre_tokenizer = pre_tokenizers.Whitespace()  # runs of word characters, runs of punctuation
        else:
            tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # every character
            tok.decoder = decoders.Fuse()
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tok.normalizer = normalizers.Sequence([normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else []))
    return tok, trainer


def fit_tokenizer(
    batches: Iterable[list[str]],
    *,
    kind: TokenizerKind,
    vocab_size: int,
    lowercase: bool,
    max_tokens: int,
    decoder_side: bool = False,
    keep_whole: Sequence[str] = (),
) -> TextInfo:
    """Train on batches of the training split's texts; the vocabulary keeps the `vocab_size` most
    frequent tokens (with <pad> and <unk>, and <s> and </s> for a decoder's target side). Every
    distinct match of a `keep_whole` pattern in the training texts (e.g. a placeholder `%(name)s`)
    becomes one token of its own, never split."""
    tok, trainer = _new_tokenizer(kind, vocab_size=vocab_size, lowercase=lowercase, decoder_side=decoder_side)
    texts = [t for batch in batches for t in batch]
    tok.train_from_iterator(iter([texts]), trainer)
    if keep_whole:
        patterns = [re.compile(p) for p in keep_whole]
        tok.add_tokens(sorted({m.group(0) for t in texts for p in patterns for m in p.finditer(t) if m.group(0)}))
    expected = {PAD_TOKEN: PAD_ID, UNK_TOKEN: UNK_ID} | ({BOS_TOKEN: BOS_ID, EOS_TOKEN: EOS_ID} if decoder_side else {})
    if any(tok.token_to_id(token) != i for token, i in expected.items()):
        raise RuntimeError(f"the tokenizer did not put its special tokens at their ids {expected}")
    return TextInfo(
        tokenizer=kind,
        lowercase=lowercase,
        max_tokens=max_tokens,
        vocab_size=tok.get_vocab_size(),
        tokenizer_json=tok.to_str(),
    )


@functools.lru_cache(maxsize=4)
def load_tokenizer(tokenizer_json: str):
    """The fitted tokenizer, built once per process."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer_json)


def texts_of(batch: pa.Table, *, column: str) -> list[str]:
    """A string column's texts; a missing, null, non-string or blank text is a DataError."""
    if column not in batch.column_names:
        raise DataError(f"text column '{column}' is missing (columns: {batch.column_names}); set data.columns")
    arr = batch.column(column)
    if pat.is_binary(arr.type) or pat.is_large_binary(arr.type):  # CSV readers leave non-UTF-8 text as bytes
        try:
            arr = arr.cast(pa.large_string() if pat.is_large_binary(arr.type) else pa.string())
        except pa.ArrowInvalid as err:
            raise DataError(f"text column '{column}' is not UTF-8 text; save the file as UTF-8") from err
    if not (pat.is_string(arr.type) or pat.is_large_string(arr.type)):
        raise DataError(f"text column '{column}' holds {arr.type}; expected strings")
    if arr.null_count:
        raise DataError(f"text column '{column}' has {arr.null_count} missing text(s); drop those rows")
    blank = int(pc.sum(pc.equal(pc.utf8_trim_whitespace(arr), "")).as_py() or 0)
    if blank:
        raise DataError(f"text column '{column}' has {blank} empty or whitespace-only text(s); drop those rows")
    return arr.to_pylist()


def encode_texts(texts: list[str], info: TextInfo) -> tuple[pa.ListArray, np.ndarray]:
    """Texts -> (token ids per text, list<int64>; truncated (B,) bool: cut at max_tokens)."""
    encodings = load_tokenizer(info.tokenizer_json).encode_batch(texts)
    ids = [e.ids for e in encodings]
    lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
    if len(lengths) and lengths.min() == 0:
        raise DataError(f"{int((lengths == 0).sum())} text(s) have no tokens (whitespace only); drop those rows")
    truncated = lengths > info.max_tokens
    return pa.array([i[: info.max_tokens] for i in ids], pa.list_(pa.int64())), truncated


def tokenize_batch(batch: pa.Table, *, column: str, info: TextInfo) -> pa.Table:
    """The text column replaced by its token ids (`x`), plus `truncated` (bool) for the count."""
    ids, truncated = encode_texts(texts_of(batch, column=column), info)
    rest = [name for name in batch.column_names if name != column]
    return pa.table({"x": ids, "truncated": pa.array(truncated), **{name: batch.column(name) for name in rest}})


def decode(ids: Iterable[int], info: TextInfo) -> str:
    """Ids -> text; padding and the special tokens are left out (skip_special_tokens)."""
    return load_tokenizer(info.tokenizer_json).decode([int(i) for i in ids if int(i) != PAD_ID])


def decode_batch(sequences: list[list[int]], info: TextInfo) -> list[str]:
    return load_tokenizer(info.tokenizer_json).decode_batch(sequences)


def tokens(text: str, info: TextInfo) -> list[str]:
    """The tokens of one text as the model sees them (for plots per token), truncated."""
    return load_tokenizer(info.tokenizer_json).encode(text).tokens[: info.max_tokens]


def id_tokens(ids: Iterable[int], info: TextInfo) -> list[str]:
    """Each id's token, as the model saw it (padding left out)."""
    tok = load_tokenizer(info.tokenizer_json)
    return [tok.id_to_token(int(i)) or UNK_TOKEN for i in ids if int(i) != PAD_ID]


def text_batches(batches: Iterator[pa.Table], *, column: str) -> Iterator[list[str]]:
    for batch in batches:
        yield texts_of(batch, column=column)
