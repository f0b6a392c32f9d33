"""Command line: ``soseleto <command>``. Each command is a thin call into the package."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from soseleto import __version__, logs
from soseleto import fit as fit_module
from soseleto.bench import build_parser as bench_parser


def _synthetic(args: argparse.Namespace) -> int:
    from soseleto import synthetic

    cfg = yaml.safe_load(Path(args.config).read_text())
    if "synthetic" not in cfg:
        raise SystemExit(f"{args.config}: no 'synthetic' section")
    out = Path(args.outdir)
    summary = synthetic.run_and_save(
        cfg["synthetic"], seed=args.seed, device=args.device,
        points_csv=out / "alpha.csv", history_csv=out / "history.csv", metrics_json=out / "metrics.json",
    )
    print(summary)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from soseleto import bench

    return bench.run_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soseleto", description=__doc__)
    parser.add_argument("--version", action="version", version=f"soseleto {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    syn = sub.add_parser("synthetic", help="run one seed of the synthetic experiment (Figure 1)")
    syn.add_argument("--config", default="config/config.yaml", help="workflow config with a 'synthetic' section")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--device", default="auto")
    syn.add_argument("--outdir", default="results/synthetic/cli", help="where alpha.csv/history.csv/metrics.json go")
    syn.set_defaults(func=_synthetic)
    fit = sub.add_parser("fit", help="SOSELETO on your own source, target and test sets",
                         description=fit_module.DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit_module.add_arguments(fit)
    fit.set_defaults(func=fit_module.main)
    bench = sub.add_parser("bench", help="time a SOSELETO step against a plain step (writes a CSV)")
    bench_parser(bench).set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup()
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"soseleto: error: {err}", file=sys.stderr)
        return 2
