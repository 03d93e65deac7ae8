"""infra/: every manifest parses, names what exists in the repo, and is locked down (auth on, no inline credentials)."""

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
VERSION = PROJECT["version"]
RAY_PIN = next(re.search(r"==([\d.]+)", d).group(1) for d in PROJECT["dependencies"] if d.startswith("ray["))  # "2.60."
TORCH = re.search(r"^TORCH\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
IMAGE = re.compile(
    rf"^ghcr\.io/lstm-pipeline/(lstm-pipeline:{re.escape(VERSION)}-(cpu|cu128)|mlflow-server:{re.escape(VERSION)})$"
)
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|BACKEND_STORE_URI", re.I)
K8S_KINDS = {
    ("v1", "Namespace"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("ray.io/v1", "RayCluster"),
    ("ray.io/v1", "RayJob"),
}


def docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def k8s_docs():
    return [(p.name, d) for p in sorted((INFRA / "k8s").glob("*.yaml")) for d in docs(p)]


def walk(node):
    """Every dict inside a parsed YAML tree."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def containers(doc):
    return [c for d in walk(doc) for c in d.get("containers", []) if isinstance(c, dict)]


def ray_cluster_specs(doc):
    if doc["kind"] == "RayCluster":
        return [doc["spec"]]
    if doc["kind"] == "RayJob":
        return [doc["spec"]["rayClusterSpec"]]
    return []


def test_every_infra_yaml_parses_and_k8s_kinds_are_known():
    files = sorted(INFRA.rglob("*.yaml"))
    assert {f.relative_to(INFRA).as_posix() for f in files} >= {
        "k8s/raycluster.yaml",
        "k8s/rayjob.yaml",
        "k8s/mlflow.yaml",
        "compose/docker-compose.yaml",
        "ray-cluster.yaml",
    }
    for f in files:
        assert docs(f), f
    kinds = [(d["apiVersion"], d["kind"]) for _, d in k8s_docs()]
    assert set(kinds) <= K8S_KINDS and {("ray.io/v1", "RayCluster"), ("ray.io/v1", "RayJob")} <= set(kinds)


def test_images_and_versions_match_the_repo():
    for name, doc in k8s_docs():
        for c in containers(doc):
            if "postgres" not in c["image"]:
                assert IMAGE.match(c["image"]), f"{name}: {c['image']}"
        for spec in ray_cluster_specs(doc):
            assert spec["rayVersion"].startswith(RAY_PIN), f"{name}: rayVersion {spec['rayVersion']} vs ray=={RAY_PIN}*"
            groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
            assert {"cpu", "gpu"} <= set(groups) and spec["enableInTreeAutoscaling"] is True
            gpu = containers(groups["gpu"])[0]
            assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1" and gpu["image"].endswith("-cu128")
    for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
        text = (INFRA / "docker" / dockerfile).read_text()
        assert re.search(rf"rayproject/ray:{re.escape(RAY_PIN)}\d+-py311-", text), dockerfile
        assert f"ARG TORCH={TORCH}" in text and "pip install ." in text, dockerfile
        for copied in re.findall(r"^COPY \S+ (.+) \./", text, re.M):
            for path in copied.split():
                assert (ROOT / path).exists(), f"{dockerfile} copies {path}, which is not in the repo"


def test_rayjob_entrypoint_runs_a_job_and_config_of_this_repo():
    from pipeline import config

    job = next(d for _, d in k8s_docs() if d["kind"] == "RayJob")
    words = job["spec"]["entrypoint"].split()
    assert words[:2] == ["python", "jobs/tune.py"] and (ROOT / words[1]).is_file()
    conf = words[words.index("-c") + 1]
    overrides = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    cfg = config.load(ROOT / conf, overrides=overrides)
    assert cfg.train.storage_path.startswith("s3://")  # multi-node: shared storage


def test_ray_is_token_authenticated_and_dashboards_stay_private():
    for name, doc in k8s_docs():
        for spec in ray_cluster_specs(doc):
            assert spec["authOptions"]["mode"] == "token", name
            assert spec["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP", name
        if doc["kind"] == "Service":
            assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", f"{name}: {doc['metadata']['name']}"
    mlflow = next(d for _, d in k8s_docs() if d["kind"] == "Deployment" and d["metadata"]["name"] == "mlflow")
    assert "--app-name=basic-auth" in containers(mlflow)[0]["args"]

    launcher = yaml.safe_load((INFRA / "ray-cluster.yaml").read_text())
    starts = " ".join(launcher["head_start_ray_commands"] + launcher["worker_start_ray_commands"])
    assert starts.count("RAY_AUTH_MODE=token ray start") == 2 and "--dashboard-host=127.0.0.1" in starts
    assert "0.0.0.0" not in starts

    compose = yaml.safe_load((INFRA / "compose" / "docker-compose.yaml").read_text())
    for service in compose["services"].values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port
    assert "--app-name basic-auth" in " ".join(compose["services"]["mlflow"]["command"])


def test_launcher_config_validates_against_rays_schema():
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = yaml.safe_load((INFRA / "ray-cluster.yaml").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(config)]
    assert errors == [], errors  # each names the key where the launcher config drifts from Ray's schema


def test_no_inline_credentials():
    for name, doc in k8s_docs():
        for c in containers(doc):
            for env in c.get("env", []):
                if SECRET_NAME.search(env["name"]):
                    assert "secretKeyRef" in env.get("valueFrom", {}), f"{name}: {env['name']} must come from a Secret"
    compose = yaml.safe_load((INFRA / "compose" / "docker-compose.yaml").read_text())
    for service in compose["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key) or re.search(r"://[^/\s]+:[^/\s]+@", str(value)):
                assert re.fullmatch(r"(\S*\$\{[A-Z_]+:\?[^}]+\}\S*)+", str(value)), f"compose {key} is inline: {value}"
    for f in INFRA.rglob("*"):
        if f.is_file():
            text = f.read_text()
            assert "password1234" not in text, f
            assert not re.search(r"(?i)(password|secret|token)\s*[:=]\s*['\"]?[A-Za-z0-9+/]{12,}", text), f


@pytest.mark.parametrize("script", ["k8s/create-secrets.sh", "k8s/create-mlflow-user.sh", "compose/make-env.sh"])
def test_helper_scripts_are_executable_and_strict(script):
    path = INFRA / script
    assert path.stat().st_mode & 0o111 and "set -euo pipefail" in path.read_text()


def test_dependency_floors_are_declared_and_installed():
    """mlflow>=3.10 (CVE-2026-2614 and -2651 fixed), ray>=2.52 (token authentication) and torch>=2.10
    (torch.load(weights_only=True) without the memory-safety bugs of earlier versions)."""
    from importlib.metadata import version

    from packaging.requirements import Requirement
    from packaging.version import Version

    reqs = {Requirement(d).name: Requirement(d) for d in PROJECT["dependencies"]}
    for name, below_floor, floor in [
        ("mlflow", "3.9.99", "3.10"),
        ("ray", "2.51.99", "2.52"),
        ("torch", "2.9.99", "2.10"),
    ]:
        assert not reqs[name].specifier.contains(below_floor, prereleases=True), (
            f"{name}: {reqs[name]} admits {below_floor}"
        )
        assert Version(version(name)) >= Version(floor)
