"""Config: one schema, errors that name the key and the fix, before Ray starts."""

from pathlib import Path

import pytest

from pipeline import config
from pipeline.errors import ConfigError


def test_defaults_are_valid():
    cfg = config.validate({})
    assert cfg.model.cell == "lstm" and cfg.data.source == "adding"
    assert cfg.data.options == {"seq_len": 100, "num_sequences": 10_000, "seed": 0}


CONF = Path(__file__).parents[2] / "conf"
SHIPPED = sorted(CONF.rglob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(CONF)))
def test_every_shipped_config_validates(path):
    """Every YAML under conf/ is a valid config; experiments ship a search space for `lstmpipe tune`,
    sweeps search model.cell (the PBT/ASHA comparison: the rate and decay) with an objective their
    task reports."""
    from pipeline.tune.space import objective

    cfg = config.load(path)
    assert len(SHIPPED) >= 12
    if path.parent.name == "experiments":
        assert cfg.tune.space, "each experiment ships a search space for `lstmpipe tune`"
    if path.parent.name == "sweeps":
        searched = {"train.lr", "train.weight_decay"} if path.stem.startswith("pbt") else {"model.cell"}
        assert searched <= set(cfg.tune.space) and objective(cfg).metric.startswith("val_")
    source = config.SOURCES.get(cfg.data.source)
    assert source is None or source.task == cfg.task


def test_bundled_configs_are_found():
    assert config.load(config.bundled_config("smoke.yaml")).task == "regression"


def test_unknown_key_names_it_and_suggests_the_right_one():
    with pytest.raises(ConfigError) as err:
        config.load(None, ["model.hiden_size=32"])
    msg = str(err.value)
    assert "'model.hiden_size'" in msg and "did you mean 'model.hidden_size'" in msg


def test_unknown_section_suggests_section():
    with pytest.raises(ConfigError, match="did you mean 'model'"):
        config.validate({"modle": {"hidden_size": 3}})


def test_bad_value_names_key_and_value():
    with pytest.raises(ConfigError) as err:
        config.load(None, ["train.lr=-1"])
    assert "'train.lr' = -1" in str(err.value) and "greater than 0" in str(err.value)


def test_bad_cell_lists_choices():
    with pytest.raises(
        ConfigError, match="'model.cell' = 'lstmm'.*'lstm', 'gru', 'rnn', 'peephole'.*'fgr', 'slstm' or 'mlstm'"
    ):
        config.load(None, ["model.cell=lstmm"])


def test_dataset_options_are_validated_by_the_source():
    with pytest.raises(ConfigError, match="data.options.seq_lenn.*did you mean 'data.options.seq_len'"):
        config.load(None, ["data.options.seq_lenn=5"])
    with pytest.raises(ConfigError, match="data.options.seq_len"):
        config.load(None, ["data.options.seq_len=1"])


def test_options_rejected_for_user_parquet():
    with pytest.raises(ConfigError, match="only for built-in sources"):
        config.validate({"data": {"source": "/some/file.parquet", "options": {"seq_len": 3}}})


def test_set_values_are_typed_as_yaml():
    cfg = config.load(
        None, ["model.hidden_size=128", "train.use_gpu=true", "train.grad_clip=null", "tracking.register_as=m"]
    )
    assert cfg.model.hidden_size == 128 and cfg.train.use_gpu is True
    assert cfg.train.grad_clip is None and cfg.tracking.register_as == "m"


def test_set_needs_key_value():
    with pytest.raises(ConfigError, match="key=value"):
        config.load(None, ["model.hidden_size"])


def test_set_into_a_value_fails_clearly():
    with pytest.raises(ConfigError, match="'model.cell' is a value"):
        config.apply_overrides({"model": {"cell": "gru"}}, ["model.cell.x=1"])


def test_space_key_must_exist():
    raw = {"tune": {"space": {"model.hiden_size": {"choice": [1, 2]}}}}
    with pytest.raises(ConfigError, match="did you mean 'model.hidden_size'"):
        config.validate(raw)


def test_space_values_must_be_valid_configs():
    raw = {"tune": {"space": {"model.cell": {"choice": ["lstm", "lsmt"]}}}}
    with pytest.raises(ConfigError, match="model.cell.*lsmt"):
        config.validate(raw)


def test_space_spec_needs_exactly_one_kind():
    raw = {"tune": {"space": {"train.lr": {"uniform": [0.1, 0.01]}}}}
    with pytest.raises(ConfigError, match="low < high"):
        config.validate(raw)
    raw = {"tune": {"space": {"train.lr": {"uniform": [0.1, 0.2], "choice": [1]}}}}
    with pytest.raises(ConfigError, match="exactly one"):
        config.validate(raw)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(bad)


def test_hash_ignores_epochs_but_not_model():
    base = config.validate({})
    assert base.hash() == config.load(None, ["train.epochs=99"]).hash()
    assert base.hash() != config.load(None, ["model.hidden_size=7"]).hash()


def test_flat_params_use_dotted_keys():
    flat = config.validate({}).flat()
    assert flat["model.hidden_size"] == 64 and flat["data.options.seq_len"] == 100


def test_task_specific_keys_are_refused_elsewhere():
    with pytest.raises(ConfigError, match="data.window is only for task: forecast"):
        config.validate({"data": {"window": {"lookback": 3}}})
    with pytest.raises(ConfigError, match="a classify dataset; set task: classify"):
        config.validate({"data": {"source": "digits"}})
    with pytest.raises(ConfigError, match="season 12 is longer than lookback 6"):
        config.validate({"task": "forecast", "data": {"source": "sunspots", "window": {"lookback": 6, "season": 12}}})
    cfg = config.validate({"task": "forecast", "data": {"source": "sunspots"}})
    assert cfg.data.window.lookback == 24


def test_missing_policy_is_for_forecast_only():
    assert (
        config.validate({"task": "forecast", "data": {"source": "sunspots", "missing": "ffill"}}).data.missing
        == "ffill"
    )
    with pytest.raises(ConfigError, match="data.missing is only for task: forecast"):
        config.validate({"data": {"missing": "drop"}})


def test_generate_and_anomaly_configs():
    cfg = config.validate({"task": "anomaly", "data": {"source": "sensor_anomalies", "columns": {"label": "label"}}})
    assert cfg.data.window.horizon == 1
    with pytest.raises(ConfigError, match="only for task: anomaly"):
        config.validate({"task": "forecast", "data": {"source": "sunspots", "columns": {"label": "flag"}}})
    with pytest.raises(ConfigError, match="a generate dataset; set task: generate"):
        config.validate({"task": "classify", "data": {"source": "chorales"}})
    with pytest.raises(ConfigError, match="data.options.limits.*did you mean 'data.options.limit'"):
        config.validate({"task": "generate", "data": {"source": "chorales", "options": {"limits": 3}}})


def test_data_keys_are_searched_as_choice_lists_only():
    """The sweep prepares each data variant before the trials: choices, never ranges, and real keys."""
    ok = config.validate(
        {"data": {"source": "adding"}, "tune": {"space": {"data.options.seq_len": {"choice": [50, 100]}}}}
    )
    assert ok.tune.space["data.options.seq_len"].choice == [50, 100]
    with pytest.raises(ConfigError, match=r"tune.space\['data.window.lookback'\] must be a choice list"):
        config.validate(
            {
                "task": "forecast",
                "data": {"source": "sunspots"},
                "tune": {"space": {"data.window.lookback": {"randint": [12, 24]}}},
            }
        )
    with pytest.raises(ConfigError, match="'data.val_fractoin' is not a config key; did you mean 'data.val_fraction'"):
        config.validate({"tune": {"space": {"data.val_fractoin": {"choice": [0.1]}}}})
    with pytest.raises(ConfigError, match="seq_lne"):
        config.validate({"data": {"source": "adding"}, "tune": {"space": {"data.options.seq_lne": {"choice": [50]}}}})


def test_grid_search_needs_choices_and_metric_defaults_to_the_task():
    from pipeline.tune.space import objective, search_space

    with pytest.raises(ConfigError, match="grid crosses the choice lists of tune.space and there are none"):
        config.validate({"tune": {"search": "grid", "space": {"train.lr": {"loguniform": [0.001, 0.01]}}}})
    mixed = config.validate(
        {
            "tune": {
                "search": "grid",
                "space": {"train.lr": {"loguniform": [0.001, 0.01]}, "model.cell": {"choice": ["lstm", "nfg"]}},
            }
        }
    )
    space = search_space(mixed.tune)
    assert (
        space["model.cell"] == {"grid_search": ["lstm", "nfg"]} and space["train.lr"].lower == 0.001
    )  # crossed, sampled
    assert objective(config.validate({"task": "classify", "data": {"source": "digits"}})).__dict__ == {
        "metric": "val_accuracy",
        "mode": "max",
    }
    assert objective(config.validate({"task": "generate", "data": {"source": "chorales"}})).__dict__ == {
        "metric": "val_nll",
        "mode": "min",
    }
    assert objective(config.validate({"tune": {"metric": "val_loss"}})).__dict__ == {
        "metric": "val_loss",
        "mode": "min",
    }
    with pytest.raises(
        ConfigError,
        match=(
            "tune.metric 'val_acuracy' is not reported by task classify; use one of train_loss, val_loss, val_accuracy"
        ),
    ):
        objective(
            config.validate({"task": "classify", "data": {"source": "digits"}, "tune": {"metric": "val_acuracy"}})
        )


_PBT_SPACE = {"train.lr": {"loguniform": [0.001, 0.01]}}


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (
            {"task": "forecast", "data": {"source": "sunspots", "input_scaling": "none"}},
            "data.input_scaling does not apply to forecast",
        ),
        (
            {"task": "anomaly", "data": {"source": "sensor_anomalies", "input_scaling": "none"}},
            "data.input_scaling does not apply to anomaly",
        ),
        (
            {"task": "generate", "data": {"source": "chorales", "input_scaling": "none"}},
            "data.input_scaling does not apply to task: generate",
        ),
        ({"model": {"dropout": 0.2}}, "model.dropout 0.2 applies between stacked layers and model.num_layers is 1"),
        ({"tune": {"scheduler": "fifo", "grace_period": 3}}, "tune.grace_period and tune.reduction_factor are ASHA's"),
        (
            {"tune": {"scheduler": "fifo", "reduction_factor": 3}},
            "tune.grace_period and tune.reduction_factor are ASHA's",
        ),
        (
            {"tune": {"scheduler": "pbt", "num_samples": 2, "grace_period": 3, "space": _PBT_SPACE}},
            "tune.grace_period and tune.reduction_factor are ASHA's and tune.scheduler is pbt",
        ),
        ({"tune": {"pbt": {"rounds": "sync"}}}, "tune.pbt is read by tune.scheduler pbt and it is asha"),
        (
            {"tune": {"scheduler": "pbt", "num_samples": 2, "space": {"model.hidden_size": {"choice": [4, 8]}}}},
            "tune.scheduler pbt mutates train.lr, train.weight_decay, model.dropout and tune.space has none",
        ),
        (
            {"tune": {"scheduler": "pbt", "num_samples": 2, "search": "optuna", "space": _PBT_SPACE}},
            "cannot follow optuna; set tune.search: random",
        ),
        (
            {"tune": {"scheduler": "pbt", "num_samples": 1, "space": _PBT_SPACE}},
            "pbt needs a population: set tune.num_samples",
        ),
        (
            {"train": {"epochs": 2}, "tune": {"scheduler": "pbt", "num_samples": 2, "space": _PBT_SPACE}},
            "tune.pbt.perturbation_interval 2 is not below train.epochs 2",
        ),
        (
            {"tune": {"scheduler": "pbt", "num_samples": 2, "pbt": {"quantile_fraction": 0.6}, "space": _PBT_SPACE}},
            "tune.pbt.quantile_fraction",
        ),
        ({"data": {"columns": {"series": "store"}}}, "data.columns.series is for task: forecast or anomaly"),
        ({"model": {"ensemble": 3}}, "model.ensemble is for task: classify (task is regression)"),
        (
            {"data": {"columns": {"features": ["promo"], "time": "day"}}},
            "data.columns.features, data.columns.time are for task",
        ),
        (
            {"task": "forecast", "data": {"source": "sunspots", "columns": {"sequence": "seq"}}},
            "data.columns.sequence is for row-per-sequence",
        ),
        (
            {"task": "generate", "data": {"source": "chorales", "columns": {"target": "next"}}},
            "data.columns.target is not read by task: generate",
        ),
        (
            {"task": "anomaly", "data": {"source": "sensor_anomalies", "window": {"season": 24}}},
            "data.window.season is for task: forecast",
        ),
        (
            {
                "task": "anomaly",
                "data": {"source": "sensor_anomalies", "anomaly_quantile": 0.9, "columns": {"label": "label"}},
            },
            "data.anomaly_quantile is not read when data.columns.label is set",
        ),
        (
            {"telemetry": {"probe_size": 8}},
            "telemetry.epochs and telemetry.probe_size are read only with telemetry.enabled",
        ),
    ],
)
def test_a_key_nothing_would_read_is_refused_naming_it(raw, named):
    with pytest.raises(ConfigError) as err:
        config.validate(raw)
    assert named in str(err.value) and "config key ''" not in str(err.value)


def test_what_the_rules_leave_alone():
    """Defaults, and a config dumped whole (a sweep trial's), pass as their source did."""
    for raw in (
        {"task": "forecast", "data": {"source": "sunspots"}},
        {"model": {"dropout": 0.2, "num_layers": 2}},
        {"task": "anomaly", "data": {"source": "sensor_anomalies", "columns": {"label": "label"}}},
        {"telemetry": {"enabled": True, "probe_size": 8}},
    ):
        cfg = config.validate(raw)
        assert config.validate(cfg.model_dump(mode="json")) == cfg


def test_random_search_is_seeded():
    from ray.tune.search.variant_generator import generate_variants

    from pipeline.tune.space import objective, search_space, searcher

    def draws(seed):
        cfg = config.validate({"tune": {"seed": seed, "space": {"train.lr": {"loguniform": [0.001, 0.01]}}}})
        rng = searcher(cfg.tune, objective(cfg))._random_state  # what Tune's variant generator samples with
        return [v["train.lr"] for _ in range(3) for _, v in generate_variants(search_space(cfg.tune), random_state=rng)]

    assert draws(5) == draws(5) != draws(6) and config.validate({}).tune.seed == 0


@pytest.mark.parametrize("search", ["random", "optuna"])
def test_the_searcher_itself_limits_concurrent_trials(search):
    """Tune ignores TuneConfig.max_concurrent_trials for a variant generator: the limit must be the searcher's."""
    from pipeline.tune.space import objective, searcher

    cfg = config.validate({"tune": {"search": search, "space": {"train.lr": {"loguniform": [0.001, 0.01]}}}})
    limited = searcher(cfg.tune, objective(cfg), max_concurrent=1)
    assert limited.max_concurrent == 1


def test_pooling_is_refused_where_every_step_is_read_out():
    with pytest.raises(ConfigError, match="model.pooling does not apply to generate"):
        config.load(None, ["task=generate", "data.source=lady_susan", "model.pooling=max"])


def test_text_keys_are_read_only_where_text_is():
    with pytest.raises(ConfigError, match="data.text is for task: classify"):
        config.load(None, ["data.text.tokenizer=char"])  # the default task is regression
    with pytest.raises(ConfigError, match="model.embedding_dim applies to text inputs only"):
        config.load(None, ["model.embedding_dim=32"])
    with pytest.raises(ConfigError, match="model.embedding_dropout applies to text inputs only"):
        config.load(None, ["model.embedding_dropout=0.3"])
    with pytest.raises(ConfigError, match=r"model.word_dropout applies to text inputs \(data.text\) only"):
        config.load(None, ["model.word_dropout=0.2"])
    with pytest.raises(ConfigError, match=r"model.word_dropout applies to text inputs \(data.text\) only"):
        config.load(None, ["task=generate", "data.source=lady_susan", "model.word_dropout=0.2"])  # characters
    assert config.load(None, ["task=classify", "data.source=sentiment", "model.word_dropout=0.2"]).model.word_dropout
    with pytest.raises(ConfigError, match="data.text.tokenizer.*'char', 'word' or 'bpe'"):
        config.load(None, ["task=classify", "data.source=sentiment", "data.text.tokenizer=sentencepiece"])
    cfg = config.load(None, ["task=classify", "data.source=sentiment", "model.embedding_dim=32"])
    assert cfg.data.text is not None and cfg.data.text.tokenizer == "word"  # a text source is text by default
