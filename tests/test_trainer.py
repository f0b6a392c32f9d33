import copy

import pytest
import torch
import torch.nn.functional as F

from soseleto.bilevel import reference_alignment
from soseleto.config import TrainerConfig
from soseleto.models import build_classifier, build_features
from soseleto.rng import seeded
from soseleto.trainer import Labeled, Soseleto


def _trainer(shared: bool, **cfg):
    with seeded(0):
        features, dim = build_features("mlp", (4,), hidden=8)
        src = build_classifier(dim, 3)
        tgt = None if shared else build_classifier(dim, 2)
    conf = TrainerConfig(shared_classifier=shared, **{"momentum": 0.0, **cfg})
    return Soseleto(features, src, tgt, n_source=20, n_target=6, cfg=conf)


def _batches(n_target_classes):
    g = torch.Generator().manual_seed(7)
    xs, ys = torch.randn(5, 4, generator=g), torch.randint(0, 3, (5,), generator=g)
    xt, yt = torch.randn(4, 4, generator=g), torch.randint(0, n_target_classes, (4,), generator=g)
    return xs, ys, torch.tensor([3, 0, 7, 12, 19]), xt, yt


def _grads(loss, params):
    return torch.autograd.grad(loss, list(params), retain_graph=True)


@pytest.mark.parametrize("shared", [True, False])
def test_one_step_matches_algorithm_1(float64, shared):
    """theta -= lr Q alpha_b; phi_s -= lr R alpha_b; phi_t -= lr dLt/dphi_t; alpha_b update eq. (5)."""
    lr, lr_a = 0.05, 3.0
    tr = _trainer(shared, lr_p=lr, lr_alpha=lr_a, alpha_init=0.7)
    xs, ys, idx, xt, yt = _batches(3 if shared else 2)
    tr.alpha[idx] = torch.tensor([0.1, 0.5, 1.0, 0.0, 0.9])
    alpha_b = tr.alpha[idx].clone()
    before = copy.deepcopy((tr.features, tr.source_head, tr.target_head))
    f, s, t = before
    if shared:
        t = s
    # expected updates from first principles, at theta_m
    per = F.cross_entropy(s(f(xs)), ys, reduction="none")
    ls = (alpha_b * per).mean()
    lt = F.cross_entropy(t(f(xt)), yt)
    q_alpha = _grads(ls, f.parameters())
    r_alpha = _grads(ls, s.parameters())
    g_theta = _grads(lt, f.parameters())
    g_phi_t = _grads(lt, t.parameters())
    tangents = dict(zip([n for n, _ in f.named_parameters()], g_theta))
    align = reference_alignment(f, s, xs, ys, tangents)
    expected_alpha = (alpha_b + lr_a * lr * align / len(ys)).clamp(0.0, 1.1)

    tr.step(xs, ys, idx, xt, yt)

    for p0, p1, g in zip(f.parameters(), tr.features.parameters(), q_alpha):
        torch.testing.assert_close(p1, p0 - lr * g)  # the target never moves theta directly
    if shared:
        for p0, p1, gs, gt in zip(s.parameters(), tr.source_head.parameters(), r_alpha, g_phi_t):
            torch.testing.assert_close(p1, p0 - lr * (gs + gt))
        assert tr.target_head is tr.source_head
    else:
        for p0, p1, gs in zip(s.parameters(), tr.source_head.parameters(), r_alpha):
            torch.testing.assert_close(p1, p0 - lr * gs)
        for p0, p1, gt in zip(before[2].parameters(), tr.target_head.parameters(), g_phi_t):
            torch.testing.assert_close(p1, p0 - lr * gt)
    torch.testing.assert_close(tr.alpha[idx], expected_alpha)
    untouched = torch.ones(20, dtype=torch.bool)
    untouched[idx] = False
    assert torch.all(tr.alpha[untouched] == 0.7)


def test_alpha_stays_in_clip_range_and_reaches_both_ends():
    tr = _trainer(True, lr_p=0.1, lr_alpha=1e4, alpha_init=0.5, alpha_min=0.0, alpha_max=1.1, source_batch=5, target_batch=4)
    g = torch.Generator().manual_seed(0)
    src = Labeled(torch.randn(20, 4, generator=g), torch.randint(0, 3, (20,), generator=g))
    tgt = Labeled(torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g))
    tr.fit(src, tgt, seed=0, epochs=5)
    assert tr.alpha.min() >= 0.0 and tr.alpha.max() <= 1.1
    assert (tr.alpha == 0.0).any() and (tr.alpha == 1.1).any()


def test_same_seed_gives_identical_alpha_and_different_seed_differs():
    def run(seed):
        tr = _trainer(True, lr_p=0.1, lr_alpha=10.0, source_batch=4, target_batch=3)
        g = torch.Generator().manual_seed(1)
        src = Labeled(torch.randn(20, 4, generator=g), torch.randint(0, 3, (20,), generator=g))
        tgt = Labeled(torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g))
        tr.fit(src, tgt, seed=seed, epochs=3)
        return tr.alpha.clone()

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_head_mode_mismatch_is_an_error():
    with seeded(0):
        features, dim = build_features("mlp", (4,))
    with pytest.raises(ValueError, match="shared_classifier"):
        Soseleto(features, build_classifier(dim, 2), build_classifier(dim, 2), n_source=3, cfg=TrainerConfig())


def test_divergence_names_epoch_and_quantity():
    tr = _trainer(True, lr_p=1e6, source_batch=5, target_batch=4)
    g = torch.Generator().manual_seed(0)
    src = Labeled(torch.randn(20, 4, generator=g) * 100, torch.randint(0, 3, (20,), generator=g))
    tgt = Labeled(torch.randn(6, 4, generator=g) * 100, torch.randint(0, 3, (6,), generator=g))
    with pytest.raises(FloatingPointError, match=r"epoch \d+: (loss_source|loss_target|alpha_mean)"):
        tr.fit(src, tgt, seed=0, epochs=20)


class _Killed(Exception):
    pass


def _data(seed=1):
    g = torch.Generator().manual_seed(seed)
    src = Labeled(torch.randn(20, 4, generator=g), torch.randint(0, 3, (20,), generator=g))
    tgt = Labeled(torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g))
    return src, tgt


def test_killed_run_resumes_to_identical_alpha_and_accuracy(tmp_path):
    """A failure injected after epoch 2 of 5, then a re-run, ends exactly like an uninterrupted run."""
    src, tgt = _data()
    cfg = dict(lr_p=0.1, lr_alpha=10.0, source_batch=4, target_batch=3)
    full = _trainer(True, **cfg)
    full.fit(src, tgt, seed=0, epochs=5)

    ck = tmp_path / "run.ckpt"

    def die(tr, stats):
        if stats.epoch == 2:
            raise _Killed

    first = _trainer(True, **cfg)
    with pytest.raises(_Killed):
        first.fit(src, tgt, seed=0, epochs=5, checkpoint=ck, on_epoch=die)
    assert ck.exists()
    resumed = _trainer(True, **cfg)
    hist = resumed.fit(src, tgt, seed=0, epochs=5, checkpoint=ck)
    assert [h.epoch for h in hist] == [3, 4, 5]
    assert torch.equal(resumed.alpha, full.alpha)
    assert resumed.accuracy(tgt) == full.accuracy(tgt)
    for a, b in zip(resumed.features.parameters(), full.features.parameters()):
        assert torch.equal(a, b)


def test_checkpoint_of_other_config_is_refused(tmp_path):
    src, tgt = _data()
    ck = tmp_path / "run.ckpt"
    _trainer(True, lr_p=0.1, source_batch=4, target_batch=3).fit(src, tgt, seed=0, epochs=1, checkpoint=ck)
    with pytest.raises(ValueError, match=r"run.ckpt.*different config.*lr_p"):
        _trainer(True, lr_p=0.2, source_batch=4, target_batch=3).fit(src, tgt, seed=0, epochs=2, checkpoint=ck)


def test_sigkilled_process_resumes_to_the_uninterrupted_result(tmp_path):
    """A training process that dies by SIGKILL after epoch 3 is re-run and ends bit-identical."""
    import subprocess
    import sys

    code = (
        "import os, signal, sys, torch\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from test_trainer import _trainer, _data\n"
        "kill_at = int(sys.argv[2])\n"
        "def die(tr, stats):\n"
        "    if stats.epoch == kill_at:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "src, tgt = _data()\n"
        "tr = _trainer(True, lr_p=0.1, lr_alpha=10.0, source_batch=4, target_batch=3, momentum=0.9)\n"
        "tr.fit(src, tgt, seed=0, epochs=6, checkpoint=sys.argv[1], on_epoch=die)\n"
        "torch.save(tr.alpha, sys.argv[1] + '.alpha')\n"
    )
    tests_dir = str(__import__("pathlib").Path(__file__).parent)
    ck = str(tmp_path / "run.ckpt")
    killed = subprocess.run([sys.executable, "-c", code, ck, "3", tests_dir], timeout=120)
    assert killed.returncode == -9 and not (tmp_path / "run.ckpt.alpha").exists()
    resumed = subprocess.run([sys.executable, "-c", code, ck, "0", tests_dir], timeout=120)
    assert resumed.returncode == 0
    src, tgt = _data()
    full = _trainer(True, lr_p=0.1, lr_alpha=10.0, source_batch=4, target_batch=3, momentum=0.9)
    full.fit(src, tgt, seed=0, epochs=6)
    assert torch.equal(torch.load(ck + ".alpha"), full.alpha)
