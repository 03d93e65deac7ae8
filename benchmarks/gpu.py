"""B1 on a GPU: the pipeline on 1 Ray Train worker (1 GPU) against a bare cuDNN loop, A B A B.

    python3 -m benchmarks.gpu --out gpu_b1.json      # on a machine with CUDA (benchmarks/gpu_check.sh)

Same model, batch and precision on both sides; the bare loop holds its batches on the CPU and
copies each one to the GPU per step, as the pipeline's collate does (pinned, non-blocking), so the
figure is what Ray Train, Ray Data and the report path cost on a GPU. Epoch 0 dropped on both sides.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from benchmarks import throughput
from pipeline.config import Config, validate
from pipeline.data.batches import to_device
from pipeline.model.sequence_model import model_for
from pipeline.tasks import DataInfo, get_task
from pipeline.train.precision import mixed_precision


def gpu_config(w: throughput.Workload, *, workdir: str, precision: str) -> Config:
    raw = w.config(workers=1, workdir=workdir).model_dump(mode="json")
    raw["train"] |= {"use_gpu": True, "precision": precision}
    return validate(raw)


def bare_gpu_epochs(cfg: Config, info: DataInfo, batches: list[dict[str, torch.Tensor]], *, epochs: int) -> list[float]:
    """Sequences/s of a hand-written cuDNN loop per epoch (batches pinned on the CPU, copied per step)."""
    torch.manual_seed(cfg.train.seed)
    device = torch.device("cuda", 0)
    model = model_for(cfg.model, info).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    amp = mixed_precision(cfg.train.precision, device=device)
    task = get_task(cfg.task)
    pinned = [{k: v.pin_memory() for k, v in b.items()} for b in batches]
    speeds = []
    for _ in range(epochs):
        torch.cuda.synchronize()
        start, seen = time.perf_counter(), 0
        for batch in pinned:
            batch = to_device(batch, device)
            with amp.autocast():
                pred = model(batch["x"], batch["lengths"])  # (B, T, C) -> (B, O)
                loss_sum, n = task.loss_terms(pred.float(), batch["y"])["loss"]
            amp.step(loss_sum / n, model=model, optimizer=optimizer, grad_clip=cfg.train.grad_clip)
            seen += len(batch["y"])
        torch.cuda.synchronize()
        speeds.append(seen / (time.perf_counter() - start))
    return speeds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: B1 on a GPU needs one")

    from pipeline.cluster.connect import connect
    from pipeline.data.ingest import load_splits

    work = tempfile.mkdtemp(prefix="gpu-b1-")
    w = throughput.Workload(sequences=12000, batch_size=256)
    cfg = gpu_config(w, workdir=work, precision=args.precision)
    connect()
    splits = load_splits(cfg)
    batches = throughput.collated(splits, batch_size=w.batch_size)
    bare, ray1 = [], []
    for _ in range(args.repeats):  # A B A B
        bare += bare_gpu_epochs(cfg, splits.info, batches, epochs=w.epochs)[1:]
        ray1 += throughput.pipeline_epochs(cfg, splits)[1:]
    result = {
        "precision": args.precision,
        "device": torch.cuda.get_device_name(0),
        "workload": f"adding seq_len {w.seq_len}, LSTM hidden {w.hidden}, batch {w.batch_size}, {len(batches)} batches",
        "bare_seq_per_s": bare,
        "pipeline_seq_per_s": ray1,
        "ratio_median": statistics.median(ray1) / statistics.median(bare),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("per_s")}))


if __name__ == "__main__":
    main()
