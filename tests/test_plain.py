"""Plain minibatch SGD (:mod:`soseleto.methods.plain`): the baselines of Tables 1 and 2."""

import pytest
import torch
import torch.nn.functional as F

from soseleto.core.evaluate import accuracy
from soseleto.core.loop import Labeled
from soseleto.core.models import build_classifier, build_features
from soseleto.core.rng import seeded
from soseleto.data import images, sets
from soseleto.methods.plain import PlainSGD, train_plain

from builders import Killed, dies_on_second_call, plain_config


def test_plain_training_learns_generated_mnist():
    x, y = sets.generated("mnist", "train", 400, seed=0)
    xt, yt = sets.generated("mnist", "test", 200, seed=0)
    with seeded(0):
        f, d = build_features("lenet", (1, 28, 28))
        h = build_classifier(d, 10)
    before = accuracy(f, h, images.to_float(xt), yt)
    cfg = plain_config(lr_p=0.05, momentum=0.9, batch=32, epochs=3)
    hist = train_plain(f, h, Labeled(images.to_float(x), y), cfg, seed=0)
    assert len(hist) == 3 and hist[-1].loss_source < hist[0].loss_source
    assert all(h.loss_target is None for h in hist)  # plain runs have no target
    assert accuracy(f, h, images.to_float(xt), yt) > max(0.6, before + 0.3)


def test_one_step_is_sgd_on_the_batch_mean(float64):
    with seeded(0):
        f, d = build_features("mlp", (4,), hidden=8)
        h = build_classifier(d, 3)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g)
    params = [p.detach().clone() for p in [*f.parameters(), *h.parameters()]]
    loss = F.cross_entropy(h(f(x)), y)
    grads = torch.autograd.grad(loss, [*f.parameters(), *h.parameters()])
    method = PlainSGD(f, h, plain_config(lr_p=0.5, weight_decay=0.0, momentum=0.0))
    loss_s, loss_t = method.step(x, y, torch.arange(6))
    assert loss_t is None and not loss_s.requires_grad
    torch.testing.assert_close(loss_s, loss.detach())
    for p, p0, gr in zip([*f.parameters(), *h.parameters()], params, grads):
        torch.testing.assert_close(p, p0 - 0.5 * gr)


def test_plain_training_resumes_exactly(tmp_path):
    x, y = sets.generated("mnist", "train", 64, seed=0)
    d = Labeled(images.to_float(x), y)
    cfg = plain_config(lr_p=0.05, momentum=0.9, batch=16, epochs=3)

    def net():
        with seeded(0):
            f, dim = build_features("mlp", (1, 28, 28), hidden=16)
            return f, build_classifier(dim, 10)

    f1, h1 = net()
    full = train_plain(f1, h1, d, cfg, seed=0)
    f2, h2 = net()
    ck = tmp_path / "p.ckpt"
    die = dies_on_second_call()  # "killed" while evaluating epoch 2: the checkpoint holds epoch 1

    with pytest.raises(Killed):
        train_plain(f2, h2, d, cfg, seed=0, checkpoint=ck, identity={"run": "p"}, monitors={"m": die})
    f3, h3 = net()
    hist = train_plain(f3, h3, d, cfg, seed=0, checkpoint=ck, identity={"run": "p"})
    assert [h.epoch for h in hist] == [1, 2, 3]  # the history survives the resume
    assert [h.loss_source for h in hist] == [h.loss_source for h in full]
    assert hist[0].values == {"m": 0.0} and hist[1].values == {}
    for a, b in zip(list(f3.parameters()) + list(h3.parameters()), list(f1.parameters()) + list(h1.parameters())):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="different config"):
        train_plain(*net(), d, cfg, seed=0, checkpoint=ck, identity={"run": "q"})
