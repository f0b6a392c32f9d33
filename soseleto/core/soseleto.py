"""SOSELETO, Algorithm 1 of the paper: one step and its state (the epochs: :func:`soseleto.core.loop.train`).

One :meth:`Soseleto.step`, with every gradient taken at the current parameters ``theta_m``
(equation 5's approximation ``dL_t/dtheta(theta_m)``):

1. target forward/backward on a target batch -> ``g = dL_t/dtheta`` and ``dL_t/dphi_t``;
2. per-sample source losses ``l_j`` and alignments ``a_j = d l_j/dtheta . g``, without per-sample
   gradients: one dual-number forward (:mod:`soseleto.core.forward_mode`, any network) or, for
   networks whose samples never interact, from the backward pass itself (:mod:`soseleto.core.ghost`);
3. backward of ``L_s = c_s * sum_j alpha_j l_j`` -> ``Q alpha_b`` and ``R alpha_b``
   (``q_j = c_s * d l_j/dtheta``; ``c_s`` = 1/|batch| or 1/n_s, see ``loss_scale``);
4. SGD step: ``theta -= lr_p Q alpha_b``, ``phi_s -= lr_p R alpha_b``, ``phi_t -= lr_p dL_t/dphi_t``
   (in noisy-label mode ``phi_t = phi_s``: the shared classifier receives both);
5. equation (5): ``alpha_b <- clip(alpha_b + lr_alpha * lr_p * c_s * a_j)``.

Three options beyond the paper; with ``target_grad_decay = 0``, ``alpha_step = "raw"`` and
``target_on_features = 0`` the step is exactly the paper's (the library's default averages the
target direction, ``target_grad_decay = 0.97``: see ``docs/calibration.md`` for the measurements):

* ``target_grad_decay = beta_g > 0``: the direction ``g`` of step 2 is the running average of
  ``dL_t/dtheta`` over steps (bias-corrected), not one target batch's gradient. One small target
  batch gives a noisy direction whose sign, for an ambiguous source sample, depends on which
  target images happen to be drawn; averaged, alpha moves by the sample's alignment with the
  target task rather than with a batch. The parameters still step with this step's gradients.
* ``alpha_step = "normalized"``: step 5 moves alpha by ``lr_alpha * a_j / RMS(a)`` with the RMS a
  running one over steps (bias-corrected), so ``lr_alpha`` is in alpha units per visit and means
  the same for any learning rate, loss scale, batch size or network (raw steps differ by orders
  of magnitude between LeNet at lr_p 1e-2 and CIFAR-10 Quick at 1e-4).
* ``target_on_features = w > 0``: step 4 also moves theta by ``-lr_p w dL_t/dtheta``, so the
  target shapes the features directly, not only through alpha (a transfer-learning variant; in
  Algorithm 1 theta never sees the target).

No host-device synchronisation happens inside a step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from soseleto.config import SoseletoConfig
from soseleto.core.ghost import supports, weighted_backward_and_alignment
from soseleto.core.evaluate import accuracy, predict
from soseleto.core.forward_mode import losses_and_alignment
from soseleto.core.loop import Labeled, RunResult, train

ALIGNMENTS = ("auto", "forward", "ghost")


class Soseleto:
    """Theta (``features``), phi_s, phi_t and one alpha per source sample, with their SGD optimiser.

    Parameters
    ----------
    features
        theta: maps a batch to ``(B, D)`` features.
    source_head
        phi_s: ``(B, D) -> (B, K_s)``.
    target_head
        phi_t, or ``None`` for the noisy-label mode in which phi_t is phi_s (shared classifier).
    n_source
        Number of source samples (length of alpha).
    cfg
        :class:`~soseleto.config.SoseletoConfig`.
    n_target
        Target set size; only used by ``loss_scale='dataset'``.
    device
        Where parameters and alpha live.
    alignment
        How ``a_j`` is computed: ``"forward"`` (any network), ``"ghost"`` (networks without
        cross-sample layers) or ``"auto"`` (ghost where :func:`soseleto.core.ghost.supports` holds).
        Both are exact; ghost is faster.
    """

    def __init__(self, features: nn.Module, source_head: nn.Module, target_head: nn.Module | None, *,
                 n_source: int, cfg: SoseletoConfig, n_target: int | None = None,
                 device: torch.device | str = "cpu", alignment: str = "auto") -> None:
        if (target_head is None) != cfg.shared_classifier:
            raise ValueError("shared_classifier=True needs target_head=None (phi_t = phi_s); "
                             "shared_classifier=False needs a separate target_head")
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment={alignment!r} is invalid; choose one of {ALIGNMENTS}")
        if cfg.loss_scale == "dataset" and n_target is None:
            raise ValueError("loss_scale='dataset' needs n_target")
        self.cfg, self.device = cfg, torch.device(device)
        self.features = features.to(self.device)
        self.source_head = source_head.to(self.device)
        self.shared = target_head is None
        self.target_head = self.source_head if self.shared else target_head.to(self.device)
        self.n_source, self.n_target = int(n_source), n_target
        self.alpha = torch.full((self.n_source,), float(cfg.alpha_init), device=self.device)
        params = [*self.features.parameters(), *self.source_head.parameters()]
        if not self.shared:
            params += list(self.target_head.parameters())
        self.optimizer = torch.optim.SGD(params, lr=cfg.lr_p, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self._feature_names = [n for n, _ in self.features.named_parameters()]
        self._head_names = [n for n, _ in self.target_head.named_parameters()]
        per_sample = supports(self.features, self.source_head)
        if alignment == "ghost" and not per_sample:
            raise ValueError("alignment='ghost' needs a network without cross-sample layers (e.g. BatchNorm)")
        self.alignment = ("ghost" if per_sample else "forward") if alignment == "auto" else alignment
        self._steps = 0  # steps taken: the bias correction of both running averages
        self._g_avg: list[torch.Tensor] | None = None  # running target gradient (target_grad_decay)
        self._a2 = torch.zeros((), device=self.device)  # running mean of a_j^2 (alpha_step normalized)

    def step(self, xs: torch.Tensor, ys: torch.Tensor, idx: torch.Tensor, xt: torch.Tensor,
             yt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One iteration on source batch ``(xs, ys)`` with alpha indices ``idx`` ``(B_s,)`` and target
        batch ``(xt, yt)``; returns the detached weighted source loss and the target loss."""
        cfg = self.cfg
        c_s, c_t = self._scales(len(ys), len(yt))
        self.features.train(), self.source_head.train(), self.target_head.train()
        self._steps += 1

        # 1. target gradient at theta_m (and phi_t's own gradient)
        loss_t = F.cross_entropy(self.target_head(self.features(xt)), yt, reduction="sum") * c_t
        theta, phi_t = list(self.features.parameters()), list(self.target_head.parameters())
        grads = torch.autograd.grad(loss_t, theta + phi_t)
        g_step, g_phi_t = grads[: len(theta)], grads[len(theta) :]
        del grads
        g_theta, g_head = self._direction(g_step, g_phi_t if self.shared and cfg.alpha_grad == "all" else None)
        if not cfg.target_on_features:
            del g_step  # only the direction is needed from here on

        # 2.-3. losses l_j, alignments a_j and the gradient of c_s * sum_j alpha_j l_j (alpha before its update)
        alpha_b = self.alpha[idx]
        self.optimizer.zero_grad(set_to_none=True)
        if self.alignment == "ghost":
            losses, align = weighted_backward_and_alignment(
                self.features, self.source_head, xs, ys, alpha_b * c_s, g_theta, g_head)
        else:
            losses, align = losses_and_alignment(self.features, self.source_head, xs, ys, g_theta, g_head)
            g_theta.clear()  # g is not needed any more: free it before backward makes gradients
            ((alpha_b * losses).sum() * c_s).backward()
        loss_s = (alpha_b * losses.detach()).sum() * c_s

        # 4. SGD step of theta, phi_s and phi_t (and, with target_on_features = w, theta -= lr_p w dL_t/dtheta)
        for p, g in zip(phi_t, g_phi_t):
            p.grad = g if p.grad is None else p.grad.add_(g)
        if cfg.target_on_features:
            for p, g in zip(theta, g_step):
                p.grad = g * cfg.target_on_features if p.grad is None else p.grad.add_(g, alpha=cfg.target_on_features)
        self.optimizer.step()

        # 5. equation (5)
        self.alpha[idx] = updated_alpha(alpha_b, align, step=self._alpha_step(align, c_s), lo=cfg.alpha_min,
                                        hi=cfg.alpha_max)
        return loss_s.detach(), loss_t.detach()

    def _direction(self, g_theta, g_phi) -> tuple[dict, dict | None]:
        """The tangents of step 2 (by parameter name): this step's target gradient, or its running
        average (``target_grad_decay``), for the features and, with ``alpha_grad='all'``, the head."""
        grads = list(g_theta) + list(g_phi or [])
        beta = self.cfg.target_grad_decay
        if beta:
            if self._g_avg is None:
                self._g_avg = [torch.zeros_like(g) for g in grads]
            correction = 1.0 / (1.0 - beta**self._steps)
            for avg, g in zip(self._g_avg, grads):
                avg.mul_(beta).add_(g, alpha=1.0 - beta)
            grads = [avg * correction for avg in self._g_avg]
        n = len(self._feature_names)
        head = dict(zip(self._head_names, grads[n:])) if g_phi is not None else None
        return dict(zip(self._feature_names, grads[:n])), head

    def _alpha_step(self, align: torch.Tensor, c_s: float) -> float | torch.Tensor:
        """The factor of ``a_j`` in equation (5): ``lr_alpha * lr_p * c_s`` (raw, the paper) or
        ``lr_alpha / RMS(a)`` with the running RMS over steps (normalized), a device scalar."""
        cfg = self.cfg
        if cfg.alpha_step == "raw":
            return cfg.lr_alpha * cfg.lr_p * c_s
        beta = cfg.alpha_rms_decay
        self._a2.mul_(beta).add_((align * align).mean(), alpha=1.0 - beta)
        rms = (self._a2 / (1.0 - beta**self._steps)).sqrt()
        return cfg.lr_alpha / rms.clamp_min(torch.finfo(rms.dtype).tiny)

    def summary(self) -> dict[str, float]:
        return {"alpha_mean": float(self.alpha.mean())}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: parameters, optimiser (momentum buffers), alpha, the step
        count and the running averages of the options in use."""
        state = {"features": self.features.state_dict(), "source_head": self.source_head.state_dict(),
                 "target_head": None if self.shared else self.target_head.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "alpha": self.alpha.detach().cpu(), "steps": self._steps}
        if self.cfg.target_grad_decay:
            state["target_grad_avg"] = None if self._g_avg is None else [g.cpu() for g in self._g_avg]
        if self.cfg.alpha_step == "normalized":
            state["alignment_ms"] = self._a2.cpu()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["alpha"].shape != self.alpha.shape:
            raise ValueError(f"checkpoint has {state['alpha'].numel()} alphas, this run {self.alpha.numel()}")
        self.features.load_state_dict(state["features"])
        self.source_head.load_state_dict(state["source_head"])
        if not self.shared:
            self.target_head.load_state_dict(state["target_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.alpha.copy_(state["alpha"].to(self.device))
        self._steps = int(state["steps"])
        if self.cfg.target_grad_decay:
            avg = state["target_grad_avg"]
            self._g_avg = None if avg is None else [g.to(self.device) for g in avg]
        if self.cfg.alpha_step == "normalized":
            self._a2.copy_(state["alignment_ms"].to(self.device))

    def to_dtype(self, dtype: torch.dtype) -> "Soseleto":
        """Networks, alpha, optimiser state and running averages moved to floating ``dtype``, in place
        (e.g. float64 for a reference run); parameters keep their identity, so the optimiser holds them."""
        for m in {id(m): m for m in (self.features, self.source_head, self.target_head)}.values():
            m.to(dtype)
        self.alpha, self._a2 = self.alpha.to(dtype), self._a2.to(dtype)
        self._g_avg = None if self._g_avg is None else [g.to(dtype) for g in self._g_avg]
        optimizer_state_to(self.optimizer, dtype)
        return self

    def predict(self, x: torch.Tensor, *, head: str = "target") -> torch.Tensor:
        """Class predictions ``(N,)`` of the target (or source) network, in eval mode."""
        return predict(self.features, self.target_head if head == "target" else self.source_head, x)

    def accuracy(self, data: Labeled, *, head: str = "target") -> float:
        """Fraction of ``data`` classified correctly by the target (or source) network."""
        return accuracy(self.features, self.target_head if head == "target" else self.source_head, data.x, data.y)

    def _scales(self, b_s: int, b_t: int) -> tuple[float, float]:
        if self.cfg.loss_scale == "dataset":
            return 1.0 / self.n_source, 1.0 / self.n_target
        return 1.0 / b_s, 1.0 / b_t


def optimizer_state_to(optimizer: torch.optim.Optimizer, dtype: torch.dtype) -> None:
    """Move ``optimizer``'s floating state (momentum buffers) to ``dtype`` in place, to match
    parameters moved with ``Module.to(dtype)``."""
    for state in optimizer.state.values():
        state.update({k: v.to(dtype) for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()})


def updated_alpha(alpha_b: torch.Tensor, alignment: torch.Tensor, *, step: float, lo: float, hi: float) -> torch.Tensor:
    """Equation (5) with the clip range [lo, hi]: ``clip(alpha_b + step * alignment)``; ``step`` is
    ``lr_alpha * lr_p * c`` (``c`` the per-sample loss scale), so that ``step * alignment =
    lr_alpha * lr_p * Q^T dL_t/dtheta``."""
    return (alpha_b + step * alignment).clamp_(lo, hi)


def run_noisy(features: nn.Module, head: nn.Module, source: Labeled, target: Labeled, cfg: SoseletoConfig,
              options: Any = None, *, seed: int, device: torch.device, alpha: torch.Tensor | None = None,
              **common: Any) -> RunResult:
    """Algorithm 1 in noisy-label mode (one classifier) on the noisy ``source`` and the clean
    ``target``, alpha starting from ``alpha`` (``(n_source,)``) when given; the result's scores are
    alpha (``common``: see :func:`soseleto.core.loop.train`)."""
    trainer = Soseleto(features, head, None, n_source=len(source), n_target=len(target), cfg=cfg, device=device)
    if alpha is not None:
        if alpha.shape != trainer.alpha.shape:
            raise ValueError(f"alpha has shape {tuple(alpha.shape)}; the source has {len(source)} samples")
        with torch.no_grad():
            trainer.alpha.copy_(alpha)
    history = train(trainer, source, target, schedule=cfg.schedule, seed=seed, device=device, **common)
    return RunResult(history, trainer.alpha.cpu().numpy())


def run_frozen(features: nn.Module, head: nn.Module, source: Labeled, target: Labeled, cfg: SoseletoConfig,
               options: Any = None, **common: Any) -> RunResult:
    """:func:`run_noisy` with ``lr_alpha = 0``: alpha stays at ``alpha_init``, which shows what the
    reweighting itself adds."""
    return run_noisy(features, head, source, target, dataclasses.replace(cfg, lr_alpha=0.0), options, **common)


def run_theta(features: nn.Module, head: nn.Module, source: Labeled, target: Labeled, cfg: SoseletoConfig,
              options: float = 0.2, **common: Any) -> RunResult:
    """:func:`run_noisy` with ``target_on_features = options``: the clean target's gradient also
    steps the features (not the paper), as the peers that train on the clean images do."""
    return run_noisy(features, head, source, target, dataclasses.replace(cfg, target_on_features=options), None,
                     **common)


def run_retrain(features: nn.Module, head: nn.Module, source: Labeled, target: Labeled, cfg: SoseletoConfig,
                options: Any = None, *, alpha: torch.Tensor, **common: Any) -> RunResult:
    """Fresh weights trained by Algorithm 1 with ``alpha`` (a finished run's, ``(n_source,)``)
    frozen (``lr_alpha = 0``): the source weighted as SOSELETO learned to weigh it, from the first
    step, so that the mislabeled samples are not learned before alpha has found them (not the paper;
    twice SOSELETO's compute). The result's scores are that alpha."""
    return run_noisy(features, head, source, target, dataclasses.replace(cfg, lr_alpha=0.0), None, alpha=alpha,
                     **common)
