import torch

from soseleto import data
from soseleto.baselines import train_plain
from soseleto.config import TrainerConfig
from soseleto.evaluate import accuracy
from soseleto.models import build_classifier, build_features
from soseleto.rng import seeded
from soseleto.trainer import Labeled


def test_plain_training_learns_generated_mnist():
    x, y = data.generated("mnist", "train", 400, seed=0)
    xt, yt = data.generated("mnist", "test", 200, seed=0)
    with seeded(0):
        f, d = build_features("lenet", (1, 28, 28))
        h = build_classifier(d, 10)
    before = accuracy(f, h, data.to_float(xt), yt)
    cfg = TrainerConfig(lr_p=0.05, momentum=0.9, source_batch=32, epochs=3)
    hist = train_plain(f, h, Labeled(data.to_float(x), y), cfg, seed=0)
    assert len(hist) == 3 and hist[-1].loss_source < hist[0].loss_source
    assert accuracy(f, h, data.to_float(xt), yt) > max(0.6, before + 0.3)


def test_plain_training_resumes_exactly(tmp_path):
    x, y = data.generated("mnist", "train", 64, seed=0)
    d = Labeled(data.to_float(x), y)
    cfg = TrainerConfig(lr_p=0.05, momentum=0.9, source_batch=16, epochs=3)

    def net():
        with seeded(0):
            f, dim = build_features("mlp", (1, 28, 28), hidden=16)
            return f, build_classifier(dim, 10)

    f1, h1 = net()
    train_plain(f1, h1, d, cfg, seed=0)
    f2, h2 = net()
    ck = tmp_path / "p.ckpt"
    train_plain(f2, h2, d, cfg, seed=0, epochs=1, checkpoint=ck)  # "killed" after epoch 1
    f3, h3 = net()
    hist = train_plain(f3, h3, d, cfg, seed=0, checkpoint=ck)
    assert [h.epoch for h in hist] == [2, 3]
    for a, b in zip(list(f3.parameters()) + list(h3.parameters()), list(f1.parameters()) + list(h1.parameters())):
        assert torch.equal(a, b)
