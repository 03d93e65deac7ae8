#!/usr/bin/env bash
# Build .gpu/site.tar.xz here: the packages the GPU machine's image lacks, for its Python (3.12),
# installed into one folder and packed, so `benchmarks/gpu_check.sh` needs no registry there.
#
#     benchmarks/gpu_bundle.sh            # about 5 min; then run gpu_check.sh with carry [".gpu"]
#
# The device machine takes at most 64 MiB with each call (working tree included) and Ray's wheel
# alone is 79 MB: the bundle leaves out what the check never loads (Ray's Java jar, its dashboard's
# web client, RLlib, Serve and LLM; MLflow's web UI; music21 and aeon, whose data sets the check does
# not read) and is packed with xz. torch, numpy, pandas, pyarrow, scikit-learn, matplotlib and
# the rest already on the image (listed in the device library's KINDS.md) are not carried.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=.gpu
SITE=$(mktemp -d)
trap 'rm -rf "$SITE"' EXIT
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
mkdir -p "$OUT"

# What the project needs beyond the image, resolved for CPython 3.12 on x86-64 (torch stays the image's).
# The image already holds these (KINDS.md, 2026-11-17); pip skips nothing by itself, so they are listed.
ON_IMAGE="aiohttp aiosignal anyio attrs certifi charset-normalizer click cloudpickle colorama contourpy cycler
filelock fonttools frozenlist fsspec grpcio h11 httpcore httpx idna jinja2 joblib kiwisolver markdown
markdown-it-py markupsafe matplotlib mdurl msgpack multidict narwhals networkx numpy packaging pandas patsy pillow
pluggy prometheus-client propcache protobuf psutil pyarrow pygments pyparsing pytest pytest-timeout pytest-xdist
python-dateutil pyyaml requests rich scikit-learn scipy setuptools shellingham six sympy threadpoolctl tqdm typer
typing-extensions urllib3 werkzeug wrapt yarl zipp iniconfig execnet"
WHEELS=$(mktemp -d)
$PY -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$WHEELS" "ray[default,data,train,tune]==2.60.*" "mlflow[auth]>=3.10" pydantic pathspec optuna
for name in $ON_IMAGE music21 aeon virtualenv py-spy distlib python-discovery platformdirs; do
  pattern=$(echo "$name" | tr '-' '_')
  rm -f "$WHEELS"/"$pattern"-[0-9]*.whl "$WHEELS"/"$name"-[0-9]*.whl
done
# pip keeps the wheels' executable bits (Ray's raylet and gcs_server), which unzip would drop.
$PY -m pip install -q --no-deps --no-compile --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  --target "$SITE" "$WHEELS"/*.whl
rm -rf "$WHEELS"

# Parts of Ray and MLflow that nothing in the check imports or serves.
rm -rf "$SITE"/ray/jars "$SITE"/ray/dashboard/client/build "$SITE"/ray/rllib "$SITE"/ray/serve "$SITE"/ray/llm \
  "$SITE"/mlflow/server/js/build
rm -rf "$SITE"/bin  # console scripts: the check calls `python3 -m ...`
find "$SITE" -name '__pycache__' -prune -exec rm -rf {} +
tar -C "$SITE" -cf - . | xz -T0 -9 > "$OUT/site.tar.xz"
ls -l "$OUT/site.tar.xz"
