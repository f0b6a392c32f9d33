"""Algorithm 1: one SOSELETO step from first principles, alpha's update and clip range, and runs
of the step through the epoch loop (reproducibility, divergence, resume after a kill)."""

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from soseleto.core.forward_mode import reference_alignment
from soseleto.core.loop import Labeled, train
from soseleto.core.models import build_classifier, build_features
from soseleto.core.rng import seeded
from soseleto.core.soseleto import Soseleto, updated_alpha

from builders import soseleto_config


def _trainer(shared: bool, **cfg):
    with seeded(0):
        features, dim = build_features("mlp", (4,), hidden=8)
        src = build_classifier(dim, 3)
        tgt = None if shared else build_classifier(dim, 2)
    conf = soseleto_config(shared_classifier=shared, **{"momentum": 0.0, **cfg})
    return Soseleto(features, src, tgt, n_source=20, n_target=6, cfg=conf)


def _batches(n_target_classes):
    g = torch.Generator().manual_seed(7)
    xs, ys = torch.randn(5, 4, generator=g), torch.randint(0, 3, (5,), generator=g)
    xt, yt = torch.randn(4, 4, generator=g), torch.randint(0, n_target_classes, (4,), generator=g)
    return xs, ys, torch.tensor([3, 0, 7, 12, 19]), xt, yt


def _grads(loss, params):
    return torch.autograd.grad(loss, list(params), retain_graph=True)


def _fit(tr, src, tgt, *, seed, epochs, **kw):
    """The old ``Soseleto.fit``: ``epochs`` passes of ``tr`` through the epoch loop."""
    return train(tr, src, tgt, schedule=dataclasses.replace(tr.cfg, epochs=epochs).schedule, seed=seed, **kw)


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

    loss_s, loss_t = tr.step(xs, ys, idx, xt, yt)

    # the step returns the detached weighted source loss (alpha before its update) and the target loss
    assert not loss_s.requires_grad and not loss_t.requires_grad
    torch.testing.assert_close(loss_s, ls.detach())
    torch.testing.assert_close(loss_t, lt.detach())
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


def test_updated_alpha_clips_to_range():
    alpha = torch.tensor([0.05, 0.5, 1.0, 1.05])
    out = updated_alpha(alpha.clone(), torch.tensor([-10.0, 1.0, 10.0, 0.0]), step=0.1, lo=0.0, hi=1.1)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.6, 1.1, 1.05]))


def test_alpha_stays_in_clip_range_and_reaches_both_ends():
    tr = _trainer(True, lr_p=0.1, lr_alpha=1e4, alpha_init=0.5, alpha_min=0.0, alpha_max=1.1, source_batch=5, target_batch=4)
    g = torch.Generator().manual_seed(0)
    src = Labeled(torch.randn(20, 4, generator=g), torch.randint(0, 3, (20,), generator=g))
    tgt = Labeled(torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g))
    _fit(tr, src, tgt, seed=0, epochs=5)
    assert tr.alpha.min() >= 0.0 and tr.alpha.max() <= 1.1
    assert (tr.alpha == 0.0).any() and (tr.alpha == 1.1).any()


def test_same_seed_gives_identical_alpha_and_different_seed_differs():
    def run(seed):
        tr = _trainer(True, lr_p=0.1, lr_alpha=10.0, source_batch=4, target_batch=3)
        g = torch.Generator().manual_seed(1)
        src = Labeled(torch.randn(20, 4, generator=g), torch.randint(0, 3, (20,), generator=g))
        tgt = Labeled(torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g))
        _fit(tr, src, tgt, seed=seed, epochs=3)
        return tr.alpha.clone()

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_head_mode_mismatch_is_an_error():
    with seeded(0):
        features, dim = build_features("mlp", (4,))
    with pytest.raises(ValueError, match="shared_classifier"):
        Soseleto(features, build_classifier(dim, 2), build_classifier(dim, 2), n_source=3, cfg=soseleto_config())
    with pytest.raises(ValueError, match="shared_classifier"):
        Soseleto(features, build_classifier(dim, 2), None, n_source=3, cfg=soseleto_config(shared_classifier=False))


def test_dataset_loss_scale_needs_the_target_size_and_unknown_alignment_is_named():
    with seeded(0):
        features, dim = build_features("mlp", (4,))
    with pytest.raises(ValueError, match="n_target"):
        Soseleto(features, build_classifier(dim, 2), None, n_source=3, cfg=soseleto_config(loss_scale="dataset"))
    with pytest.raises(ValueError, match="alignment='exact'"):
        Soseleto(features, build_classifier(dim, 2), None, n_source=3, cfg=soseleto_config(), alignment="exact")


def test_summary_is_the_mean_alpha():
    tr = _trainer(True, alpha_init=0.7)
    tr.alpha[:10] = 0.2
    assert tr.summary() == {"alpha_mean": pytest.approx(0.45)}


def test_divergence_names_epoch_and_quantity():
    tr = _trainer(True, lr_p=1e6, source_batch=5, target_batch=4)
    g = torch.Generator().manual_seed(0)
    src = Labeled(torch.randn(20, 4, generator=g) * 100, torch.randint(0, 3, (20,), generator=g))
    tgt = Labeled(torch.randn(6, 4, generator=g) * 100, torch.randint(0, 3, (6,), generator=g))
    with pytest.raises(FloatingPointError, match=r"epoch \d+: (loss_source|loss_target|alpha_mean)"):
        _fit(tr, src, tgt, seed=0, epochs=20)


class _Killed(Exception):
    pass


def _data(seed=1):
    g = torch.Generator().manual_seed(seed)
    src = Labeled(torch.randn(20, 4, generator=g), torch.randint(0, 3, (20,), generator=g))
    tgt = Labeled(torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g))
    return src, tgt


IDENTITY = {"test": "soseleto"}


def test_killed_run_resumes_to_identical_alpha_and_accuracy(tmp_path):
    """A failure injected after epoch 2 of 5, then a re-run, ends exactly like an uninterrupted run."""
    src, tgt = _data()
    cfg = dict(lr_p=0.1, lr_alpha=10.0, source_batch=4, target_batch=3)
    full = _trainer(True, **cfg)
    full_hist = _fit(full, src, tgt, seed=0, epochs=5)

    ck = tmp_path / "run.ckpt"

    def die(stats):
        if stats.epoch == 2:
            raise _Killed

    first = _trainer(True, **cfg)
    with pytest.raises(_Killed):
        _fit(first, src, tgt, seed=0, epochs=5, checkpoint=ck, identity=IDENTITY, on_epoch=die)
    assert ck.exists()
    resumed = _trainer(True, **cfg)
    hist = _fit(resumed, src, tgt, seed=0, epochs=5, checkpoint=ck, identity=IDENTITY)
    assert [h.epoch for h in hist] == [1, 2, 3, 4, 5]  # the epochs before the kill included
    assert [(h.loss_source, h.loss_target, h.values) for h in hist] == [
        (h.loss_source, h.loss_target, h.values) for h in full_hist]
    assert torch.equal(resumed.alpha, full.alpha)
    assert resumed.accuracy(tgt) == full.accuracy(tgt)
    for a, b in zip(resumed.features.parameters(), full.features.parameters()):
        assert torch.equal(a, b)


def test_checkpoint_of_other_config_is_refused(tmp_path):
    src, tgt = _data()
    ck = tmp_path / "run.ckpt"

    def ident(tr):
        return {"settings": tr.cfg, "seed": 0}

    first = _trainer(True, lr_p=0.1, source_batch=4, target_batch=3)
    _fit(first, src, tgt, seed=0, epochs=1, checkpoint=ck, identity=ident(first))
    other = _trainer(True, lr_p=0.2, source_batch=4, target_batch=3)
    with pytest.raises(ValueError, match=r"run.ckpt.*different config.*lr_p"):
        _fit(other, src, tgt, seed=0, epochs=2, checkpoint=ck, identity=ident(other))


def test_checkpoint_with_another_source_size_is_refused():
    tr, other = _trainer(True), _trainer(True)
    state = tr.state_dict()
    state["alpha"] = torch.ones(7)
    with pytest.raises(ValueError, match="7 alphas, this run 20"):
        other.load_state_dict(state)


def test_sigkilled_process_resumes_to_the_uninterrupted_result(tmp_path):
    """A training process that dies by SIGKILL after epoch 3 is re-run and ends bit-identical."""
    import subprocess
    import sys

    code = (
        "import os, signal, sys, torch\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from test_soseleto import _trainer, _data, _fit, IDENTITY\n"
        "kill_at = int(sys.argv[2])\n"
        "def die(stats):\n"
        "    if stats.epoch == kill_at:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "src, tgt = _data()\n"
        "tr = _trainer(True, lr_p=0.1, lr_alpha=10.0, source_batch=4, target_batch=3, momentum=0.9)\n"
        "_fit(tr, src, tgt, seed=0, epochs=6, checkpoint=sys.argv[1], identity=IDENTITY, on_epoch=die)\n"
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
    _fit(full, src, tgt, seed=0, epochs=6)
    assert torch.equal(torch.load(ck + ".alpha"), full.alpha)


# -- options beyond the paper ---------------------------------------------------------------------
def _target_grad(tr, xt, yt):
    f, h = copy.deepcopy(tr.features), copy.deepcopy(tr.target_head)
    lt = F.cross_entropy(h(f(xt)), yt)
    return f, dict(zip([n for n, _ in f.named_parameters()], _grads(lt, f.parameters())))


def test_averaged_target_direction_is_the_bias_corrected_running_mean(float64):
    """target_grad_decay: step 1 uses that step's gradient; step 2 (b g1 + g2)/(1 + b)."""
    beta, lr, lr_a = 0.9, 0.05, 3.0
    tr = _trainer(True, lr_p=lr, lr_alpha=lr_a, alpha_init=0.7, target_grad_decay=beta)
    paper = _trainer(True, lr_p=lr, lr_alpha=lr_a, alpha_init=0.7)
    xs, ys, idx, xt, yt = _batches(3)
    tr.step(xs, ys, idx, xt, yt), paper.step(xs, ys, idx, xt, yt)
    assert torch.equal(tr.alpha, paper.alpha)  # the first average is the first gradient
    # second step on fresh batches: compare with the reference alignment along the average
    before = copy.deepcopy(tr)
    xs2, ys2, xt2 = xs.flip(0), ys.flip(0), xt.flip(0)
    f0 = copy.deepcopy(_trainer(True, lr_p=lr, lr_alpha=lr_a, alpha_init=0.7))
    _, g_first = _target_grad(f0, xt, yt)
    f, g_second = _target_grad(before, xt2, yt.flip(0))
    direction = {k: (beta * (1 - beta) * g_first[k] + (1 - beta) * g_second[k]) / (1 - beta**2) for k in g_first}
    align = reference_alignment(f, copy.deepcopy(before.source_head), xs2, ys2, direction)
    alpha_b = before.alpha[idx].clone()
    tr.step(xs2, ys2, idx, xt2, yt.flip(0))
    torch.testing.assert_close(tr.alpha[idx], (alpha_b + lr_a * lr * align / len(ys)).clamp(0.0, 1.1))


def test_normalized_alpha_step_moves_alpha_in_units_of_the_running_rms(float64):
    """alpha_step normalized: alpha_b + lr_alpha * a_j / RMS(a); the scale of the network cancels."""
    lr_a = 0.3
    tr = _trainer(True, lr_p=0.05, lr_alpha=lr_a, alpha_init=0.5, alpha_step="normalized")
    xs, ys, idx, xt, yt = _batches(3)
    f, g = _target_grad(tr, xt, yt)
    align = reference_alignment(f, copy.deepcopy(tr.source_head), xs, ys, g)
    tr.step(xs, ys, idx, xt, yt)
    expected = (0.5 + lr_a * align / align.pow(2).mean().sqrt()).clamp(0.0, 1.1)
    torch.testing.assert_close(tr.alpha[idx], expected)
    # the same step with every learning rate of the network scaled: alpha moves the same
    slow = _trainer(True, lr_p=0.05 * 1e-3, lr_alpha=lr_a, alpha_init=0.5, alpha_step="normalized")
    slow.step(xs, ys, idx, xt, yt)
    torch.testing.assert_close(slow.alpha[idx], expected)


def test_options_resume_bit_identically(tmp_path):
    """The running averages are part of the resumable state."""
    src, tgt = _data()
    cfg = dict(lr_p=0.1, lr_alpha=0.3, source_batch=4, target_batch=3, alpha_step="normalized",
               target_grad_decay=0.9, momentum=0.9)
    full = _trainer(True, **cfg)
    _fit(full, src, tgt, seed=0, epochs=4)
    ck = tmp_path / "run.ckpt"

    def die(stats):
        if stats.epoch == 2:
            raise _Killed

    with pytest.raises(_Killed):
        _fit(_trainer(True, **cfg), src, tgt, seed=0, epochs=4, checkpoint=ck, identity=IDENTITY, on_epoch=die)
    resumed = _trainer(True, **cfg)
    _fit(resumed, src, tgt, seed=0, epochs=4, checkpoint=ck, identity=IDENTITY)
    assert torch.equal(resumed.alpha, full.alpha) and not torch.equal(full.alpha, torch.full_like(full.alpha, 1.0))


def test_target_on_features_adds_the_weighted_target_gradient_to_theta(float64):
    """target_on_features = w: theta -= lr (Q alpha_b + w dLt/dtheta); the heads and alpha as in the paper."""
    lr, w = 0.05, 0.7
    tr = _trainer(False, lr_p=lr, lr_alpha=3.0, target_on_features=w)
    paper = _trainer(False, lr_p=lr, lr_alpha=3.0)
    xs, ys, idx, xt, yt = _batches(2)
    f, g = _target_grad(tr, xt, yt)
    tr.step(xs, ys, idx, xt, yt), paper.step(xs, ys, idx, xt, yt)
    for (name, p1), p0 in zip(tr.features.named_parameters(), paper.features.parameters()):
        torch.testing.assert_close(p1, p0 - lr * w * g[name])
    assert torch.equal(tr.alpha, paper.alpha)
    for a, b in zip(tr.target_head.parameters(), paper.target_head.parameters()):
        assert torch.equal(a, b)
