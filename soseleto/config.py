"""Typed configuration: YAML mapping -> (schema-validated) -> frozen dataclass.

Unknown keys and out-of-range values raise ``ValueError`` naming the key, so a typo never
silently falls back to a default. See ``config/README.md`` for the meaning and the chosen
defaults of every field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar

T = TypeVar("T")

LOSS_SCALES = ("batch_mean", "dataset")
ALPHA_GRADS = ("features", "all")


@dataclass(frozen=True)
class TrainerConfig:
    """Hyper-parameters of Algorithm 1 (units: learning rates per step, batch sizes in samples)."""

    lr_p: float = 1e-4  # lambda_p: SGD step for theta, phi_s and phi_t
    lr_alpha: float = 1.0  # lambda_alpha: alpha moves by lr_alpha * lr_p * Q^T dLt/dtheta
    momentum: float = 0.0  # SGD momentum on theta/phi (alpha never has momentum)
    weight_decay: float = 0.0  # L2 on theta/phi, applied by the optimiser
    alpha_init: float = 1.0
    alpha_min: float = 0.0
    alpha_max: float = 1.1  # the paper's "slightly expanded range [0, 1.1]"
    source_batch: int = 256
    target_batch: int = 32
    epochs: int = 10  # one epoch = one pass over the source set
    loss_scale: str = "batch_mean"  # 'batch_mean': 1/|batch| ; 'dataset': 1/n_s and 1/n_t as in eq. (L_s, L_t)
    alpha_grad: str = "features"  # 'features': Q^T dLt/dtheta (paper); 'all': also the shared classifier
    shared_classifier: bool = True  # noisy-label mode (phi_t = phi_s); False = transfer mode
    log_every: int = 1  # epochs between log lines
    checkpoint_every: int = 1  # epochs between checkpoints of a job's resumable state (and at the end)

    def __post_init__(self) -> None:
        for key in ("lr_p", "weight_decay"):
            _check(key, getattr(self, key) >= 0, getattr(self, key), ">= 0")
        _check("lr_p", self.lr_p > 0, self.lr_p, "> 0")
        _check("lr_alpha", self.lr_alpha >= 0, self.lr_alpha, ">= 0")
        _check("momentum", 0 <= self.momentum < 1, self.momentum, "in [0, 1)")
        _check("alpha_max", self.alpha_max > self.alpha_min, self.alpha_max, f"> alpha_min={self.alpha_min}")
        _check("alpha_min", self.alpha_min >= 0, self.alpha_min, ">= 0")
        _check(
            "alpha_init",
            self.alpha_min <= self.alpha_init <= self.alpha_max,
            self.alpha_init,
            f"in [alpha_min, alpha_max] = [{self.alpha_min}, {self.alpha_max}]",
        )
        for key in ("source_batch", "target_batch", "epochs", "log_every", "checkpoint_every"):
            _check(key, isinstance(getattr(self, key), int) and getattr(self, key) >= 1, getattr(self, key), "an integer >= 1")
        _check("loss_scale", self.loss_scale in LOSS_SCALES, self.loss_scale, f"one of {LOSS_SCALES}")
        _check("alpha_grad", self.alpha_grad in ALPHA_GRADS, self.alpha_grad, f"one of {ALPHA_GRADS}")


@dataclass(frozen=True)
class SyntheticConfig:
    """Section 4.1 / Figure 1: points in R^2 labelled by the side of the y-axis."""

    n_source: int = 500
    n_noisy: int = 100
    n_target: int = 50
    hidden: int = 32
    depth: int = 2
    threshold: float = 0.1
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        for key in ("n_source", "n_target", "hidden", "depth"):
            _check(key, getattr(self, key) >= 1, getattr(self, key), ">= 1")
        _check("n_noisy", 0 <= self.n_noisy <= self.n_source, self.n_noisy, f"in [0, n_source={self.n_source}]")
        _check("threshold", 0 <= self.threshold, self.threshold, ">= 0")


TRANSFER_METHODS = ("target_only", "fine_tuning", "soseleto", "two_stage")


@dataclass(frozen=True)
class AppendixCConfig:
    """Appendix C / Figures 3-5: SOSELETO from SVHN ``source_classes`` (all ten) to MNIST 5-9."""

    source_classes: tuple[int, ...] = tuple(range(10))
    n_target: int = 25
    threshold: float = 0.8  # "good" instances: alpha > threshold (Figure 3, Figure 4 left)
    bad_quantile: float = 0.1  # "bad" instances of Figure 4 (right): the lowest fraction of class 0 by alpha
    grid: int = 64  # images per panel of Figure 4
    lowest: int = 16  # images of Figure 5 (the lowest-alpha instances labelled 0)

    def __post_init__(self) -> None:
        _freeze_classes(self, "source_classes")
        _check("n_target", isinstance(self.n_target, int) and self.n_target >= 1, self.n_target, "an integer >= 1")
        _check("threshold", 0 <= self.threshold, self.threshold, ">= 0")
        _check("bad_quantile", 0 < self.bad_quantile <= 1, self.bad_quantile, "in (0, 1]")
        for key in ("grid", "lowest"):
            _check(key, isinstance(getattr(self, key), int) and getattr(self, key) >= 1, getattr(self, key), "an integer >= 1")


@dataclass(frozen=True)
class TransferConfig:
    """Section 4.3 / Table 2: SVHN ``source_classes`` -> MNIST ``target_classes`` with LeNet.

    Each method has its own trainer settings: ``soseleto`` (transfer mode, separate heads),
    ``target_only`` and ``finetune`` (plain SGD on the target set; ``source_batch`` is the batch
    of target images), ``pretrain`` (plain SGD on the source, the first half of fine-tuning) and
    ``two_stage`` (noisy-label mode on pseudo-labelled MNIST).
    """

    n_target: tuple[int, ...] = (20, 25)
    methods: tuple[str, ...] = TRANSFER_METHODS
    source_classes: tuple[int, ...] = (0, 1, 2, 3, 4)
    target_classes: tuple[int, ...] = (5, 6, 7, 8, 9)
    image_size: int = 28
    model: str = "lenet"
    soseleto: TrainerConfig = field(default_factory=lambda: TrainerConfig(shared_classifier=False))
    target_only: TrainerConfig = field(default_factory=TrainerConfig)
    pretrain: TrainerConfig = field(default_factory=TrainerConfig)
    finetune: TrainerConfig = field(default_factory=TrainerConfig)
    two_stage: TrainerConfig = field(default_factory=TrainerConfig)
    two_stage_init: str = "stage1"  # 'stage1': start from the stage-1 network; 'scratch': fresh weights
    appendix_c: AppendixCConfig = field(default_factory=AppendixCConfig)

    def __post_init__(self) -> None:
        for key in ("source_classes", "target_classes"):
            _freeze_classes(self, key)
        object.__setattr__(self, "n_target", tuple(self.n_target))
        object.__setattr__(self, "methods", tuple(self.methods))
        k = len(self.target_classes)
        for key, n in [("n_target", n) for n in self.n_target] + [("appendix_c.n_target", self.appendix_c.n_target)]:
            _check(key, isinstance(n, int) and n >= k and n % k == 0, n,
                   f"a positive multiple of the {k} target classes (class-balanced target set)")
        _check("n_target", len(self.n_target) > 0, [], "at least one target size")
        unknown = sorted(set(self.methods) - set(TRANSFER_METHODS))
        _check("methods", not unknown and len(self.methods) > 0, list(self.methods), f"a non-empty subset of {TRANSFER_METHODS}")
        _check("image_size", isinstance(self.image_size, int) and self.image_size >= 8, self.image_size, "an integer >= 8")
        _check("soseleto.shared_classifier", not self.soseleto.shared_classifier, True,
               "false (transfer mode: source and target label spaces differ)")
        _check("two_stage.shared_classifier", self.two_stage.shared_classifier, False,
               "true (stage 2 is noisy-label mode on pseudo-labelled target data)")
        _check("two_stage_init", self.two_stage_init in ("stage1", "scratch"), self.two_stage_init, "'stage1' or 'scratch'")


def _freeze_classes(obj: Any, key: str) -> None:
    classes = tuple(getattr(obj, key))
    ok = len(classes) >= 2 and len(set(classes)) == len(classes) and all(isinstance(c, int) and 0 <= c <= 9 for c in classes)
    _check(key, ok, list(classes), "at least two distinct digits in 0..9")
    object.__setattr__(obj, key, classes)


PAPER_METHODS = ("noisy_baseline", "soseleto", "finetune")  # the rows of the paper's Table 1 we run
PEER_METHODS = ("joint", "l2rw", "glc", "noise_layer")  # beyond the paper: soseleto.peers
NOISY_METHODS = PAPER_METHODS + PEER_METHODS


@dataclass(frozen=True)
class PeerConfig:
    """Options of the peer methods (:mod:`soseleto.peers`); everything else comes from :class:`TrainerConfig`."""

    target_weight: float = 0.5  # joint: w of the target loss (0.5 = both sets weigh the same per step)
    glc_noisy_epochs: int | None = None  # glc stage (i) epochs on the noisy source; None = trainer.epochs
    noise_init_diag: float = 0.9  # noise_layer: initial diagonal of Q (row-softmax of logits)
    noise_trace: float = 0.1  # noise_layer: weight of the tr(Q) penalty added to the batch loss
    noise_lr_scale: float = 10.0  # noise_layer: learning rate of Q's logits / trainer.lr_p

    def __post_init__(self) -> None:
        _check("target_weight", 0 <= self.target_weight <= 1, self.target_weight, "in [0, 1]")
        if self.glc_noisy_epochs is not None:
            ok = isinstance(self.glc_noisy_epochs, int) and self.glc_noisy_epochs >= 1
            _check("glc_noisy_epochs", ok, self.glc_noisy_epochs, "an integer >= 1 or null")
        _check("noise_init_diag", 0 < self.noise_init_diag < 1, self.noise_init_diag, "in (0, 1)")
        _check("noise_trace", self.noise_trace >= 0, self.noise_trace, ">= 0")
        _check("noise_lr_scale", self.noise_lr_scale > 0, self.noise_lr_scale, "> 0")


@dataclass(frozen=True)
class NoisyConfig:
    """Section 4.2 / Table 1 / Figure 2: CIFAR-10 with confusion-matrix label noise.

    ``trainer`` is SOSELETO's (noisy-label mode, so ``shared_classifier`` must be true),
    ``baseline`` the plain training on the noisy source, ``finetune`` the continuation of the
    baseline on the clean target (``source_batch`` is its batch size there). The peer methods
    train with ``peer_trainer`` (``None``: :attr:`peer_settings`) and ``peers``; cleanlab's
    out-of-fold probabilities come from ``cleanlab_folds`` networks with the ``baseline`` settings.
    """

    noise_levels: tuple[float, ...] = (0.3, 0.4, 0.5)
    matrix_seed: int = 0  # draws the off-diagonals of every confusion matrix
    split_seed: int = 0  # draws the clean target and the noisy labels
    n_target: int = 5000  # clean, class-balanced; the rest of the train set is the noisy source
    n_classes: int = 10
    methods: tuple[str, ...] = PAPER_METHODS
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    baseline: TrainerConfig = field(default_factory=TrainerConfig)
    finetune: TrainerConfig = field(default_factory=TrainerConfig)
    peer_trainer: TrainerConfig | None = None
    peers: PeerConfig = field(default_factory=PeerConfig)
    cleanlab_folds: int = 5
    threads: int = 4  # CPU threads of each training job (Snakemake ``threads``)

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise_levels", tuple(float(v) for v in self.noise_levels))
        object.__setattr__(self, "methods", tuple(self.methods))
        levels, methods = self.noise_levels, self.methods
        _check("noise_levels", len(levels) >= 1 and all(0 <= v < 1 for v in levels) and len(set(levels)) == len(levels),
               list(levels), "a non-empty list of distinct values in [0, 1)")
        _check("methods", len(methods) >= 1 and set(methods) <= set(NOISY_METHODS) and len(set(methods)) == len(methods),
               list(methods), f"a non-empty list of distinct names from {NOISY_METHODS}")
        for key in ("matrix_seed", "split_seed"):
            _check(key, isinstance(getattr(self, key), int) and getattr(self, key) >= 0, getattr(self, key), "an integer >= 0")
        _check("n_classes", self.n_classes >= 2, self.n_classes, ">= 2")
        _check("n_target", self.n_target >= self.n_classes and self.n_target % self.n_classes == 0, self.n_target,
               f"a positive multiple of n_classes={self.n_classes} (the target is class-balanced)")
        _check("trainer.shared_classifier", self.trainer.shared_classifier, self.trainer.shared_classifier,
               "true (noisy-label mode: source and target share the classifier)")
        _check("cleanlab_folds", isinstance(self.cleanlab_folds, int) and self.cleanlab_folds >= 2, self.cleanlab_folds,
               "an integer >= 2")
        _check("threads", isinstance(self.threads, int) and self.threads >= 1, self.threads, "an integer >= 1")

    @property
    def peer_settings(self) -> TrainerConfig:
        """The peers' trainer: ``peer_trainer``, or else the noisy baseline's optimiser, source
        batch and epochs with SOSELETO's target batch (the same target batches as SOSELETO)."""
        if self.peer_trainer is not None:
            return self.peer_trainer
        return dataclasses.replace(self.baseline, target_batch=self.trainer.target_batch)


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclass fields.

    Unknown keys raise ``ValueError`` naming the dotted key path.
    """
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(where + k for k in unknown)}; valid keys: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        ftype = fields[name].type
        ftype = ftype.removesuffix(" | None") if isinstance(ftype, str) else getattr(ftype, "__name__", "")
        sub = _DATACLASSES.get(ftype)
        if sub is not None and isinstance(value, Mapping):
            kwargs[name] = from_dict(sub, value, where=f"{where}{name}.")
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise ValueError(f"{where}{err}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-dict view of a config dataclass (for provenance and checkpoints)."""
    return dataclasses.asdict(obj)


def _check(key: str, ok: bool, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"{key}={value!r} is invalid: expected {expected}")


_DATACLASSES = {
    "TrainerConfig": TrainerConfig,
    "SyntheticConfig": SyntheticConfig,
    "TransferConfig": TransferConfig,
    "AppendixCConfig": AppendixCConfig,
    "NoisyConfig": NoisyConfig,
    "PeerConfig": PeerConfig,
}
