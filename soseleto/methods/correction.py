"""Loss correction by a label-corruption matrix: Gold Loss Correction (Hendrycks et al. 2018) and
the noise-adaptation layer (Sukhbaatar et al. 2014).

Both model the noisy label as ``p(y~ = j | x) = sum_i p(y = i | x) M[i, j]`` with a row-stochastic
``(K, K)`` matrix ``M`` (row ``i``: distribution of the noisy label when the true label is ``i``)
and train one network on the union of the trusted (clean target) and untrusted (noisy source) sets:
trusted samples with plain cross-entropy, untrusted ones with ``-log (softmax(f(x)) M)[y~]``.
At test time the network alone is used. They differ in where ``M`` comes from:

* GLC: (i) train a network on the noisy source; (ii) ``C[i] = mean of its softmax over the trusted
  samples of true class i``; (iii) train a *fresh* network (same initial weights) with ``M = C``
  fixed. Batches are drawn from the union, as in Hendrycks et al.'s code, so an epoch of stage
  (iii) is one pass over source + target.
* Noise layer: ``M = Q`` is learned jointly with the network. Sukhbaatar et al. keep ``Q``
  stochastic by projecting after each update and argue for minimising ``tr(Q)`` so that the noise
  goes into ``Q`` rather than into the network (in practice they regularise ``Q`` by weight
  decay); here ``Q = row-softmax(logits)`` is
  stochastic by construction, initialised with diagonal ``noise_init_diag``, and ``noise_trace *
  tr(Q)`` is added to every batch loss. Clean samples bypass the layer (``M = I`` for them).
"""

from __future__ import annotations

import copy
import logging
import math
import os
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from soseleto.config import PairedConfig, PeerConfig, PlainConfig, SGDConfig
from soseleto.core.evaluate import predict_proba
from soseleto.core.loop import Labeled, RunResult, train
from soseleto.methods.plain import PlainSGD, train_plain

log = logging.getLogger(__name__)


def corrected_log_probs(logits: torch.Tensor, log_matrix: torch.Tensor) -> torch.Tensor:
    """``log (softmax(logits) M)`` ``(B, K)`` from logits ``(B, K)`` and ``log M`` ``(K, K)``, in log space."""
    return torch.logsumexp(F.log_softmax(logits, dim=1).unsqueeze(2) + log_matrix.unsqueeze(0), dim=1)


def union_loss(logits: torch.Tensor, y: torch.Tensor, trusted: torch.Tensor, log_matrix: torch.Tensor) -> torch.Tensor:
    """Batch mean of cross-entropy (trusted samples) and corrected cross-entropy (the others).

    ``logits`` ``(B, K)``, labels ``y`` ``(B,)``, ``trusted`` ``(B,)`` bool, ``log_matrix`` ``(K, K)``.
    """
    plain = F.cross_entropy(logits, y, reduction="none")
    corrected = F.nll_loss(corrected_log_probs(logits, log_matrix), y, reduction="none")
    return torch.where(trusted, plain, corrected).mean()


def estimate_corruption(probs: torch.Tensor, y_true: torch.Tensor, n_classes: int) -> torch.Tensor:
    """GLC's ``C`` ``(K, K)``: row ``i`` is the mean of ``probs`` ``(N, K)`` (the noisy-label model's
    softmax) over the trusted samples whose true label ``y_true`` is ``i``.

    A class without trusted samples gets an identity row (no correction), with a warning.
    """
    c = torch.eye(n_classes, dtype=probs.dtype, device=probs.device)
    for i in range(n_classes):
        sel = y_true == i
        if bool(sel.any()):
            c[i] = probs[sel].mean(0)
        else:
            log.warning("GLC: no trusted sample of class %d; its row of C is the identity", i)
    return c


class NoiseLayer(nn.Module):
    """Row-stochastic ``Q`` ``(K, K)`` = row-softmax of free logits, ``Q[i, j] = p(y~ = j | y = i)``."""

    def __init__(self, n_classes: int, *, init_diag: float = 0.9) -> None:
        super().__init__()
        if not 0 < init_diag < 1:
            raise ValueError(f"init_diag={init_diag!r} is invalid: expected in (0, 1)")
        # softmax of (b on the diagonal, 0 elsewhere) has diagonal e^b / (e^b + K - 1) = init_diag
        b = math.log(init_diag * (n_classes - 1) / (1.0 - init_diag))
        self.logits = nn.Parameter(torch.eye(n_classes) * b)

    def log_matrix(self) -> torch.Tensor:
        return F.log_softmax(self.logits, dim=1)

    def matrix(self) -> torch.Tensor:
        return self.log_matrix().exp()

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of the noisy label ``(B, K)`` given the base network's logits ``(B, K)``."""
        return corrected_log_probs(logits, self.log_matrix())


class UnionLoss(PlainSGD):
    """One network trained on source + target with :func:`union_loss`, ``log_matrix()`` taken per
    step (``K x K``, negligible), plus ``penalty()`` when given. ``state`` holds the method's own
    tensors or modules (GLC's ``C``, the noise layer), saved and restored with the network."""

    def __init__(self, features: nn.Module, head: nn.Module, cfg: SGDConfig, *, trusted: torch.Tensor,
                 log_matrix: Callable[[], torch.Tensor], penalty: Callable[[], torch.Tensor] | None = None,
                 extra_group: dict | None = None, state: dict[str, Any]):
        super().__init__(features, head, cfg, device=trusted.device)
        self.trusted, self.log_matrix, self.penalty, self.own = trusted, log_matrix, penalty, state
        if extra_group is not None:
            self.optimizer.add_param_group(extra_group)

    def step(self, x, y, idx, _xt=None, _yt=None) -> tuple[torch.Tensor, None]:
        self.features.train(), self.head.train()
        loss = union_loss(self.head(self.features(x)), y, self.trusted[idx], self.log_matrix())
        total = loss if self.penalty is None else loss + self.penalty()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return loss.detach(), None

    def state_dict(self) -> dict[str, Any]:
        own = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v.state_dict() for k, v in self.own.items()}
        return {**super().state_dict(), **own}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for key, obj in self.own.items():
            obj.copy_(state[key]) if isinstance(obj, torch.Tensor) else obj.load_state_dict(state[key])


def train_glc(features: nn.Module, head: nn.Module, source: Labeled, target: Labeled, cfg: PairedConfig,
              options: PeerConfig, *, n_classes: int, seed: int, device: torch.device, checkpoint=None,
              identity: Any = None, monitors=None, name: str = "glc") -> RunResult:
    """GLC: (i) a copy of the network (same initial weights) trained on the noisy source, (ii) ``C``
    from its softmax on the trusted samples, (iii) the network trained on the union with ``C``."""
    corruption = torch.eye(n_classes, device=device)
    if checkpoint is None or not os.path.exists(checkpoint):  # a stage (iii) checkpoint holds C: (i) is done
        f1, h1 = copy.deepcopy(features), copy.deepcopy(head)
        stage1 = PlainConfig(lr_p=cfg.lr_p, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                             batch=cfg.source_batch, epochs=options.glc_noisy_epochs or cfg.epochs,
                             log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every)
        train_plain(f1, h1, source, stage1, seed=seed, device=device, name=f"{name} stage (i)",
                    checkpoint=None if checkpoint is None else f"{os.fspath(checkpoint)}.stage1",
                    identity={"run": identity, "stage": "glc_noisy"})
        corruption.copy_(estimate_corruption(predict_proba(f1, h1, target.x), target.y, n_classes))
        log.info("glc: estimated C, mean diagonal %.3f", float(corruption.diagonal().mean()))
    union, trusted = _union(source, target)
    method = union_method("glc", features, head, cfg, options, trusted=trusted, corruption=corruption)
    history = train(method, union, None, schedule=cfg.schedule, seed=seed, device=device, checkpoint=checkpoint,
                    identity=identity, monitors=monitors, name=name)
    return RunResult(history, None, {"corruption": corruption.cpu().numpy()})


def train_noise_layer(features: nn.Module, head: nn.Module, source: Labeled, target: Labeled, cfg: PairedConfig,
                      options: PeerConfig, *, n_classes: int, seed: int, device: torch.device, checkpoint=None,
                      identity: Any = None, monitors=None, name: str = "noise_layer") -> RunResult:
    """The noise-adaptation layer, learned jointly with the network on the union."""
    union, trusted = _union(source, target)
    method = union_method("noise_layer", features, head, cfg, options, trusted=trusted, n_classes=n_classes)
    history = train(method, union, None, schedule=cfg.schedule, seed=seed, device=device, checkpoint=checkpoint,
                    identity=identity, monitors=monitors, name=name)
    layer = method.own["noise_layer"]
    return RunResult(history, None, {"noise_matrix": layer.matrix().detach().cpu().numpy()})


def union_method(kind: str, features: nn.Module, head: nn.Module, cfg: SGDConfig, options: PeerConfig, *,
                 trusted: torch.Tensor, corruption: torch.Tensor | None = None, n_classes: int | None = None
                 ) -> UnionLoss:
    """The step of stage (iii) of GLC (``kind='glc'``: ``C`` fixed, the identity when not given) or of
    the noise-adaptation layer (a fresh ``Q`` of ``n_classes``), on the union whose ``trusted`` rows
    are the clean ones."""
    if kind == "glc":
        c = corruption if corruption is not None else torch.eye(n_classes, device=trusted.device)
        return UnionLoss(features, head, cfg, trusted=trusted, log_matrix=lambda: c.clamp_min(1e-12).log(),
                         state={"corruption": c})
    layer = NoiseLayer(n_classes, init_diag=options.noise_init_diag).to(trusted.device)
    # Q has its own step and no weight decay: decay on the logits would pull Q towards uniform
    group = {"params": list(layer.parameters()), "lr": cfg.lr_p * options.noise_lr_scale, "weight_decay": 0.0}
    return UnionLoss(features, head, cfg, trusted=trusted, log_matrix=layer.log_matrix,
                     penalty=lambda: options.noise_trace * layer.matrix().trace(), extra_group=group,
                     state={"noise_layer": layer})


def _union(source: Labeled, target: Labeled) -> tuple[Labeled, torch.Tensor]:
    """Source then target in one set, and the ``(N_s + N_t,)`` mask of the trusted (target) rows."""
    trusted = torch.cat([torch.zeros(len(source), dtype=torch.bool), torch.ones(len(target), dtype=torch.bool)])
    return Labeled(torch.cat([source.x, target.x]), torch.cat([source.y, target.y])), trusted.to(source.x.device)


def run_glc(features: nn.Module, head: nn.Module, source: Labeled, target: Labeled, cfg: PairedConfig,
            options: PeerConfig, *, device: torch.device, **common: Any) -> RunResult:
    """:func:`train_glc` with the class count of ``head`` (the registry's signature)."""
    n_classes = head_classes(head, source, target)
    return train_glc(features.to(device), head.to(device), source.to(device), target.to(device), cfg, options,
                     n_classes=n_classes, device=device, **common)


def run_noise_layer(features: nn.Module, head: nn.Module, source: Labeled, target: Labeled, cfg: PairedConfig,
                    options: PeerConfig, *, device: torch.device, **common: Any) -> RunResult:
    """:func:`train_noise_layer` with the class count of ``head`` (the registry's signature)."""
    n_classes = head_classes(head, source, target)
    return train_noise_layer(features.to(device), head.to(device), source.to(device), target.to(device), cfg,
                             options, n_classes=n_classes, device=device, **common)


def head_classes(head: nn.Module, source: Labeled, target: Labeled) -> int:
    """The classes of ``head`` (its last ``nn.Linear``), checked against the labels of both sets."""
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError("head must end in an nn.Linear giving the class logits")
    k = linears[-1].out_features
    lo, hi = int(min(source.y.min(), target.y.min())), int(max(source.y.max(), target.y.max()))
    if lo < 0 or hi >= k:
        raise ValueError(f"labels span [{lo}, {hi}] but the head has {k} outputs")
    return k
