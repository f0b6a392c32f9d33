"""Command line: ``soseleto <command>``. Each command is a thin call into the package; torch is
imported only when a command runs, so ``--help`` answers at once."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from soseleto import __version__, logs
from soseleto.config import FIT_MODES, MODEL_CHOICES, BenchConfig, FitConfig, SoseletoConfig, SyntheticConfig, from_mapping
from soseleto.paths import STEP_COST_NAME, share_cost_csv

# soseleto fit's training options: flag -> field of SoseletoConfig (defaults and meanings come from there)
TRAINER_FLAGS = {"--epochs": "epochs", "--lr": "lr_p", "--lr-alpha": "lr_alpha", "--momentum": "momentum",
                 "--weight-decay": "weight_decay", "--alpha-init": "alpha_init", "--batch-size": "source_batch",
                 "--target-batch-size": "target_batch"}

FIT_DESCRIPTION = """\
Learn one weight alpha per source sample so that training on the weighted source helps the small,
clean target set; low alpha = a source sample that is likely mislabeled (noisy mode) or unhelpful
for the target task (transfer mode).

Each set is one of
  NAME:SPLIT[:CLASSES]   torchvision set: cifar10, cifar100, svhn, mnist, fashionmnist or kmnist;
                         split train or test
  mnist5k[:CLASSES]      5,000 real MNIST digits shipped with the package (no split of its own)
  digits8x8[:CLASSES]    scikit-learn's 1,797 real 8x8 digits, shipped likewise
  FILE.npz[:CLASSES]     arrays x (N, H, W) or (N, H, W, C) uint8 and y (N,) integer labels
                         (float pixels in [0, 1] or [0, 255] are accepted; NaN is not)
  FOLDER[:CLASSES]       ImageFolder layout FOLDER/<class>/<image>, classes in sorted order
CLASSES keeps only those labels (e.g. 5,6,7,8,9 or 5-9) and numbers them 0, 1, ... in that order.

Writes OUT/weights.csv (index, label, alpha, final_loss, rank; sorted by rank, 1 = lowest alpha
= most suspect; equal alphas, e.g. the many at 0, are ranked by final_loss, the sample's loss
under the trained network, highest first), OUT/model.pt (for soseleto predict) and
OUT/metrics.json, whose "warnings" also say when the network did not learn. OUT is locked
while a run writes there; a killed run resumes when the same command is run again (its state
is kept in OUT/.resume.pt until the outputs are written).

With --true-labels FILE (the source's true labels: FILE.npy, a 1-D integer array, or FILE.npz
with an array y; one label per source sample as given, before :CLASSES, in its numbering)
metrics.json also scores alpha as a detector of the mislabeled samples, and weights.csv gets
true_label and suspect (alpha < --flag-threshold).

example:
  soseleto fit --mode noisy --source noisy.npz --target clean.npz --test test.npz --out fit/
  soseleto fit --mode transfer --source svhn:train --target mnist:train:5-9 \\
      --target-per-class 10 --test mnist:test:5-9 --gray --size 28 --out svhn2mnist/
  soseleto fit --mode noisy --source noisy.npz --target clean.npz --true-labels true.npz --out fit/
"""


def fit_arguments(p: argparse.ArgumentParser) -> None:
    """The ``soseleto fit`` options: :class:`~soseleto.config.FitConfig`'s fields, training ones
    :class:`~soseleto.config.SoseletoConfig`'s; meanings and defaults come from there."""
    fit = {f.name: f for f in dataclasses.fields(FitConfig)}

    def option(flag: str, name: str, **kw) -> None:
        f = fit[name]
        default = "" if f.default in ("", None) or kw.get("required") else " (default: %(default)s)"
        kw.setdefault("help", f.metadata["doc"] + default)
        p.add_argument(flag, dest=name, default=f.default, **kw)

    option("--source", "source", required=True)
    option("--target", "target", required=True)
    option("--test", "test")
    option("--target-per-class", "target_per_class", type=_positive, metavar="N")
    option("--mode", "mode", required=True, choices=FIT_MODES)
    option("--out", "out", required=True)
    option("--model", "model", choices=MODEL_CHOICES, help="feature network; auto: LeNet for gray images, CIFAR-10 Quick for "
           "colour ones, and images whose smaller side is under the one that network is made for (28 px for LeNet, "
           "32 px for CIFAR-10 Quick) are first scaled up, bilinear and keeping their aspect ratio, until it is "
           "(model.pt keeps that resize for soseleto predict); a named network must take the images as they are "
           "(lenet: at least 16 px, cifar_quick: 8 px) (default: %(default)s)")
    trainer = {f.name: f for f in dataclasses.fields(SoseletoConfig)}
    for flag, name in TRAINER_FLAGS.items():
        f = trainer[name]
        p.add_argument(flag, dest=name, type=type(f.default), default=f.default,
                       help=f"{f.metadata['doc']} (default: %(default)s)")
    option("--seed", "seed", type=_non_negative)
    option("--device", "device")
    option("--threads", "threads", type=_positive, metavar="N")
    option("--data-dir", "data_dir")
    option("--download", "download", action=argparse.BooleanOptionalAction)
    option("--gray", "gray", action="store_true")
    option("--size", "size", type=_size, help="resize every image to HxW (or N for NxN)")
    option("--stream", "stream", action="store_true",
           help="read the source (an ImageFolder) from disk batch by batch instead of into memory: for sets larger "
                "than memory; same batches and results as in memory (normalisation statistics from at most 2,048 "
                "of its images)")
    option("--workers", "workers", type=_non_negative, metavar="N")
    option("--true-labels", "true_labels", metavar="FILE",
           help="the source's true labels (.npy 1-D integer array, or .npz with array y; one per source sample, "
                "before :CLASSES): score alpha as a detector of the mislabeled samples")
    option("--flag-threshold", "flag_threshold", type=float)


def fit_config(args: argparse.Namespace) -> FitConfig:
    """The :class:`~soseleto.config.FitConfig` of ``soseleto fit``'s parsed flags."""
    trainer = SoseletoConfig(**{name: getattr(args, name) for name in TRAINER_FLAGS.values()},
                             shared_classifier=args.mode == "noisy")
    names = [f.name for f in dataclasses.fields(FitConfig) if f.name != "trainer"]
    return FitConfig(**{name: getattr(args, name) for name in names}, trainer=trainer)


def _fit(args: argparse.Namespace) -> int:
    from soseleto.experiments import fit

    cfg = fit_config(args)
    metrics = fit.run(cfg)
    print(f"test accuracy: {fit.percent(metrics['test_accuracy'])}  target accuracy: "
          f"{fit.percent(metrics['target_accuracy'])}  outputs: {cfg.out}")
    return 0


def predict_arguments(p: argparse.ArgumentParser) -> None:
    """The ``soseleto predict`` options."""
    p.add_argument("--model", required=True, metavar="MODEL.pt", help="the model.pt that soseleto fit wrote")
    p.add_argument("--images", required=True, metavar="IMAGES",
                   help="FILE.npz (x; y optional), a folder of images (flat, or ImageFolder class folders) or any "
                        "set of soseleto fit (NAME:SPLIT[:CLASSES], FILE.npz[:CLASSES])")
    p.add_argument("--out", default="predictions.csv", help="the CSV to write (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    p.add_argument("--data-dir", default="data", help="where torchvision sets live (default: %(default)s)")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=False,
                   help="download a missing torchvision set into --data-dir (needs internet)")


PREDICT_DESCRIPTION = """Label images with a model fitted by soseleto fit, prepared exactly as its training images were
(gray, resize and normalisation are stored in model.pt). Writes a CSV with one row per image:
index (its row in the file, or its place in the folder), path (folders), label (when the images
have labels), prediction (the label, numbered as in the training data), class (ImageFolder
training sets: the class name) and prob_<label> for each class. With labels it also prints the
accuracy.

example:
  soseleto predict --model fit/model.pt --images test.npz --out fit/predictions.csv
"""


def _predict(args: argparse.Namespace) -> int:
    from soseleto.experiments import predict

    return predict.main(args)


def _synthetic(args: argparse.Namespace) -> int:
    import yaml

    from soseleto.experiments import synthetic

    if args.config is None:
        cfg = SyntheticConfig()
    else:
        mapping = yaml.safe_load(Path(args.config).read_text()) or {}
        if "synthetic" not in mapping:
            raise ValueError(f"{args.config}: no 'synthetic' section")
        cfg = from_mapping(SyntheticConfig, mapping["synthetic"], where="synthetic.")
    out = Path(args.outdir)
    summary = synthetic.run_and_save(cfg, seed=args.seed, device=args.device, outputs={
        "points": out / "alpha.csv", "history": out / "history.csv", "metrics": out / "metrics.json"})
    print(summary)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from soseleto.cost import bench

    cfg = BenchConfig(models=tuple(args.models), reps=args.reps, quick=args.quick, threads=args.threads, load=args.load)
    df = bench.run(cfg, args.device, out=args.out, compile_mode=args.compile)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


def _plan(args: argparse.Namespace) -> int:
    import os

    from soseleto.cost import plan
    from soseleto.cost.gpus import default_device

    cfg, _ = plan.load_config(args.configfile or (), base=args.base)
    device = args.device or default_device(cfg.device)
    bench_csv, share_csv = plan.benchmarks(cfg, device)
    result = plan.plan(cfg, device=device, cores=args.cores or os.cpu_count() or 1, gpus=args.gpus,
                       bench_csv=args.bench or bench_csv, results=args.results, jobs_per_gpu=args.jobs_per_gpu,
                       share_csv=args.share or share_csv)
    print(plan.render_markdown(result), end="")
    if args.measured:
        import glob

        found = sorted(glob.glob(os.path.join(args.results, "*", "**", "metrics.json"), recursive=True))
        from soseleto.cost import measured

        print("\n" + measured.run_costs_markdown(measured.run_costs(found)), end="")
    return 0


def plan_arguments(p: argparse.ArgumentParser) -> None:
    """The ``soseleto plan`` options."""
    p.add_argument("--configfile", nargs="+", help="config files over config/config.yaml, as snakemake --configfile")
    p.add_argument("--base", default="config/config.yaml", help="the workflow's default config (default: %(default)s)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="price the steps on this device (default: cpu when the "
                   "config says device: cpu, else cuda)")
    p.add_argument("--cores", type=int, help="CPU cores for the jobs (default: this machine's)")
    p.add_argument("--gpus", type=_positive, default=1, help="GPUs (default: %(default)s)")
    p.add_argument("--jobs-per-gpu", type=_positive, default=1, help="training jobs side by side on each GPU, as "
                   "snakemake --resources gpu=GPUS*JOBS gives (default: %(default)s)")
    p.add_argument("--share", help="measured gain of jobs sharing a GPU (python -m soseleto.cost.share); absent: no "
                   f"gain assumed (default: {share_cost_csv('<device>')})")
    p.add_argument("--bench", help="measured step times (soseleto bench); absent: assumed defaults (default: "
                   f"{STEP_COST_NAME} as the config's bench section names it)")
    p.add_argument("--results", default="results", help="the results folder: data set sizes (default: %(default)s)")
    p.add_argument("--measured", action="store_true",
                   help="also list what the finished runs under --results cost per epoch and per step")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soseleto", description="SOSELETO: learn one weight per source sample so that training on the weighted "
        "source helps a small clean target set (noisy labels, transfer learning).")
    parser.add_argument("--version", action="version", version=f"soseleto {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="SOSELETO on your own source, target and test sets",
                         description=FIT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit_arguments(fit)
    fit.set_defaults(func=_fit)
    pred = sub.add_parser("predict", help="label images with a model fitted by soseleto fit (writes a CSV)",
                          description=PREDICT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    predict_arguments(pred)
    pred.set_defaults(func=_predict)
    syn = sub.add_parser("synthetic", help="one seed of the synthetic experiment (section 4.1, Figure 1)",
                         description="SOSELETO on 2-D points with flipped labels (section 4.1): writes alpha.csv, "
                                     "history.csv and metrics.json.")
    syn.add_argument("--config", help="a YAML file with a 'synthetic' section (default: the paper's settings)")
    syn.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    syn.add_argument("--device", default="auto", help="(default: %(default)s)")
    syn.add_argument("--outdir", default="results/synthetic/cli", help="where the files go (default: %(default)s)")
    syn.set_defaults(func=_synthetic)
    bench = sub.add_parser("bench", help="time a SOSELETO step and the peers' steps against a plain step (writes a CSV)",
                           description="Time and measure the peak memory of one SOSELETO step against one plain "
                                       "SGD step per model, after checking its alpha update against a per-sample "
                                       "reference, and time the peers' steps (joint training, L2RW, Meta-Weight-Net, "
                                       "GLC, the noise-adaptation layer) on the same batches; writes a CSV of the "
                                       "ratios to the plain step.")
    bench_arguments(bench)
    bench.set_defaults(func=_bench)
    plan = sub.add_parser("plan", help="the cost of `snakemake all` before it starts: jobs, steps, hours per rule",
                          description="Per rule of the workflow: its jobs, the SGD steps of each (from the config and "
                                      "the set sizes), the time of a step (measured by soseleto bench, or assumed) "
                                      "and the projected hours; a markdown table on stdout. Run from the repository "
                                      "root.")
    plan_arguments(plan)
    plan.set_defaults(func=_plan)
    return parser


def bench_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``soseleto bench`` options (defaults: :class:`~soseleto.config.BenchConfig`'s)."""
    defaults = BenchConfig()
    models = dataclasses.fields(BenchConfig)[0].metadata["choices"]
    parser.add_argument("--device", default="auto", help="(default: %(default)s)")
    parser.add_argument("--reps", type=int, default=defaults.reps,
                        help="timed repetitions of each step type (default: %(default)s)")
    parser.add_argument("--quick", action=argparse.BooleanOptionalAction, default=defaults.quick,
                        help="CI mode: 3 repetitions, 1 warm-up step (default: %(default)s)")
    parser.add_argument("--models", nargs="+", default=list(defaults.models), choices=models)
    parser.add_argument("--threads", type=_positive, default=defaults.threads,
                        help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--load", type=int, default=defaults.load, metavar="N",
                        help="time both steps again with N CPU-heavy processes beside (the *_loaded columns); "
                             "0: only on the machine as it is (default: %(default)s)")
    parser.add_argument("--compile", choices=("default", "reduce-overhead", "max-autotune-no-cudagraphs"),
                        help="also time both steps compiled with this torch.compile mode (the *_compiled columns), "
                             "after checking two compiled steps against eager ones (default: not compiled)")
    parser.add_argument("--out", help=f"(default: {STEP_COST_NAME}: cpu, cuda, cpu-quick-2threads, ...)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command. Exit status 2: bad input or options (the message names the file, key or
    option); 1: a full disk (the message says what was kept) or too little memory."""
    from soseleto.io import no_space

    args = build_parser().parse_args(argv)
    logs.setup()
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"soseleto: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if no_space(err):  # its message says what was (not) written and what is kept
            print(f"soseleto: error: {err.strerror or err}", file=sys.stderr)
            return 1
        if err.filename is None:
            raise
        print(f"soseleto: error: {err.filename!r}: {err.strerror or err}", file=sys.stderr)
        return 2
    except MemoryError as err:
        print(f"soseleto: error: out of memory ({err or 'an allocation failed'}); use fewer or smaller images, or "
              "--stream for an ImageFolder source", file=sys.stderr)
        return 1


def _int_at_least(lowest: int):
    """An argparse ``type``: an integer no smaller than ``lowest``, else an error that names it."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"{text!r}: must be at least {lowest}")
        return value
    return parse


_positive, _non_negative = _int_at_least(1), _int_at_least(0)


def _size(text: str) -> tuple[int, int]:
    from soseleto.validate import MAX_SIDE

    h, _, w = text.lower().partition("x")
    try:
        size = (int(h), int(w or h))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected HxW or N, e.g. 28x28") from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"--size {text!r}: sides must be positive")
    if max(size) > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"--size {text!r}: sides must be at most {MAX_SIDE} pixels")
    return size
