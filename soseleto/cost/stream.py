"""Benchmark of the streaming path: images per second, SOSELETO against plain SGD through the same
loader, and the peak host memory as the data set grows.

    python -m soseleto.cost.stream --files 50000 --steps 60 --workers 2

It writes a generated ImageFolder of gray 28x28 PNGs (kept in ``--root`` and reused), then, each in
a fresh process so that peak memory is its own, trains LeNet for ``--steps`` steps of plain SGD and
of SOSELETO on a streamed source of 1/5 of the files and of all of them. It prints one row per run:
images/s, SOSELETO/plain time ratio, and the peak resident memory of the main process and of the
decoding workers. Memory flat in the data set's size means the largest set's peak is close to the
smallest one's (only the file list grows: about 100 bytes per image).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

CLASSES = 10


def make_folder(root: str | Path, n: int, *, seed: int = 0) -> Path:
    """``n`` gray 28x28 PNGs in ``root/<class>/`` (random strokes per class); kept when complete."""
    from PIL import Image

    root = Path(root)
    done = root / f".complete-{n}"
    if done.exists():
        return root
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(CLASSES, 28, 28))
    for c in range(CLASSES):
        (root / str(c)).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % CLASSES
        img = np.clip(base[c] + rng.normal(0, 40, size=(28, 28)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / str(c) / f"{i:07d}.png")
    done.touch()
    return root


def measure(root: str | Path, *, n: int, method: str, steps: int, batch: int, workers: int, seed: int = 0) -> dict:
    """Train ``steps`` steps of ``method`` (plain or soseleto) on the first ``n`` files of ``root``
    streamed by ``workers`` processes; images/s after the first batch, and peak memory."""
    from soseleto.config import SGDConfig, SoseletoConfig
    from soseleto.core.loop import Labeled
    from soseleto.core.models import build
    from soseleto.core.soseleto import Soseleto
    from soseleto.data.stream import StreamedImages, folder_index
    from soseleto.methods.plain import PlainSGD

    paths, y, _ = folder_index(root)
    keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    source = StreamedImages([paths[i] for i in keep.tolist()], y[keep], mean=torch.tensor([0.5]),
                            std=torch.tensor([0.25]), workers=workers)
    features, heads = build("lenet", source.shape, [CLASSES], seed=seed)
    target = Labeled(torch.randn(100, *source.shape), torch.arange(100) % CLASSES)
    if method == "plain":
        m = PlainSGD(features, heads[0], SGDConfig())
    else:
        m = Soseleto(features, heads[0], None, n_source=len(source), cfg=SoseletoConfig(), n_target=100)
    chunks = list(torch.randperm(len(source), generator=torch.Generator().manual_seed(seed)).split(batch))[: steps + 1]
    started = None
    for k, (idx, xs) in enumerate(zip(chunks, source.batches(chunks))):
        tidx = torch.arange(k * 32, k * 32 + 32) % 100
        m.step(xs, source.y[idx], idx, target.x[tidx], target.y[tidx])
        if k == 0:
            started = time.perf_counter()
    seconds = time.perf_counter() - started
    return {"files": n, "method": method, "steps": steps, "batch": batch, "workers": workers,
            "images_per_s": steps * batch / seconds,
            "peak_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def run(root: str | Path, *, files: int, steps: int, batch: int, workers: int, threads: int | None) -> pd.DataFrame:
    """Every (size, method) in its own process; one row each plus the SOSELETO/plain ratio per size."""
    make_folder(root, files)
    rows = []
    for n in (max(batch * (steps + 1), files // 5), files):
        for method in ("plain", "soseleto"):
            args = json.dumps({"root": str(root), "n": n, "method": method, "steps": steps, "batch": batch,
                               "workers": workers, "threads": threads})
            out = subprocess.run([sys.executable, "-m", "soseleto.cost.stream", "--one", args],
                                 check=True, capture_output=True, text=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  {n} files, {method}: {rows[-1]['images_per_s']:.0f} images/s, "
                  f"peak {rows[-1]['peak_main_mb']:.0f} MB (+ workers {rows[-1]['peak_worker_mb']:.0f} MB)", flush=True)
    df = pd.DataFrame(rows)
    plain = df[df.method == "plain"].set_index("files").images_per_s
    df["time_ratio"] = df.files.map(plain) / df.images_per_s  # SOSELETO step time / plain step time
    return df


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m soseleto.cost.stream", description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="data/stream-bench", help="where the generated ImageFolder is kept (default: %(default)s)")
    p.add_argument("--files", type=int, default=50_000, help="images in the generated set (default: %(default)s)")
    p.add_argument("--steps", type=int, default=60, help="timed steps per run (default: %(default)s)")
    p.add_argument("--batch", type=int, default=128, help="source batch (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="decoding worker processes (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", default=None, help="also write the table as CSV here")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        a = json.loads(args.one)
        threads = a.pop("threads")
        if threads:
            torch.set_num_threads(threads)
        print(json.dumps(measure(a.pop("root"), **a)))
        return 0
    df = run(args.root, files=args.files, steps=args.steps, batch=args.batch, workers=args.workers, threads=args.threads)
    print(df.round(2).to_string(index=False))
    if args.out:
        from soseleto.io import write_csv

        write_csv(df, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
