"""The streaming path: an ImageFolder decoded by DataLoader workers equals the in-memory set."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from soseleto.data.files import read_folder
from soseleto.data.images import channel_stats, to_float
from soseleto.data.stream import StreamedImages, folder_index


def write_folder(root, n_per_class=6, classes=("cat", "dog", "owl"), size=(10, 12), seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(root / c / f"{i:03d}.png")
    return root


def test_list_folder_matches_read_folder_order(tmp_path):
    root = write_folder(tmp_path / "imgs")
    _, y, names, paths = read_folder(root)
    lp, ly, lnames = folder_index(root)
    assert lp == paths and lnames == names and torch.equal(ly, y)


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_equal_the_in_memory_tensors(tmp_path, workers):
    root = write_folder(tmp_path / "imgs")
    x, y, _, paths = read_folder(root)
    mean, std = channel_stats(x)
    memory = to_float(x, mean=mean, std=std)
    s = StreamedImages(paths, y, mean=mean, std=std, workers=workers)
    chunks = list(torch.randperm(len(y), generator=torch.Generator().manual_seed(3)).split(5))
    got = list(s.batches(chunks))
    assert [tuple(b.shape) for b in got] == [(len(c), 3, 10, 12) for c in chunks]
    for idx, b in zip(chunks, got):
        assert torch.equal(b, memory[idx])


def test_resize_while_streaming_equals_read_folder_resize(tmp_path):
    root = write_folder(tmp_path / "imgs", size=(9, 7))
    x, y, _, paths = read_folder(root, size=(8, 8))
    mean, std = channel_stats(x)
    s = StreamedImages(paths, y, mean=mean, std=std, size=(8, 8), workers=0)
    (b,) = list(s.batches([torch.arange(len(y))]))
    assert torch.equal(b, to_float(x, mean=mean, std=std))


def test_an_image_of_another_size_is_named(tmp_path):
    root = write_folder(tmp_path / "imgs")
    odd = root / "owl" / "zzz.png"
    Image.fromarray(np.zeros((5, 5, 3), dtype=np.uint8)).save(odd)
    paths, y, _ = folder_index(root)
    s = StreamedImages(paths, y, mean=torch.zeros(3), std=torch.ones(3), workers=0)
    with pytest.raises(ValueError, match="zzz.png.*shape"):
        list(s.batches([torch.arange(len(y))]))


def test_to_keeps_the_files_and_moves_the_labels(tmp_path):
    root = write_folder(tmp_path / "imgs")
    paths, y, _ = folder_index(root)
    s = StreamedImages(paths, y, mean=torch.zeros(3), std=torch.ones(3), workers=0)
    t = s.to("cpu")
    assert t is not s and t.paths == s.paths and t.y.device.type == "cpu" and len(t) == len(s) == 18


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="no class sub-folders"):
        folder_index(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        folder_index(tmp_path)
    with pytest.raises(ValueError, match="2 image paths but 1 labels"):
        StreamedImages(["a.png", "b.png"], torch.zeros(1, dtype=torch.int64), mean=torch.zeros(1), std=torch.ones(1))


def test_stream_benchmark_measures_both_methods(tmp_path):
    from soseleto.cost.stream import make_folder, measure

    root = make_folder(tmp_path / "gen", 60)
    assert len(list(root.rglob("*.png"))) == 60 and (root / ".complete-60").exists()
    for method in ("plain", "soseleto"):
        row = measure(root, n=40, method=method, steps=2, batch=8, workers=0)
        assert row["files"] == 40 and row["method"] == method
        assert row["images_per_s"] > 0 and row["peak_main_mb"] > 0


def _lenet_soseleto(n_source, shape):
    from builders import soseleto_config

    from soseleto.core.models import build
    from soseleto.core.soseleto import Soseleto

    features, heads = build("lenet", shape, [3], seed=0)
    return Soseleto(features, heads[0], None, n_source=n_source, cfg=soseleto_config(lr_alpha=100.0, target_grad_decay=0.9))


def test_training_on_a_streamed_source_equals_training_in_memory_and_resumes_after_sigterm(tmp_path):
    import signal

    from soseleto.config import Schedule
    from soseleto.core.loop import Labeled, train
    from soseleto.core.stop import Stopped

    root = write_folder(tmp_path / "imgs", n_per_class=10, size=(28, 28))
    x, y, _, paths = read_folder(root)
    mean, std = channel_stats(x)
    memory = Labeled(to_float(x, mean=mean, std=std), y)
    target = Labeled(memory.x[::5].clone(), y[::5].clone())
    schedule = Schedule(epochs=2, source_batch=8, target_batch=3)  # 30 samples: 4 steps per epoch
    full = _lenet_soseleto(30, (3, 28, 28))
    train(full, memory, target, schedule=schedule, seed=0)

    streamed = StreamedImages(paths, y, mean=mean, std=std, workers=2)
    run = _lenet_soseleto(30, (3, 28, 28))
    steps = {"n": 0}
    real_step = run.step

    def step_then_signal(*batch):  # SIGTERM inside the 6th step (epoch 2): stop there, resume
        steps["n"] += 1
        if steps["n"] == 6:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(*batch)

    run.step = step_then_signal
    ck = tmp_path / "run.ckpt"
    with pytest.raises(Stopped):
        train(run, streamed, target, schedule=schedule, seed=0, checkpoint=ck, identity={"run": 1})
    resumed = _lenet_soseleto(30, (3, 28, 28))
    train(resumed, streamed, target, schedule=schedule, seed=0, checkpoint=ck, identity={"run": 1})
    assert torch.equal(resumed.alpha, full.alpha) and not torch.equal(full.alpha, torch.ones(30))
    for a, b in zip(resumed.features.parameters(), full.features.parameters()):
        assert torch.equal(a, b)
