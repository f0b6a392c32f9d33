"""The command line (:mod:`soseleto.cli`): its parser and its errors (the commands themselves are
tested in test_fit, test_synthetic and test_bench)."""

import argparse
import subprocess
import sys

import pytest

from soseleto import __version__, cli


def test_size_accepts_n_and_hxw():
    assert cli._size("28") == (28, 28) and cli._size("28x32") == (28, 32) and cli._size("8X4") == (8, 4)
    for bad in ("0", "axb", "4x0"):
        with pytest.raises(argparse.ArgumentTypeError, match="--size"):
            cli._size(bad)


def test_parser_has_the_three_commands():
    parser = cli.build_parser()
    args = parser.parse_args(["bench", "--quick", "--models", "lenet", "--threads", "2"])
    assert (args.command, args.quick, args.models, args.threads, args.reps) == ("bench", True, ["lenet"], 2, 20)
    args = parser.parse_args(["synthetic", "--seed", "4"])
    assert (args.command, args.seed, args.config, args.device) == ("synthetic", 4, None, "auto")
    args = parser.parse_args(["fit", "--mode", "transfer", "--source", "s", "--target", "t", "--out", "o",
                              "--size", "16", "--gray", "--lr", "0.5"])
    assert (args.mode, args.size, args.gray, args.lr_p, args.test) == ("transfer", (16, 16), True, 0.5, None)
    with pytest.raises(SystemExit):
        parser.parse_args(["fit", "--mode", "both", "--source", "s", "--target", "t", "--out", "o"])
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--models", "vgg"])


def test_version_and_help_answer_without_torch():
    code = ("import sys\nfrom soseleto.cli import main\n"
            "for command in ('fit', 'predict'):\n"
            "    try:\n        main([command, '--help'])\n    except SystemExit as e:\n        assert e.code == 0\n"
            "import soseleto\nassert callable(soseleto.load) and 'torch' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--true-labels" in out.stdout and "NAME:SPLIT[:CLASSES]" in out.stdout and "mnist5k[:CLASSES]" in out.stdout
    assert "--images IMAGES" in out.stdout and "prob_<label>" in out.stdout
    out = subprocess.run([sys.executable, "-m", "soseleto", "--version"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == f"soseleto {__version__}"


def test_bench_help_through_the_package_module():
    out = subprocess.run([sys.executable, "-m", "soseleto", "bench", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--quick" in out.stdout and "--threads" in out.stdout


def test_negative_workers_are_refused_before_any_data_is_read(capsys):
    from soseleto.cli import main

    with pytest.raises(SystemExit) as err:
        main(["fit", "--source", "nowhere.npz", "--target", "nowhere.npz", "--out", "x", "--workers", "-1"])
    assert err.value.code == 2 and "argument --workers: '-1': must be at least 0" in capsys.readouterr().err


def test_fit_help_states_what_auto_does_with_the_registrys_sizes():
    from soseleto.core.models import MIN_SIDE, NATIVE_SIDE

    fit = next(a for a in cli.build_parser()._subparsers._group_actions[0].choices.values() if a.prog.endswith("fit"))
    text = " ".join(fit.format_help().split())
    assert "auto: LeNet for gray images, CIFAR-10 Quick for colour ones" in text
    assert f"({NATIVE_SIDE['lenet']} px for LeNet, {NATIVE_SIDE['cifar_quick']} px for CIFAR-10 Quick) are first scaled up" in text
    assert f"(lenet: at least {MIN_SIDE['lenet']} px, cifar_quick: {MIN_SIDE['cifar_quick']} px)" in text
