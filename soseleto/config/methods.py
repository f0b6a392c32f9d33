"""The registry of methods: every method a config can name, in one table.

An entry says what the rest of the project needs to know about a method without importing it:
its protocol (``noisy``: Table 1; ``transfer``: Table 2), the config sections it reads, the function
that trains it (``"module:function"``, imported only by the job that runs it), the per-sample file
it writes, the run it starts from, how it appears in the tables and what the cost plan counts.
The config's ``choices``, the workflow's rules and wildcards, the jobs, the cost plan, the tables
and CI read this table, so adding a method is one entry here plus its step file
(``soseleto/methods/<name>.py``).

Imports neither torch nor numpy: Snakemake reads it while it builds the DAG.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

PROTOCOLS = ("noisy", "transfer")
# what every training job of a protocol reads besides its own method's settings (the rules' params)
RUN_PARAMS = {
    "noisy": ("noisy.split", "noisy.model", "noisy.weight_init", "noisy.input_scale", "data"),
    "transfer": ("transfer.source", "transfer.target", "transfer.image_size", "transfer.model", "transfer.weight_init",
                 "data"),
}
ROWS = ("paper", "ablation", "peer", "variant", "stage")
SETS = ("source", "target", "union", "pool")


@dataclass(frozen=True)
class Method:
    """One method of one protocol.

    ``settings``: the section of the protocol's config holding the run's optimiser, batches and
    epochs (``noisy.<settings>``); ``options``: another entry of the protocol's config that the run
    reads, handed to it as ``options`` (e.g. ``peers``), or ``None``. ``run``: ``"module:function"``
    that trains it (its signature is the protocol's: :func:`soseleto.experiments.noisy.run_method`,
    :func:`soseleto.experiments.transfer.run_and_save`). ``scores``: the per-sample file it writes
    besides its metrics and checkpoint (``"alpha"``: ``alpha.csv``; ``"scores"``: ``scores.csv``,
    higher = more likely clean), or ``None``. ``starts_from``: the method whose checkpoint the run
    starts from; ``inherits``: what it takes from that checkpoint (``network``: the weights;
    ``alpha``: SOSELETO's alpha, handed to the runner as ``alpha=``, with fresh weights). ``row``: ``paper`` (a row of the paper's table), ``ablation``, ``peer`` (another
    published method), ``variant`` (not in any paper) or ``stage`` (a step of another method, no
    row). ``step``: the step ``soseleto bench`` times for it (the plan prices it by that step).
    ``passes``: what one run trains on, as ``(set, epochs)`` pairs: ``set`` in :data:`SETS`
    (``union``: source + target; ``pool``: the unlabelled target images), ``epochs`` the dotted
    config path of its epochs or ``None`` for the settings' own. ``target_batches``: whether each
    step also takes a target batch. ``runtime``: a job's time limit in minutes on a cluster.
    """

    name: str
    protocol: str
    label: str
    settings: str
    run: str
    reference: str = ""
    options: str | None = None
    scores: str | None = None
    starts_from: str | None = None
    inherits: str = "network"
    row: str = "peer"
    step: str = "plain"
    passes: tuple[tuple[str, str | None], ...] = (("source", None),)
    target_batches: bool = False
    bilevel: bool = False
    uses_unlabelled: bool = False
    threshold: float | None = None
    runtime: int = 240

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"method {self.name!r}: protocol={self.protocol!r}; choose one of {PROTOCOLS}")
        if self.row not in ROWS:
            raise ValueError(f"method {self.name!r}: row={self.row!r}; choose one of {ROWS}")
        if self.scores not in (None, "alpha", "scores"):
            raise ValueError(f"method {self.name!r}: scores={self.scores!r}; choose alpha, scores or None")
        if self.threshold is not None and self.scores is None:
            raise ValueError(f"method {self.name!r}: a detection threshold needs per-sample scores")
        if ":" not in self.run:
            raise ValueError(f"method {self.name!r}: run={self.run!r} is not 'module:function'")
        bad = [s for s, _ in self.passes if s not in SETS]
        if bad or not self.passes:
            raise ValueError(f"method {self.name!r}: passes over {bad or 'nothing'}; sets are {SETS}")
        if self.inherits not in ("network", "alpha"):
            raise ValueError(f"method {self.name!r}: inherits={self.inherits!r}; choose network or alpha")

    def runner(self) -> Callable[..., Any]:
        """The function that trains this method (imported now)."""
        module, _, function = self.run.partition(":")
        return getattr(importlib.import_module(module), function)

    def config_paths(self) -> tuple[str, ...]:
        """The protocol's config entries a run of this method reads itself (its settings, options and
        the settings of the run it starts from), as dotted paths."""
        paths = [self.settings, self.options] + ([get(self.protocol, self.starts_from).settings]
                                                 if self.starts_from else [])
        return tuple(dict.fromkeys(f"{self.protocol}.{p}" for p in paths if p))


REGISTRY: dict[tuple[str, str], Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry (its name must be new in its protocol); returns it."""
    key = (method.protocol, method.name)
    if key in REGISTRY:
        raise ValueError(f"method {method.name!r} is already registered for the {method.protocol} protocol")
    if method.starts_from is not None and (method.protocol, method.starts_from) not in REGISTRY:
        raise ValueError(f"method {method.name!r} starts from {method.starts_from!r}, which is not registered")
    REGISTRY[key] = method
    return method


def unregister(protocol: str, name: str) -> None:
    """Remove a method (tests register a dummy one and take it out again)."""
    REGISTRY.pop((protocol, name))


def get(protocol: str, name: str) -> Method:
    """The entry of ``name`` in ``protocol``; a ``ValueError`` naming the known ones otherwise."""
    try:
        return REGISTRY[protocol, name]
    except KeyError:
        raise ValueError(f"method {name!r} is not a {protocol} method; known: {names(protocol)}") from None


def methods(protocol: str, *, rows: tuple[str, ...] = ROWS) -> list[Method]:
    """The entries of ``protocol`` whose row is in ``rows``, in registry (table) order."""
    return [m for (p, _), m in REGISTRY.items() if p == protocol and m.row in rows]


def names(protocol: str, *, rows: tuple[str, ...] = ROWS) -> tuple[str, ...]:
    return tuple(m.name for m in methods(protocol, rows=rows))


def choices(protocol: str) -> tuple[str, ...]:
    """What a config may list under ``<protocol>.methods``: every method with a row of its own."""
    return names(protocol, rows=("paper", "ablation", "peer", "variant"))


def detectors(protocol: str = "noisy") -> list[Method]:
    """The methods whose per-sample scores flag label errors (those with a ``threshold``)."""
    return [m for m in methods(protocol) if m.threshold is not None]


def pattern(protocol: str, *, scores: str | None) -> str:
    """A regular expression matching exactly the names of ``protocol``'s methods that write ``scores``
    (a workflow rule's wildcard constraint)."""
    import re

    found = [re.escape(m.name) for m in methods(protocol) if m.scores == scores]
    return "|".join(found) if found else "(?!)"  # (?!) matches nothing: no method of that kind


def _noisy(name: str, label: str, settings: str, run: str, **kw: Any) -> Method:
    return register(Method(name, "noisy", label, settings, run, **kw))


def _transfer(name: str, label: str, settings: str, run: str, **kw: Any) -> Method:
    return register(Method(name, "transfer", label, settings, run, **kw))


# -- the Table 1 protocol: a noisy source and a small clean target (section 4.2) -------------------------
_PAIRED = {"target_batches": True}
_BILEVEL = {"target_batches": True, "bilevel": True}
_PEER = {"settings": "peer_trainer", "options": "peers"}
_noisy("noisy_baseline", "plain training on the noisy labels", "baseline", "soseleto.methods.plain:run_on_source",
       row="paper")
_noisy("finetune", "noisy model fine-tuned on the clean target", "finetune", "soseleto.methods.plain:run_on_target",
       row="paper", starts_from="noisy_baseline", passes=(("target", None),))
# SOSELETO's threshold is that of the paper's Figure 1; L2RW's: on average less than half the
# uniform share of its batches (a sample rejected every time it was drawn scores 0)
_noisy("soseleto", "SOSELETO", "trainer", "soseleto.core.soseleto:run_noisy", row="paper", scores="alpha",
       step="soseleto", threshold=0.1, **_BILEVEL)
_noisy("soseleto_frozen", "SOSELETO, alpha frozen (lr_alpha = 0)", "trainer", "soseleto.core.soseleto:run_frozen",
       row="ablation", scores="alpha", step="soseleto", **_BILEVEL)
_noisy("soseleto_retrain", "SOSELETO, a fresh network retrained with its alpha (not the paper)", "trainer",
       "soseleto.core.soseleto:run_retrain", row="variant", starts_from="soseleto", inherits="alpha", step="soseleto",
       **_BILEVEL)
_noisy("soseleto_theta", "SOSELETO + target gradient on the features (not the paper)", "trainer",
       "soseleto.core.soseleto:run_theta", row="variant", scores="alpha", step="soseleto", threshold=0.1,
       options="theta_target_weight", **_BILEVEL)
_noisy("joint", "joint training", run="soseleto.methods.joint:run", step="joint", **_PEER, **_PAIRED,
       reference="the weighted sum of source and target losses (SOSELETO paper, section 3)")
_noisy("l2rw", "Learning to Reweight", run="soseleto.methods.l2rw:run", scores="scores", step="l2rw", **_PEER,
       **_BILEVEL, threshold=0.5, reference="Ren et al., ICML 2018")
_noisy("mwnet", "Meta-Weight-Net", run="soseleto.methods.mwnet:run", scores="scores", step="mwnet", **_PEER,
       **_BILEVEL, threshold=0.5, reference="Shu et al., NeurIPS 2019")
_noisy("glc", "Gold Loss Correction", run="soseleto.methods.correction:run_glc", step="glc", **_PEER,
       passes=(("source", "noisy.peers.glc_noisy_epochs"), ("union", None)), runtime=480,
       reference="Hendrycks et al., NeurIPS 2018")
_noisy("noise_layer", "noise-adaptation layer", run="soseleto.methods.correction:run_noise_layer", step="noise_layer",
       **_PEER, passes=(("union", None),), reference="Sukhbaatar et al., ICLR workshop 2015")

# -- the Table 2 protocol: transfer from source classes to a few target images (section 4.3) ---------------
_ON_TARGET = {"passes": (("target", None),)}
_SOS = {"settings": "soseleto", "scores": "alpha", "step": "soseleto", **_BILEVEL}
_TR = "soseleto.experiments.transfer"
_transfer("pretrain", "Fine-tuning, first half: plain SGD on the source", "pretrain", f"{_TR}:run_plain", row="stage",
          runtime=60)
_transfer("target_only", "Target only", "target_only", f"{_TR}:run_plain", row="paper", runtime=60,
          **_ON_TARGET)
_transfer("fine_tuning", "Fine-tuning", "finetune", f"{_TR}:run_plain", row="paper", starts_from="pretrain",
          runtime=60, **_ON_TARGET)
_transfer("soseleto", "SOSELETO", run=f"{_TR}:run_soseleto", row="paper", runtime=60, **_SOS)
_transfer("soseleto_frozen", "SOSELETO, alpha frozen (lr_alpha = 0)", run=f"{_TR}:run_frozen", row="ablation",
          runtime=60, **_SOS)
_transfer("soseleto_theta", "SOSELETO + target gradient on the features (not the paper)", run=f"{_TR}:run_theta",
          row="variant", options="theta_target_weight", runtime=60, **_SOS)
_transfer("two_stage", "Two-stage SOSELETO", "two_stage", f"{_TR}:run_two_stage", row="paper",
          starts_from="soseleto", options="two_stage_init", scores="alpha", step="soseleto", **_BILEVEL,
          passes=(("pool", None),), uses_unlabelled=True, runtime=60)
_transfer("appendix_c", "SOSELETO from every source class (Appendix C)", run=f"{_TR}:run_soseleto", row="stage",
          runtime=60, **_SOS)
