"""Importing the pipeline changes nothing: no environment variable, no global library setting."""

import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline"
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
    if p.name != "__main__.py"
)

# Third-party libraries are imported first: what they do to the environment (Ray sets RAY_CLIENT_MODE)
# is theirs; the probe measures what importing each of our modules adds.
PROBE = """
import importlib, json, os, sys
import mlflow, pandas, pyarrow, torch, matplotlib.figure
import ray, ray.data, ray.train, ray.train.torch, ray.tune
changed = {}
for name in sys.argv[1:]:
    before = dict(os.environ)
    importlib.import_module(name)
    diff = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
    if diff:
        changed[name] = diff
print(json.dumps({"env": changed, "pyplot": "matplotlib.pyplot" in sys.modules}))
"""


def test_no_module_writes_the_environment_or_selects_a_plot_backend():
    assert len(MODULES) > 40
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *MODULES], capture_output=True, text=True, timeout=300, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["env"] == {}  # e.g. no RAY_DATA_LOGGING_CONFIG pointing into this checkout
    assert result["pyplot"] is False  # figures are matplotlib.figure.Figure: no pyplot state, no backend


def test_task_modules_import_without_ray_or_torch():
    """Config validation runs every task's rules: importing them must stay light."""
    probe = (
        "import sys, pipeline.config, pipeline.tasks; [pipeline.tasks.get_task(t) for t in pipeline.tasks.TASKS]; "
        "print(sorted(m for m in ('torch', 'ray', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_warm_export_loads_what_the_model_export_imports():
    """`warm_export` runs while Ray Train trains: after it, `torch.export.export` and its archive
    writer import nothing more (else the finish phase pays ~1.5 s of imports on the driver)."""
    probe = (
        "import sys; from pipeline.track.models import warm_export; warm_export().join(); "
        "before = set(sys.modules); import torch, torch.export; "
        "m = torch.nn.Linear(2, 1); ep = torch.export.export(m, (torch.zeros(1, 2),)); "
        "import io; torch.export.save(ep, io.BytesIO()); "
        "print(sorted(k for k in set(sys.modules) - before if k.startswith('torch.export')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
