"""Peer methods for the noisy-label setting (large noisy source + small clean target), run in the
same harness as SOSELETO: same data, splits, seeds, networks, epoch loop and optimiser.

``method`` of :func:`train_peer`:

* ``joint`` -- the weighted sum of source and target losses (:mod:`soseleto.methods.joint`);
* ``l2rw`` -- Learning to Reweight, Ren et al. 2018 (:mod:`soseleto.methods.l2rw`);
* ``glc`` -- Gold Loss Correction, Hendrycks et al. 2018 (:mod:`soseleto.methods.correction`);
* ``noise_layer`` -- the noise-adaptation layer of Sukhbaatar et al. 2014 (same module).

One epoch is a pass over the source in ``source_batch`` batches with cycling target batches, as for
SOSELETO; the union-set methods ``glc`` and ``noise_layer`` pass over source + target instead, as
in Hendrycks et al.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from soseleto.config import PEER_METHODS, PairedConfig, PeerConfig
from soseleto.core.loop import Labeled, RunResult, train
from soseleto.methods.correction import train_glc, train_noise_layer
from soseleto.methods.joint import Joint
from soseleto.methods.l2rw import L2RW


def train_peer(method: str, features: nn.Module, head: nn.Module, source: Labeled, target: Labeled,
               cfg: PairedConfig, options: PeerConfig = PeerConfig(), *, seed: int,
               device: torch.device | str = "cpu", checkpoint: str | None = None, identity: Any = None,
               monitors: dict[str, Callable[[], float]] | None = None) -> RunResult:
    """Train ``features`` + ``head`` (logits ``(B, K)``) in place with a peer ``method``.

    ``source`` is the noisy set (noisy labels), ``target`` the small clean set in the same label
    space. ``checkpoint``/``identity``/``monitors``: see :func:`soseleto.core.loop.train` (``glc``
    keeps its stage (i) model in ``<checkpoint>.stage1``). ``scores`` of the result: L2RW's mean
    normalised weight per source sample; ``extra``: GLC's ``corruption``, the learned ``noise_matrix``.
    """
    if method not in PEER_METHODS:
        raise ValueError(f"method={method!r} is unknown; choose one of {PEER_METHODS}")
    device = torch.device(device)
    features.to(device), head.to(device)
    source, target = source.to(device), target.to(device)
    n_classes = _n_classes(head, source, target)
    common = {"schedule": cfg.schedule, "seed": seed, "device": device, "checkpoint": checkpoint,
              "identity": identity, "monitors": monitors, "name": method}
    if method == "joint":
        return RunResult(train(Joint(features, head, cfg, target_weight=options.target_weight), source, target, **common))
    if method == "l2rw":
        l2rw = L2RW(features, head, cfg, n_source=len(source), device=device)
        history = train(l2rw, source, target, **common)
        return RunResult(history, l2rw.scores(), {"draws": l2rw.draws.cpu().numpy()})
    run = train_glc if method == "glc" else train_noise_layer
    return run(features, head, source, target, cfg, options, n_classes=n_classes, seed=seed, device=device,
               checkpoint=checkpoint, identity=identity, monitors=monitors)


def _n_classes(head: nn.Module, source: Labeled, target: Labeled) -> int:
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError("head must end in an nn.Linear giving the class logits")
    k = linears[-1].out_features
    lo, hi = int(min(source.y.min(), target.y.min())), int(max(source.y.max(), target.y.max()))
    if lo < 0 or hi >= k:
        raise ValueError(f"labels span [{lo}, {hi}] but the head has {k} outputs")
    return k
