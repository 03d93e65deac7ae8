"""What an honest user compares a text classifier with, on the same split: TF-IDF + logistic
regression (scikit-learn) for any text, and a source's own scorer where it has one (the built-in
`sentiment` set: VADER's lexicon, from the same package).

Both are fitted on the training split only and predict the test split; their class ids travel with
the test rows as `baseline_<name>` columns, scored beside the model by `classify.test_metrics`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Rows the TF-IDF baseline fits on at most (a sparse matrix on the driver): beyond, a seeded sample.
TFIDF_MAX_ROWS = 200_000


def tfidf_logreg(train_texts: list[str], train_y: np.ndarray, *, seed: int = 0):
    """Word 1-2-grams, sublinear TF-IDF, L2 logistic regression, fitted: `.predict(texts)` -> class ids."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if len(train_texts) > TFIDF_MAX_ROWS:
        keep = np.random.default_rng(seed).choice(len(train_texts), TFIDF_MAX_ROWS, replace=False)
        train_texts, train_y = [train_texts[i] for i in keep], train_y[keep]
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        LogisticRegression(C=4.0, max_iter=2000),
    )
    return model.fit(train_texts, train_y)


def source_scorer(source: str) -> Callable[[list[str]], list[str]] | None:
    """A built-in source's own scorer: texts -> labels (None for other sources)."""
    if source == "sentiment":
        from pipeline.data.sources.sentiment import vader_labels

        return vader_labels
    return None
