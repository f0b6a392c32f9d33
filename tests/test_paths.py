"""Names in result paths and the workflow's run lists (:mod:`soseleto.paths`)."""

import numpy as np

from soseleto import paths
from soseleto.config import SideConfig

RUN = "results/noisy/noise{noise}/{method}/seed{seed}"


def test_detection_runs_follow_the_methods():
    runs = paths.detection_runs(["noisy_baseline", "soseleto", "l2rw", "glc"], ["0.3", "0.5"], [0, 1], run=RUN)
    assert len(runs) == 2 * 3 * 2
    assert runs[0] == {"noise": 0.3, "method": "soseleto", "seed": 0, "path": "results/noisy/noise0.3/soseleto/seed0/alpha.csv"}
    assert {r["method"] for r in runs} == {"soseleto", "l2rw", "cleanlab"}
    assert runs[-1]["path"] == "results/noisy/noise0.5/cleanlab/seed1/scores.csv"
    # cleanlab belongs to the noisy baseline; no scoring method, no runs
    assert {r["method"] for r in paths.detection_runs(["soseleto"], ["0.3"], [0], run=RUN)} == {"soseleto"}
    assert paths.detection_runs(["finetune", "glc"], ["0.3"], [0], run=RUN) == []


def test_classes_tag():
    assert paths.classes_tag([0, 1, 2, 3, 4]) == "01234" and paths.classes_tag(np.arange(10)) == "0123456789"
    assert paths.classes_tag((10, 11)) == "10.11" and paths.classes_tag((9, 12)) == "9.12"


def test_dataset_transfer_and_noise_tags():
    assert paths.dataset_tag("CIFAR10") == "cifar10" and paths.dataset_tag("data/mnist5k.npz") == "mnist5k"
    assert paths.dataset_tag("/data/my_images/") == "my_images"
    assert paths.dataset_tag("d/odd+set(1)$x{v}.npz") == "odd+set(1)$x(v)"  # braces would open a wildcard
    assert paths.transfer_tag(SideConfig("svhn", (0, 1, 2, 3, 4)), SideConfig("data/m.npz", (5, 6))) == \
        "svhn_01234-to-m_56"
    assert [paths.noise_tag(n) for n in (0.3, 0.40, 0.5, 1e-3)] == ["0.3", "0.4", "0.5", "0.001"]
