"""Typed configuration: one frozen dataclass per config section, the single source of defaults
and ranges.

Each field is declared with :func:`opt`: its default (what the library and ``soseleto fit`` use),
a one-line meaning and its rules (``ge``, ``gt``, ``le``, ``lt``, ``choices``, ``min_items``...).
The same rules check a dataclass when it is built and generate the workflow's JSON schema
(:func:`json_schema`, written to ``workflow/schemas/config.schema.yaml``), so a range is stated
once. :func:`from_mapping` builds a section from YAML: an unknown key is an error naming its dotted
path, and with ``complete=True`` (the workflow) so is a missing one -- a job never falls back to a
default that its config file did not state.

This module imports neither torch nor numpy: Snakemake parses the workflow with it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar

T = TypeVar("T")

DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?|mps)$"
_JSON_TYPES = {float: "number", int: "integer", bool: "boolean", str: "string"}
FIT_MODES = ("noisy", "transfer")  # soseleto fit --mode
MODELS = ("auto", "mlp", "lenet", "cifar_quick", "bn_convnet", "resnet18")


def opt(default: Any, doc: str, **rules: Any) -> Any:
    """A config field with its default, its meaning and its rules (see the module docstring)."""
    return field(default=default, metadata={"doc": doc, **rules})


class Section:
    """Base of every config section: checks each field against its rules, then :meth:`check`."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(f.name, getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, value)
            _check_rules(f.name, value, f.metadata)
        self.check()

    def check(self) -> None:
        """Rules that involve several fields (overridden by sections that have them)."""


# -- internals -----------------------------------------------------------------------------------------------
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unpack(hint: Any) -> tuple[Any, bool, Any]:
    """``(base type, optional, item type of a tuple or None)`` of a field annotation."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is tuple:
        return tuple, optional, typing.get_args(hint)[0]
    return hint, optional, None


def _section_type(hint: Any) -> type | None:
    base, _, _ = _unpack(hint)
    return base if isinstance(base, type) and issubclass(base, Section) else None


def _coerce(name: str, value: Any, hint: Any) -> Any:
    base, optional, item = _unpack(hint)
    if value is None:
        _require(name, optional, value, "a value (not null)")
        return None
    if _section_type(hint) is not None:
        _require(name, isinstance(value, base), value, f"a {base.__name__}")
        return value
    if item is not None:
        _require(name, isinstance(value, (list, tuple)), value, "a list")
        return tuple(_scalar(f"{name}[{i}]", v, item) for i, v in enumerate(value))
    return _scalar(name, value, base)


def _scalar(name: str, value: Any, kind: type) -> Any:
    if kind is float:
        _require(name, isinstance(value, (int, float)) and not isinstance(value, bool), value, "a number")
        return float(value)
    _require(name, isinstance(value, kind) and (kind is bool or not isinstance(value, bool)), value,
             f"{'an' if kind is int else 'a'} {_JSON_TYPES[kind] if kind in _JSON_TYPES else kind.__name__}")
    return value


def _check_rules(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    if value is None or dataclasses.is_dataclass(value):
        return
    items = value if isinstance(value, tuple) else (value,)
    if isinstance(value, tuple):
        _require(name, len(value) >= meta.get("min_items", 0), list(value),
                 f"a list of at least {meta.get('min_items', 0)} item(s)")
        if meta.get("unique"):
            _require(name, len(set(value)) == len(value), list(value), "a list without repeats")
    for v in items:
        shown = list(value) if isinstance(value, tuple) else value
        if "choices" in meta:
            _require(name, v in meta["choices"], shown, f"one of {list(meta['choices'])}")
        for rule, text, ok in (("ge", ">=", lambda a, b: a >= b), ("gt", ">", lambda a, b: a > b),
                               ("le", "<=", lambda a, b: a <= b), ("lt", "<", lambda a, b: a < b)):
            if rule in meta:
                _require(name, ok(v, meta[rule]), shown, f"{text} {meta[rule]}" + (" for every item" if value is not v else ""))
        if "min_length" in meta:
            _require(name, len(v) >= meta["min_length"], shown, f"at least {meta['min_length']} character(s)")
        if "pattern" in meta:
            import re

            _require(name, re.match(meta["pattern"], v) is not None, shown, f"matching {meta['pattern']}")


def _require(key: str, ok: bool, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"{key}={value!r} is invalid: expected {expected}")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# -- training ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SGDConfig(Section):
    """The optimiser of the network parameters (theta, phi); alpha never has momentum."""

    lr_p: float = opt(1e-2, "lambda_p: SGD step of the network parameters", gt=0)
    momentum: float = opt(0.9, "SGD momentum of the network parameters", ge=0, lt=1)
    weight_decay: float = opt(5e-4, "L2 penalty of the network parameters, applied by the optimiser", ge=0)


@dataclass(frozen=True)
class PlainConfig(SGDConfig):
    """Plain minibatch SGD on one labelled set (baselines, target-only, pre-training, fine-tuning)."""

    batch: int = opt(128, "samples per step", ge=1)
    epochs: int = opt(20, "passes over the set", ge=1)
    log_every: int = opt(1, "epochs between progress lines", ge=1)
    checkpoint_every: int = opt(1, "epochs between checkpoints of a job's resumable state (and at the end)", ge=1)

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.epochs, self.batch, None, self.log_every, self.checkpoint_every)


@dataclass(frozen=True)
class PairedConfig(SGDConfig):
    """Training on a source set with cycling target batches (the peer methods; SOSELETO adds alpha)."""

    source_batch: int = opt(128, "source samples per step; one epoch is one pass over the source", ge=1)
    target_batch: int = opt(32, "target samples per step (the target set cycles)", ge=1)
    epochs: int = opt(20, "passes over the source set", ge=1)
    log_every: int = opt(1, "epochs between progress lines", ge=1)
    checkpoint_every: int = opt(1, "epochs between checkpoints of a job's resumable state (and at the end)", ge=1)

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.epochs, self.source_batch, self.target_batch, self.log_every, self.checkpoint_every)


@dataclass(frozen=True)
class SoseletoConfig(PairedConfig):
    """Algorithm 1: the paired schedule plus the source weights alpha."""

    lr_alpha: float = opt(100.0, "lambda_alpha: alpha moves by lr_alpha * lr_p * c * (q_j . g)", ge=0)
    alpha_init: float = opt(1.0, "initial alpha of every source sample", ge=0)
    alpha_min: float = opt(0.0, "lower end of alpha's clip range", ge=0)
    alpha_max: float = opt(1.1, "upper end of alpha's clip range (the paper: [0, 1.1])", gt=0)
    loss_scale: str = opt("batch_mean", "per-sample loss weight c: 1/|batch| or 1/n as in the paper's L_s, L_t",
                          choices=("batch_mean", "dataset"))
    alpha_grad: str = opt("features", "alpha's gradient: Q^T dLt/dtheta (the paper) or also the shared classifier",
                          choices=("features", "all"))
    shared_classifier: bool = opt(True, "noisy-label mode (phi_t = phi_s); false: transfer mode, separate heads")

    def check(self) -> None:
        _require("alpha_max", self.alpha_max > self.alpha_min, self.alpha_max, f"> alpha_min={self.alpha_min}")
        _require("alpha_init", self.alpha_min <= self.alpha_init <= self.alpha_max, self.alpha_init,
                 f"in [alpha_min, alpha_max] = [{self.alpha_min}, {self.alpha_max}]")


@dataclass(frozen=True)
class Schedule:
    """What the epoch loop needs from a training config (batches in samples)."""

    epochs: int
    source_batch: int
    target_batch: int | None
    log_every: int = 1
    checkpoint_every: int = 1


@dataclass(frozen=True)
class PeerConfig(Section):
    """Options of the peer methods; their optimiser and batches come from a :class:`PairedConfig`."""

    target_weight: float = opt(0.5, "joint: weight w of the target loss in (1 - w) L_s + w L_t", ge=0, le=1)
    glc_noisy_epochs: int | None = opt(None, "glc: epochs of stage (i) on the noisy source; null = the trainer's", ge=1)
    noise_init_diag: float = opt(0.9, "noise_layer: initial diagonal of Q", gt=0, lt=1)
    noise_trace: float = opt(0.1, "noise_layer: weight of the tr(Q) penalty", ge=0)
    noise_lr_scale: float = opt(10.0, "noise_layer: step of Q's logits as a multiple of lr_p", gt=0)


# -- experiments ---------------------------------------------------------------------------------------
SEEDS = {"min_items": 1, "unique": True, "ge": 0}


@dataclass(frozen=True)
class DataConfig(Section):
    """Where the image data sets come from."""

    source: str = opt("torchvision", "real data sets, or generated stand-ins of the same shapes (no download)",
                      choices=("torchvision", "generated"))
    dir: str = opt("data", "where torchvision data sets live (and are downloaded to)", min_length=1)
    download: bool = opt(False, "download missing data sets into dir (needs internet)")
    generated_train: int = opt(2000, "size of a generated stand-in's train split", ge=10)
    generated_test: int = opt(500, "size of a generated stand-in's test split", ge=10)


@dataclass(frozen=True)
class SyntheticConfig(Section):
    """Section 4.1 / Figure 1: points in R^2 labelled by the side of the y-axis."""

    seeds: tuple[int, ...] = opt((0, 1, 2, 3, 4), "one job per seed", **SEEDS)
    n_source: int = opt(500, "source points", ge=2)
    n_noisy: int = opt(100, "source points whose label is flipped", ge=0)
    n_target: int = opt(50, "clean target points", ge=1)
    hidden: int = opt(32, "width of the MLP features", ge=1)
    depth: int = opt(2, "ReLU layers of the MLP features", ge=1)
    threshold: float = opt(0.1, "alpha threshold of the summary and of Figure 1 (b), (c)", ge=0)
    trainer: SoseletoConfig = opt(SoseletoConfig(lr_p=0.3, lr_alpha=200.0, momentum=0.0, weight_decay=0.0,
                                                 alpha_init=0.5, source_batch=500, target_batch=50, epochs=100,
                                                 log_every=10), "SOSELETO")

    def check(self) -> None:
        _require("n_noisy", self.n_noisy <= self.n_source, self.n_noisy, f"in [0, n_source={self.n_source}]")


# torchvision sets the data layer reads (soseleto.data.sets.DATASETS); any other name is a file path
DATASET_NAMES = ("cifar10", "cifar100", "svhn", "mnist", "fashionmnist", "kmnist")
DATASET_DOC = ("torchvision set (cifar10, cifar100, svhn, mnist, fashionmnist, kmnist) or the path of an .npz "
               "file (x: N,H,W[,C] uint8; y: N int) or of an ImageFolder")


@dataclass(frozen=True)
class SideConfig(Section):
    """One side of a transfer task: a data set and the classes taken from it (renumbered 0..K-1)."""

    dataset: str = opt("svhn", DATASET_DOC, min_length=1)
    classes: tuple[int, ...] = opt((0, 1, 2, 3, 4), "labels kept, in this order", min_items=2, unique=True, ge=0)


@dataclass(frozen=True)
class AppendixCConfig(Section):
    """Appendix C / Figures 3-5: SOSELETO from ``source_classes`` of the source set to the target classes."""

    seeds: tuple[int, ...] = opt((0,), "runs; Figure 3 averages over them, Figures 4-5 show the first", **SEEDS)
    source_classes: tuple[int, ...] = opt(tuple(range(10)), "source classes", min_items=2, unique=True, ge=0)
    n_target: int = opt(25, "target images (a multiple of the target classes)", ge=1)
    threshold: float = opt(0.8, "'good' instances: alpha > threshold (Figure 3, Figure 4 left)", ge=0)
    bad_quantile: float = opt(0.1, "'bad' instances of Figure 4: the lowest fraction of class 0 by alpha", gt=0, le=1)
    grid: int = opt(64, "images per panel of Figure 4", ge=1)
    lowest: int = opt(16, "images of Figure 5 (the lowest-alpha instances labelled 0)", ge=1)


TRANSFER_METHODS = ("target_only", "fine_tuning", "soseleto", "two_stage")


@dataclass(frozen=True)
class TransferConfig(Section):
    """Section 4.3 / Table 2: ``source`` classes -> ``target`` classes (SVHN 0-4 -> MNIST 5-9)."""

    seeds: tuple[int, ...] = opt((0, 1, 2, 3, 4), "one job per (n_target, method, seed)", **SEEDS)
    n_target: tuple[int, ...] = opt((20, 25), "target set sizes (multiples of the target classes)",
                                    min_items=1, unique=True, ge=1)
    methods: tuple[str, ...] = opt(TRANSFER_METHODS, "rows of Table 2 to run", min_items=1, unique=True,
                                   choices=TRANSFER_METHODS)
    source: SideConfig = opt(SideConfig("svhn", (0, 1, 2, 3, 4)), "the source set and its classes")
    target: SideConfig = opt(SideConfig("mnist", (5, 6, 7, 8, 9)), "the target set and its classes")
    image_size: int = opt(28, "every image is made gray (if the target is) and this size", ge=8)
    model: str = opt("auto", "feature network; auto: by image shape (LeNet for gray images)", choices=MODELS)
    soseleto: SoseletoConfig = opt(SoseletoConfig(shared_classifier=False), "SOSELETO, transfer mode")
    target_only: PlainConfig = opt(PlainConfig(), "plain SGD on the target images")
    pretrain: PlainConfig = opt(PlainConfig(), "fine-tuning, first half: plain SGD on the source")
    finetune: PlainConfig = opt(PlainConfig(), "fine-tuning, second half: every layer on the target images")
    two_stage: SoseletoConfig = opt(SoseletoConfig(), "two-stage SOSELETO, stage 2 (noisy-label mode)")
    two_stage_init: str = opt("stage1", "stage 2 starts from the stage-1 network or from fresh weights",
                              choices=("stage1", "scratch"))
    appendix_c: AppendixCConfig = opt(AppendixCConfig(), "Appendix C")

    def check(self) -> None:
        k = len(self.target.classes)
        for key, n in [("n_target", n) for n in self.n_target] + [("appendix_c.n_target", self.appendix_c.n_target)]:
            _require(key, n % k == 0, n, f"a positive multiple of the {k} target classes (class-balanced target set)")
        _require("soseleto.shared_classifier", not self.soseleto.shared_classifier, True,
                 "false (transfer mode: source and target label spaces differ)")
        _require("two_stage.shared_classifier", self.two_stage.shared_classifier, False,
                 "true (stage 2 is noisy-label mode on pseudo-labelled target data)")
        if "two_stage" in self.methods:
            _require("target.dataset", self.target.dataset.lower() in DATASET_NAMES, self.target.dataset,
                     "a torchvision set when two_stage is run (its unlabelled pool is the target classes' training "
                     "images besides the target set; a file's other images are already the test set)")


PAPER_METHODS = ("noisy_baseline", "soseleto", "finetune")  # the rows of the paper's Table 1 we run
PEER_METHODS = ("joint", "l2rw", "glc", "noise_layer")  # beyond the paper: soseleto.methods
NOISY_METHODS = PAPER_METHODS + PEER_METHODS


@dataclass(frozen=True)
class NoisySplitConfig(Section):
    """The data of every Table 1 run: the set, its clean target / noisy source / test split."""

    dataset: str = opt("cifar10", DATASET_DOC, min_length=1)
    n_target: int = opt(5000, "clean class-balanced target (validation included); the other training images "
                              "are the noisy source", ge=1)
    validation_per_class: int = opt(0, "clean target images per class held out of training to choose an epoch "
                                       "(0: none, as in the paper)", ge=0)
    test_per_class: int | None = opt(None, "null: the set's own test split; N: hold out N images per class of "
                                           "the set as its test split (sets without one)", ge=1)
    matrix_seed: int = opt(0, "draws the confusion matrices' off-diagonals", ge=0)
    split_seed: int = opt(0, "draws the test, clean target and validation images and the noisy labels", ge=0)

    def check(self) -> None:
        if self.dataset.lower() not in DATASET_NAMES:
            _require("test_per_class", self.test_per_class is not None, None,
                     f"a number of images per class: the file {self.dataset!r} has no test split of its own")


@dataclass(frozen=True)
class NoisyConfig(Section):
    """Section 4.2 / Table 1 / Figure 2: a data set with confusion-matrix label noise (CIFAR-10)."""

    seeds: tuple[int, ...] = opt((0, 1, 2), "one run per (noise level, method, seed)", **SEEDS)
    noise_levels: tuple[float, ...] = opt((0.3, 0.4, 0.5), "overall noise levels p", min_items=1, unique=True,
                                          ge=0, lt=1)
    methods: tuple[str, ...] = opt(PAPER_METHODS, "methods to run", min_items=1, unique=True, choices=NOISY_METHODS)
    split: NoisySplitConfig = opt(NoisySplitConfig(), "the data set and its split")
    model: str = opt("auto", "feature network; auto: by image shape (CIFAR-10 Quick for colour images)", choices=MODELS)
    trainer: SoseletoConfig = opt(SoseletoConfig(), "SOSELETO (noisy-label mode)")
    baseline: PlainConfig = opt(PlainConfig(), "plain SGD on the noisy source")
    finetune: PlainConfig = opt(PlainConfig(), "the noisy baseline trained further on the clean target")
    peer_trainer: PairedConfig = opt(PairedConfig(), "optimiser, batches and epochs of the peer methods")
    peers: PeerConfig = opt(PeerConfig(), "options of the peer methods")
    cleanlab_folds: int = opt(5, "folds of cleanlab's out-of-fold probabilities", ge=2)
    threads: int = opt(4, "CPU threads of each training job (Snakemake threads)", ge=1)

    def check(self) -> None:
        _require("trainer.shared_classifier", self.trainer.shared_classifier, False,
                 "true (noisy-label mode: source and target share the classifier)")


@dataclass(frozen=True)
class BenchConfig(Section):
    """``soseleto bench``: the cost of a SOSELETO step against a plain step."""

    models: tuple[str, ...] = opt(("lenet", "cifar_quick", "resnet18"), "models timed", min_items=1, unique=True,
                                  choices=("lenet", "cifar_quick", "resnet18"))
    reps: int = opt(20, "timed repetitions of each step type (median reported)", ge=1)
    quick: bool = opt(False, "3 repetitions and 1 warm-up (CI)")
    threads: int | None = opt(None, "torch CPU threads; null = torch's default", ge=1)


@dataclass(frozen=True)
class WorkflowConfig(Section):
    """The whole workflow configuration (``config/config.yaml``)."""

    device: str = opt("auto", "torch device of every training job", pattern=DEVICE_PATTERN)
    data: DataConfig = opt(DataConfig(), "image data sets")
    synthetic: SyntheticConfig = opt(SyntheticConfig(), "section 4.1 / Figure 1")
    transfer: TransferConfig = opt(TransferConfig(), "section 4.3 / Table 2 / Appendix C")
    noisy: NoisyConfig = opt(NoisyConfig(), "section 4.2 / Table 1 / Figure 2, the peers, label errors")
    bench: BenchConfig = opt(BenchConfig(), "step cost benchmark")


# -- building sections from mappings ---------------------------------------------------------------------
def from_mapping(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "", complete: bool = False) -> T:
    """Build section ``cls`` from a mapping, recursing into nested sections.

    Unknown keys raise ``ValueError`` naming the dotted key path; with ``complete`` so do missing
    ones. Values are checked against the field rules and the section's own :meth:`Section.check`.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{where.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(where + k for k in unknown)}; valid keys: {names}")
    if complete:
        missing = [k for k in names if k not in data]
        if missing:
            raise ValueError(f"missing config key(s) {', '.join(where + k for k in missing)} (every key must be given)")
    hints = _hints(cls)
    kwargs = {}
    for name, value in data.items():
        sub = _section_type(hints[name])
        if sub is not None and isinstance(value, Mapping):
            value = from_mapping(sub, value, where=f"{where}{name}.", complete=complete)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise ValueError(f"{where}{err}") from None


def workflow_config(mapping: Mapping[str, Any]) -> WorkflowConfig:
    """The typed, complete workflow configuration (what ``snakemake`` loads)."""
    return from_mapping(WorkflowConfig, mapping, complete=True)


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-dict view of a section, tuples as lists (YAML/JSON ready)."""
    return _plain(dataclasses.asdict(obj))


def section(params: Mapping[str, Any], path: str) -> Any:
    """The typed value at dotted ``path`` (e.g. ``"noisy.trainer"`` or ``"noisy.model"``) of a job's
    params, which hold ``{path: value}`` (see :func:`job_params`): a section is rebuilt complete, so
    a missing key is an error; a single field is checked against its rules."""
    if path not in params:
        raise ValueError(f"job params lack the config entry {path!r}")
    *parents, last = path.split(".")
    cls: Any = WorkflowConfig
    for part in parents:
        cls = _section_type(_hints(cls).get(part))
        if cls is None:
            raise ValueError(f"{path!r} is not a config entry")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if last not in fields:
        raise ValueError(f"{path!r} is not a config entry")
    hint, value = _hints(cls)[last], params[path]
    sub = _section_type(hint)
    if sub is not None:
        return from_mapping(sub, value, where=f"{path}.", complete=True)
    value = _coerce(path, value, hint)
    _check_rules(path, value, fields[last].metadata)
    return value


def job_params(cfg: WorkflowConfig, *paths: str) -> dict[str, Any]:
    """``{path: section as a plain dict}`` for each dotted ``path``: a rule's ``params``, so that a
    job reruns when (and only when) a section it reads changes."""
    out = {}
    for path in paths:
        obj: Any = cfg
        for part in path.split("."):
            obj = getattr(obj, part)
        out[path] = to_dict(obj) if dataclasses.is_dataclass(obj) else _plain(obj)
    return out


# -- the JSON schema ---------------------------------------------------------------------------------------
def json_schema() -> dict[str, Any]:
    """The JSON schema of the workflow config, generated from the sections' fields."""
    defs: dict[str, Any] = {}
    root = _object_schema(WorkflowConfig, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "soseleto workflow configuration (generated by soseleto.config.json_schema; "
                           "see config/README.md)",
            **root, "$defs": dict(sorted(defs.items()))}


def _object_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    hints = _hints(cls)
    props = {}
    for f in dataclasses.fields(cls):
        sub = _section_type(hints[f.name])
        if sub is not None:
            if sub.__name__ not in defs:
                defs[sub.__name__] = {}  # placeholder against recursion
                defs[sub.__name__] = _object_schema(sub, defs)
            props[f.name] = {"$ref": f"#/$defs/{sub.__name__}", "description": f.metadata["doc"]}
        else:
            props[f.name] = _value_schema(hints[f.name], f.metadata)
    return {"type": "object", "additionalProperties": False, "required": list(props), "properties": props}


_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum",
           "min_length": "minLength", "pattern": "pattern"}


def _value_schema(hint: Any, meta: Mapping[str, Any]) -> dict[str, Any]:
    base, optional, item = _unpack(hint)
    out: dict[str, Any] = {"description": meta["doc"]}
    scalar: dict[str, Any] = {}
    if meta.get("choices"):
        scalar["enum"] = list(meta["choices"])
    else:
        scalar["type"] = _JSON_TYPES[item or base]
    scalar.update({_BOUNDS[k]: v for k, v in meta.items() if k in _BOUNDS})
    if item is not None:
        out.update({"type": "array", "items": scalar, "minItems": meta.get("min_items", 0)})
        if meta.get("unique"):
            out["uniqueItems"] = True
    else:
        out.update(scalar)
    if optional:
        out["type"] = [out["type"], "null"]
    return out


def schema_yaml() -> str:
    """The text of ``workflow/schemas/config.schema.yaml``."""
    import yaml

    head = ("# GENERATED from the config dataclasses (soseleto/config.py): do not edit by hand.\n"
            "# Regenerate: python -m soseleto.config > workflow/schemas/config.schema.yaml\n")
    return head + yaml.safe_dump(json_schema(), sort_keys=False, width=110)


if __name__ == "__main__":
    print(schema_yaml(), end="")
