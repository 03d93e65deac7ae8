"""Built-in datasets: raw data -> Parquet, written once and cached, then read like user data.

`SOURCES` maps a `data.source` name to its generator and options schema. `materialize` writes the
Parquet file (atomically, keyed by the options) and returns its path; a non-built-in source is a
path or URI to the user's own Parquet and is passed through.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from pipeline.data.sources import (
    adding,
    anomalies,
    chorales,
    digits,
    handwriting,
    japanese_vowels,
    numbers,
    parity,
    sentiment,
    series,
    spoken_digits,
    stocks,
    store_sales,
    text,
    ucr,
    ui_strings,
)


@dataclass(frozen=True)
class Source:
    name: str
    task: str
    size: str
    description: str
    options_model: type[BaseModel]
    generate: Callable[[Any], pa.Table]
    text: bool = False  # the sequence column holds text (data.text applies, with its defaults)
    fetched: bool = False  # generate(options, cache_dir=...) fetches a package into data.cache_dir once
    tokenizer: str = "word"  # text sources: data.text.tokenizer when the config sets no data.text
    audio: bool = False  # the sequence column holds WAV audio (data.audio applies, with its defaults)


SOURCES: dict[str, Source] = {
    "adding": Source(
        name="adding",
        size="10,000 generated sequences (data.options.num_sequences) x 100 steps x 2",
        task="regression",
        description="Adding problem (Hochreiter & Schmidhuber 1997): sum two marked values in a long sequence",
        options_model=adding.AddingOptions,
        generate=adding.generate,
    ),
    "digits": Source(
        name="digits",
        size="1,797 sequences x 8 steps x 8",
        task="classify",
        description="Handwritten digits (scikit-learn), each 8x8 image read as 8 rows of 8 pixels; 10 classes",
        options_model=digits.DigitsOptions,
        generate=digits.generate,
    ),
    "japanese_vowels": Source(
        name="japanese_vowels",
        size="640 sequences (270 train / 370 test) x 7-29 steps x 12",
        task="classify",
        description=(
            "JapaneseVowels (aeon): speaker of an /ae/ utterance from 12 LPC coefficients, 7-29 frames; 9 classes"
        ),
        options_model=japanese_vowels.JapaneseVowelsOptions,
        generate=japanese_vowels.generate,
    ),
    "parity": Source(
        name="parity",
        size="6,000 strings of 2-20 symbols (train, val) + 1,000 of 40 (test; data.options.test_length)",
        task="classify",
        description=(
            "Running parity (or sum mod data.options.modulus) of a symbol string: trained on short strings, "
            "tested on longer ones (length generalization; set data.split_column: split)"
        ),
        options_model=parity.ParityOptions,
        generate=parity.generate,
    ),
    "gunpoint": Source(
        name="gunpoint",
        size="200 sequences (50 train / 150 test) x 150 steps x 1",
        task="classify",
        description="GunPoint (UCR, bundled with aeon): hand x-coordinate, drawing a gun vs pointing; 2 classes",
        options_model=ucr.UcrOptions,
        generate=ucr.gunpoint,
    ),
    "italy_power_demand": Source(
        name="italy_power_demand",
        size="1,096 sequences (67 train / 1,029 test) x 24 steps x 1",
        task="classify",
        description="ItalyPowerDemand (UCR, bundled with aeon): a day's 24 hourly loads, Oct-Mar vs Apr-Sep; 2 classes",
        options_model=ucr.UcrOptions,
        generate=ucr.italy_power_demand,
    ),
    "airline": Source(
        name="airline",
        size="144 monthly steps, 1 series",
        task="forecast",
        description="International airline passengers 1949-1960 (aeon): trend plus a yearly cycle",
        options_model=series.NoOptions,
        generate=series.airline,
    ),
    "m1_yearly": Source(
        name="m1_yearly",
        size="181 yearly series of 15-58 steps (4,515 rows)",
        task="forecast",
        description="The M1 competition's yearly series (aeon): 7 domains, scales from units to millions; "
        "time counts back from each series' end",
        options_model=series.NoOptions,
        generate=series.m1_yearly,
    ),
    "nile": Source(
        name="nile",
        size="100 yearly steps, 1 series",
        task="forecast",
        description="Yearly flow of the Nile at Aswan 1871-1970 (statsmodels), with a level shift in 1899",
        options_model=series.NoOptions,
        generate=series.nile,
    ),
    "co2": Source(
        name="co2",
        size="526 monthly steps, 1 series",
        task="forecast",
        description="Mauna Loa CO2 (statsmodels), 526 monthly means 1958-2001: trend plus a yearly cycle",
        options_model=series.NoOptions,
        generate=series.co2,
    ),
    "chorales": Source(
        name="chorales",
        size="371 chorales x 24-300 frames x 88 keys",
        task="generate",
        description=(
            "Bach chorales (music21 corpus) as piano rolls: transposed to C, one frame per quarter note, 88 keys"
        ),
        options_model=chorales.ChoralesOptions,
        generate=chorales.generate,
    ),
    "lady_susan": Source(
        name="lady_susan",
        size="127,000 characters in 636 rows of 200",
        task="generate",
        description="Jane Austen, Lady Susan (Project Gutenberg text shipped in music21): character-level text",
        options_model=text.TextOptions,
        generate=text.generate,
    ),
    "sensor_anomalies": Source(
        name="sensor_anomalies",
        size="4 series x 3,000 steps (data.options), ~3% anomalous",
        task="anomaly",
        description="Synthetic cyclic sensor series with labelled spikes, level shifts and drifts",
        options_model=anomalies.AnomalyOptions,
        generate=anomalies.generate,
    ),
    "stocks": Source(
        name="stocks",
        size="6 stocks x 105 weeks",
        task="forecast",
        description=(
            "Weekly prices of GOOG, AAPL, AMZN, FB, NFLX, MSFT 2018-2019, relative to the first week, from plotly's "
            "wheel (fetched once through pip)"
        ),
        options_model=series.NoOptions,
        generate=stocks.generate,
        fetched=True,
    ),
    "store_sales": Source(
        name="store_sales",
        size="8 stores x 730 days (data.options)",
        task="forecast",
        description=(
            "Synthetic daily sales of a chain of stores with covariates: store size (static), planned promotions "
            "and public holidays (known in advance)"
        ),
        options_model=store_sales.StoreSalesOptions,
        generate=store_sales.generate,
    ),
    "sentiment": Source(
        name="sentiment",
        size="10,568 movie snippets (data.options.domain: tweets 4,196, amazon 3,610, nyt 4,946)",
        task="classify",
        description=(
            "Human-rated sentiment snippets (Hutto & Gilbert 2014, from the vadersentiment sdist): text -> "
            "positive/negative"
        ),
        options_model=sentiment.SentimentOptions,
        generate=sentiment.generate,
        text=True,
        fetched=True,
    ),
    "numbers": Source(
        name="numbers",
        size="20,000 distinct numbers below 100,000 (data.options: count, low, high, lang)",
        task="translate",
        description="Number phrases from num2words: English -> data.options.lang (fr); test numbers never trained on",
        options_model=numbers.NumbersOptions,
        generate=numbers.generate,
        text=True,
        tokenizer="bpe",
    ),
    "ui_strings": Source(
        name="ui_strings",
        size="788 unique messages (fr; data.options.lang picks the catalogues)",
        task="translate",
        description="Django's UI message catalogues from its wheel (fetched once through pip): English -> lang",
        options_model=ui_strings.UiStringsOptions,
        generate=ui_strings.generate,
        text=True,
        fetched=True,
        tokenizer="bpe",
    ),
    "handwriting": Source(
        name="handwriting",
        size="9,529 written words (8,136 train; test: 562 in the training fonts, 281 in a held-out font)",
        task="transcribe",
        description=(
            "Online handwriting: Lady Susan's words written in Hershey script fonts with random slant, scale, drift "
            "and pen speed, as (dx, dy, pen_up) moves; test words never trained on"
        ),
        options_model=handwriting.HandwritingOptions,
        generate=handwriting.generate,
    ),
    "spoken_digits": Source(
        name="spoken_digits",
        size="4,000 utterances of 1-7 digits (data.options.count), 16 kHz WAV",
        task="transcribe",
        description=(
            "Digit strings spoken by eSpeak NG (espeakng-loader wheel) in many voices, rates and pitches, with noise; "
            "test voices never heard in training"
        ),
        options_model=spoken_digits.SpokenDigitsOptions,
        generate=spoken_digits.generate,
        audio=True,
    ),
    "sunspots": Source(
        name="sunspots",
        size="309 yearly steps, 1 series",
        task="forecast",
        description="Yearly sunspot numbers 1700-2008 (statsmodels), an ~11-year cycle",
        options_model=series.NoOptions,
        generate=series.sunspots,
    ),
}


def cache_path(name: str, options: dict[str, Any], *, cache_dir: str | Path) -> Path:
    key = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache_dir).resolve() / name / f"{key}.parquet"


def materialize(name: str, options: dict[str, Any], *, cache_dir: str | Path) -> Path:
    """Write built-in dataset `name` to Parquet unless already cached; return the file's path."""
    source = SOURCES[name]
    path = cache_path(name, options, cache_dir=cache_dir)
    if path.is_file():
        return path
    opts = source.options_model.model_validate(options)
    table = source.generate(opts, cache_dir=cache_dir) if source.fetched else source.generate(opts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp, row_group_size=max(1, table.num_rows // 8))
    os.replace(tmp, path)  # atomic: readers never see a half-written file
    return path
