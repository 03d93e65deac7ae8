"""Human-rated sentiment snippets (Hutto & Gilbert, ICWSM 2014; MIT), shipped in the vadersentiment
3.3.2 **sdist** as `additional_resources/hutto_ICWSM_2014.tar.gz` (the wheel lacks it).

Each snippet was rated -4..4 by at least 20 people; the label is the sign of the mean rating
(`positive`/`negative`; neutral means are dropped). Domains: movie-review snippets (10,605: the
sentence polarity set of Pang & Lee 2005), tweets (4,200), Amazon reviews (3,708) and New York
Times editorials (5,190). The sdist is fetched once through pip into `data.cache_dir`: PyPI is the
only place it comes from, nothing is downloaded at training time after that.

Columns: `text` (string), `label` (string), `rating` (the mean rating).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, Field

from pipeline.data.sources.fetch import pip_file
from pipeline.data.sources.options import STRICT
from pipeline.errors import DataError

PACKAGE = "vadersentiment==3.3.2"
SDIST = "vaderSentiment-3.3.2.tar.gz"
INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
FILES = {
    "movies": "movieReviewSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}


class SentimentOptions(BaseModel):
    model_config = STRICT

    domain: Literal["movies", "tweets", "amazon", "nyt"] = Field(
        "movies", description="movie-review snippets, tweets, Amazon reviews or NYT editorials"
    )


def fetch_sdist(cache_dir: str | Path) -> Path:
    """The vadersentiment sdist in `cache_dir/sentiment/`, fetched through pip the first time."""
    return pip_file(PACKAGE, filename=SDIST, kind="sdist", cache_dir=cache_dir, folder="sentiment")


def read_ratings(sdist: Path, *, domain: str) -> list[tuple[str, float]]:
    """(text, mean rating) of every snippet of `domain`, from the sdist's inner archive."""
    try:
        with tarfile.open(sdist) as outer:
            inner = outer.extractfile(INNER).read()
        with tarfile.open(fileobj=io.BytesIO(inner)) as archive:
            raw = archive.extractfile(f"hutto_ICWSM_2014/{FILES[domain]}").read().decode("utf-8")
    except (tarfile.TarError, KeyError, AttributeError, UnicodeDecodeError) as err:
        raise DataError(f"{sdist} is not the {PACKAGE} sdist with its ratings; delete it to fetch it again") from err
    rows = []
    for line in raw.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].strip():
            rows.append((parts[2].strip(), float(parts[1])))
    return rows


def generate(opts: SentimentOptions, *, cache_dir: str | Path) -> pa.Table:
    rated = [(text, rating) for text, rating in read_ratings(fetch_sdist(cache_dir), domain=opts.domain) if rating]
    return pa.table(
        {
            "text": pa.array([t for t, _ in rated], pa.string()),
            "label": pa.array(["positive" if r > 0 else "negative" for _, r in rated], pa.string()),
            "rating": pa.array([r for _, r in rated], pa.float64()),
        }
    )


def vader_labels(texts: list[str]) -> list[str]:
    """VADER's own lexicon-and-rules score (the same package's wheel), as a label: its compound
    score's sign (0 counts as positive, as VADER's authors threshold at >= 0.05 / <= -0.05 and
    this set has no neutral labels)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return ["negative" if analyzer.polarity_scores(t)["compound"] < 0 else "positive" for t in texts]
