"""Config rules shared by the tasks of one layout: keys that only the other layout reads are refused.

Row-per-sequence tasks (regression, classify, generate) read `data.columns.sequence` and split rows;
series tasks (forecast, anomaly) read long-format columns per time step, cut windows and split by
time. A key that the run would not read is an error naming it, not a silent no-op. Values are
compared with their defaults, so a config dumped whole (a sweep trial's) passes as its source did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.tasks import Layout

ANOMALY_ONLY = (
    "data.anomaly_quantile, data.anomaly_score and data.columns.label are only for task: anomaly (task is {task}); "
    "remove them"
)


TEXT_TASKS = ("classify", "translate")
# model keys that only some tasks read: the decoder's (translate) and decoding's (translate, transcribe)
TASK_MODEL_KEYS = {
    "attention": ("translate",),
    "decoder_hidden_size": ("translate",),
    "decoder_layers": ("translate",),
    "beam_size": ("translate", "transcribe"),
    "length_penalty": ("translate",),
    "max_output_tokens": ("translate",),
    "subsample": ("transcribe",),
    "likelihood": ("forecast", "anomaly"),
    "quantiles": ("forecast",),
    "intervals": ("forecast",),
    "readout": ("forecast",),
    "ensemble": ("classify",),
}


def check_text(cfg: Config, *, task: str) -> None:
    """data.text is for the tasks that tokenize text; model.embedding_dim is read only for text inputs."""
    if cfg.data.text is not None and task not in TEXT_TASKS:
        raise ValueError(
            f"data.text is for task: {' or '.join(TEXT_TASKS)} (task is {task}); remove it"
            + (" (generate reads a string column as characters by itself)" if task == "generate" else "")
        )
    if cfg.data.text is not None and cfg.data.input_scaling != "standard":
        raise ValueError(
            "data.input_scaling does not apply to text inputs (token ids are embedded, not scaled); remove it"
        )
    if cfg.model.word_dropout and cfg.data.text is None:
        raise ValueError("model.word_dropout applies to text inputs (data.text) only; set data.text or remove it")
    if task == "generate":  # a token sequence is embedded (a frames sequence is not: docs/tasks-and-data.md)
        return
    if cfg.model.embedding_dropout and cfg.data.text is None:
        raise ValueError("model.embedding_dropout applies to text inputs only; set data.text or remove it")
    if cfg.model.embedding_dim is not None and cfg.data.text is None:
        raise ValueError(
            "model.embedding_dim applies to text inputs only; set data.text (the sequence column holds text) "
            "or remove it"
        )


def check_task_keys(cfg: Config, *, task: str) -> None:
    """The decoder's, the decoding's and the target side's keys are read by the tasks that decode."""
    for key, tasks in TASK_MODEL_KEYS.items():
        if getattr(cfg.model, key) is not None and task not in tasks:
            raise ValueError(f"model.{key} is for task: {' or '.join(tasks)} (task is {task}); remove it")
    if cfg.train.label_smoothing and task not in ("translate", "classify"):
        raise ValueError(f"train.label_smoothing is for task: translate or classify (task is {task}); remove it")
    if cfg.data.columns.source is not None and task != "translate":
        raise ValueError(f"data.columns.source is for task: translate (task is {task}); remove it")
    if cfg.data.audio is not None and task != "transcribe":
        raise ValueError(f"data.audio is for task: transcribe (task is {task}); remove it")
    if cfg.data.columns.group is not None and task != "transcribe":
        raise ValueError(f"data.columns.group is for task: transcribe (task is {task}); remove it")
    if cfg.data.columns.baselines and task != "transcribe":
        raise ValueError(f"data.columns.baselines is for task: transcribe (task is {task}); remove it")


def check_layout(cfg: Config, *, task: str, layout: Layout) -> None:
    check_text(cfg, task=task)
    check_task_keys(cfg, task=task)
    if task == "generate" and cfg.model.pooling != "last":
        raise ValueError("model.pooling does not apply to generate, which reads out every step; remove it")
    data, columns = cfg.data, cfg.data.columns
    if task != "anomaly" and (
        data.anomaly_quantile is not None or data.anomaly_score is not None or columns.label is not None
    ):
        raise ValueError(ANOMALY_ONLY.format(task=task))
    covariates = [
        key
        for key, given in (
            ("data.columns.static_features", columns.static_features),
            ("data.columns.static_categories", columns.static_categories),
            ("data.columns.future_features", columns.future_features),
            ("data.calendar", data.calendar),
        )
        if given
    ]
    if covariates and task != "forecast":
        raise ValueError(
            f"{', '.join(covariates)} {'is' if len(covariates) == 1 else 'are'} for task: forecast (task is {task}); "
            "remove it, or pass the values as data.columns.features"
        )
    if layout == "series":
        if data.split_column is not None:
            raise ValueError(f"data.split_column does not apply to {task}, which splits by time; remove it")
        if columns.sequence != "x":
            raise ValueError(
                f"data.columns.sequence is for row-per-sequence tasks; {task} reads data.columns.target "
                "(and data.columns.features) at each time step: remove it"
            )
        if data.input_scaling != "standard":
            raise ValueError(
                f"data.input_scaling does not apply to {task}: its inputs and targets are always standardized by the "
                "training period (the served model answers in the data's units); remove it"
            )
        return
    if data.window is not None:
        raise ValueError(f"data.window is only for task: forecast or anomaly (task is {task}); remove it")
    if task == "transcribe" and data.missing not in ("error", "drop"):
        raise ValueError(f"data.missing: {data.missing} does not apply to transcripts; use error or drop")
    if data.missing != "error" and task != "transcribe":
        raise ValueError(
            f"data.missing is only for task: forecast or anomaly (task is {task}); clean the sequences instead"
        )
    given = [
        k
        for k, v in (("series", columns.series), ("features", columns.features), ("time", columns.time != "time"))
        if v
    ]
    if given:
        keys = ", ".join(f"data.columns.{k}" for k in given)
        raise ValueError(
            f"{keys} {'is' if len(given) == 1 else 'are'} for task: forecast or anomaly (long format); task {task} "
            "reads "
            "one sequence per row from data.columns.sequence: remove it"
        )
