"""The config sections of the library, ``soseleto fit`` and the workflow (one dataclass each);
their defaults are the library's and the command line's."""

from __future__ import annotations

from dataclasses import dataclass

from soseleto.config import methods as registry
from soseleto.config.datasets import CATALOG
from soseleto.config.fields import Section, opt, require

DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?|mps)$"
FIT_MODES = ("noisy", "transfer")  # soseleto fit --mode
MODEL_CHOICES = ("auto", "mlp", "lenet", "cifar_quick", "bn_convnet", "resnet18")  # config values: auto + core.models.MODELS
WEIGHT_INITS = ("pytorch", "caffe")  # what soseleto.core.models.build draws
WEIGHT_INIT_DOC = ("initial weights: pytorch (each layer's default) or caffe (the fillers of the network's Caffe "
                   "prototxt, biases 0; cifar_quick and lenet only)")
INPUT_SCALES = ("standard", "caffe")  # soseleto.experiments.noisy.load_sets
INPUT_SCALE_DOC = ("pixel scale fed to the network: standard (per-channel mean 0, std 1) or caffe (0-255 pixels "
                   "minus the per-channel mean, as Caffe's CIFAR-10 example feeds them, which its fillers are "
                   "sized for)")


# -- training ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SGDConfig(Section):
    """The optimiser of the network parameters (theta, phi); alpha never has momentum."""

    lr_p: float = opt(1e-2, "lambda_p: SGD step of the network parameters", gt=0)
    momentum: float = opt(0.9, "SGD momentum of the network parameters", ge=0, lt=1)
    weight_decay: float = opt(5e-4, "L2 penalty of the network parameters, applied by the optimiser", ge=0)


@dataclass(frozen=True)
class EpochsConfig(SGDConfig):
    """The optimiser and how long a run lasts (an epoch is one pass over the set a run iterates)."""

    epochs: int = opt(20, "passes over the set (the source for paired runs)", ge=1)
    log_every: int = opt(1, "epochs between progress lines", ge=1)
    checkpoint_every: int = opt(1, "epochs between checkpoints of a job's resumable state (and at the end)", ge=1)


@dataclass(frozen=True)
class PlainConfig(EpochsConfig):
    """Plain minibatch SGD on one labelled set (baselines, target-only, pre-training, fine-tuning)."""

    batch: int = opt(128, "samples per step", ge=1)

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.epochs, self.batch, None, self.log_every, self.checkpoint_every)


@dataclass(frozen=True)
class PairedConfig(EpochsConfig):
    """Training on a source set with cycling target batches (the peer methods; SOSELETO adds alpha)."""

    source_batch: int = opt(128, "source samples per step; one epoch is one pass over the source", ge=1)
    target_batch: int = opt(32, "target samples per step (the target set cycles)", ge=1)

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.epochs, self.source_batch, self.target_batch, self.log_every, self.checkpoint_every)


@dataclass(frozen=True)
class SoseletoConfig(PairedConfig):
    """Algorithm 1: the paired schedule plus the source weights alpha."""

    lr_alpha: float = opt(1000.0, "lambda_alpha. alpha_step raw: alpha moves by lr_alpha * lr_p * c * a_j per visit (the "
                                 "paper's eq. 5); normalized: by lr_alpha * a_j / RMS(a), i.e. lr_alpha alpha units", ge=0)
    alpha_step: str = opt("raw", "raw (the paper) or normalized: the alignment a_j divided by its running RMS over steps",
                          choices=("raw", "normalized"))
    alpha_rms_decay: float = opt(0.99, "alpha_step normalized: decay of the running mean of a_j^2 (per step)", gt=0, lt=1)
    target_grad_decay: float = opt(0.97, "the target direction g of a_j = d l_j/dtheta . g: this step's dL_t/dtheta (0, the "
                                        "paper) or its running average over steps with this decay", ge=0, lt=1)
    target_on_features: float = opt(0.0, "weight w of the target gradient added to the features' step (0: the paper, "
                                         "where the target shapes theta only through alpha)", ge=0)
    alpha_init: float = opt(1.0, "initial alpha of every source sample", ge=0)
    alpha_min: float = opt(0.0, "lower end of alpha's clip range", ge=0)
    alpha_max: float = opt(1.1, "upper end of alpha's clip range (the paper: [0, 1.1])", gt=0)
    loss_scale: str = opt("batch_mean", "per-sample loss weight c: 1/|batch| or 1/n as in the paper's L_s, L_t",
                          choices=("batch_mean", "dataset"))
    alpha_grad: str = opt("features", "alpha's gradient: Q^T dLt/dtheta (the paper) or also the shared classifier",
                          choices=("features", "all"))
    shared_classifier: bool = opt(True, "noisy-label mode (phi_t = phi_s); false: transfer mode, separate heads")

    def check(self) -> None:
        require("alpha_max", self.alpha_max > self.alpha_min, self.alpha_max, f"> alpha_min={self.alpha_min}")
        require("alpha_init", self.alpha_min <= self.alpha_init <= self.alpha_max, self.alpha_init,
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
    mwnet_hidden: int = opt(100, "mwnet: width of the weight net's hidden layer (1-hidden-1, ReLU, sigmoid)", ge=1)
    mwnet_lr: float = opt(1e-3, "mwnet: Adam step of the weight net", gt=0)
    mwnet_weight_decay: float = opt(1e-4, "mwnet: L2 penalty of the weight net, added to its gradient", ge=0)
    mwnet_normalize: bool = opt(True, "mwnet: divide the weights by their batch sum (false: by the batch size, as in "
                                      "the authors' later code)")


# -- soseleto fit ----------------------------------------------------------------------------------------
SET_DOC = ("NAME:SPLIT[:CLASSES] (a torchvision set), mnist5k[:CLASSES] or digits8x8[:CLASSES] (built in), "
           "FILE.npz[:CLASSES] or FOLDER[:CLASSES]")


@dataclass(frozen=True)
class FitConfig(Section):
    """``soseleto fit``: SOSELETO on the user's own sets (``soseleto fit --help`` says each in full).
    ``source``, ``target``, ``mode`` and ``out`` have no default."""

    source: str = opt("", f"the large (noisy, or other-task) source set: {SET_DOC}", min_length=1)
    target: str = opt("", "the small clean target set, in the same forms", min_length=1)
    mode: str = opt("noisy", "noisy: one classifier, the same labels (noisy source); transfer: separate heads",
                    choices=FIT_MODES)
    out: str = opt("", "output folder for weights.csv, model.pt and metrics.json", min_length=1)
    test: str | None = opt(None, "a held-out test set with the target's labels", min_length=1)
    target_per_class: int | None = opt(None, "keep this many random target samples per class", ge=1)
    model: str = opt("auto", "the feature network; auto: LeNet for gray images, CIFAR-10 Quick for colour ones, "
                             "images under the size that network is made for scaled up to it", choices=MODEL_CHOICES)
    trainer: SoseletoConfig = opt(SoseletoConfig(), "the optimiser, batches, epochs and alpha; shared_classifier "
                                                    "follows mode")
    seed: int = opt(0, "draws the initial weights, the batches and target_per_class", ge=0)
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda, cuda:N", pattern=DEVICE_PATTERN)
    threads: int | None = opt(None, "CPU threads of torch; null: torch's own choice", ge=1)
    data_dir: str = opt("data", "where torchvision sets live (and are downloaded to)", min_length=1)
    download: bool = opt(False, "download missing torchvision sets into data_dir (needs internet)")
    gray: bool = opt(False, "convert RGB images to gray (e.g. SVHN -> MNIST)")
    size: tuple[int, ...] | None = opt(None, "resize every image to (H, W)", min_items=2, ge=1, le=4096)
    stream: bool = opt(False, "read the source (an ImageFolder) from disk batch by batch instead of into memory")
    workers: int = opt(2, "with stream: processes that decode images, 0 = none besides the main one", ge=0)
    true_labels: str | None = opt(None, "the source's true labels (.npy, or .npz with y): score alpha as a "
                                        "detector of the mislabeled samples", min_length=1)
    flag_threshold: float = opt(registry.get("noisy", "soseleto").threshold,
                                "with true_labels: flag the source samples whose alpha is below this", ge=0)

    def check(self) -> None:
        require("size", self.size is None or len(self.size) == 2, self.size, "(H, W)")
        require("trainer.shared_classifier", self.trainer.shared_classifier == (self.mode == "noisy"),
                self.trainer.shared_classifier, f"{self.mode == 'noisy'} in {self.mode} mode")


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
                                                 log_every=10, target_grad_decay=0.0), "SOSELETO")

    def check(self) -> None:
        require("n_noisy", self.n_noisy <= self.n_source, self.n_noisy, f"in [0, n_source={self.n_source}]")


# torchvision sets the data layer reads (soseleto/config/datasets.py); any other name is mnist5k or digits8x8
# (built in) or a file path
DATASET_NAMES = tuple(CATALOG)
DATASET_DOC = ("torchvision set (cifar10, cifar100, svhn, mnist, fashionmnist, kmnist), mnist5k (5,000 MNIST "
               "digits) or digits8x8 (scikit-learn's 1,797 8x8 digits), shipped with the package (files: no test "
               "split), or the path of an .npz file (x: N,H,W[,C] uint8; y: N int) or of an ImageFolder")


@dataclass(frozen=True)
class SideConfig(Section):
    """One side of a transfer task: a data set and the classes taken from it (renumbered 0..K-1)."""

    dataset: str = opt("svhn", DATASET_DOC, min_length=1)
    classes: tuple[int, ...] = opt((0, 1, 2, 3, 4), "labels kept, in this order", min_items=2, unique=True, ge=0)


@dataclass(frozen=True)
class AppendixCConfig(Section):
    """Appendix C / Figures 3-5: SOSELETO from ``source_classes`` of the source set to the target classes."""

    enabled: bool = opt(True, "run Appendix C (part of `snakemake all`)")
    seeds: tuple[int, ...] = opt((0,), "runs; Figure 3 averages over them, Figures 4-5 show the first", **SEEDS)
    source_classes: tuple[int, ...] = opt(tuple(range(10)), "source classes", min_items=2, unique=True, ge=0)
    n_target: int = opt(25, "target images (a multiple of the target classes)", ge=1)
    threshold: float = opt(0.8, "'good' instances: alpha > threshold (Figure 3, Figure 4 left)", ge=0)
    bad_quantile: float = opt(0.1, "'bad' instances of Figure 4: the lowest fraction of class 0 by alpha", gt=0, le=1)
    grid: int = opt(64, "images per panel of Figure 4", ge=1)
    lowest: int = opt(16, "images of Figure 5 (the lowest-alpha instances labelled 0)", ge=1)


def _transfer_methods() -> tuple[str, ...]:
    return registry.choices("transfer")


@dataclass(frozen=True)
class TransferConfig(Section):
    """Section 4.3 / Table 2: ``source`` classes -> ``target`` classes (SVHN 0-4 -> MNIST 5-9)."""

    seeds: tuple[int, ...] = opt((0, 1, 2, 3, 4), "one job per (n_target, method, seed)", **SEEDS)
    n_target: tuple[int, ...] = opt((20, 25), "target set sizes (multiples of the target classes)",
                                    min_items=1, unique=True, ge=1)
    methods: tuple[str, ...] = opt(_transfer_methods(), "rows of Table 2 to run (soseleto/config/methods.py)",
                                   min_items=1, unique=True, choices=_transfer_methods)
    source: SideConfig = opt(SideConfig("svhn", (0, 1, 2, 3, 4)), "the source set and its classes")
    target: SideConfig = opt(SideConfig("mnist", (5, 6, 7, 8, 9)), "the target set and its classes")
    test_per_class: int | None = opt(None, "a target set without a test split (a file): null, every image of the "
                                           "target classes besides the labelled target is the test set; N, N per "
                                           "class (the same for every run) are, and the others besides the labelled "
                                           "target are the unlabelled pool of two-stage SOSELETO", ge=1)
    image_size: int = opt(28, "every image is made gray (if the target is) and this size", ge=8)
    model: str = opt("auto", "feature network; auto: by image shape (LeNet for gray images)", choices=MODEL_CHOICES)
    weight_init: str = opt("pytorch", WEIGHT_INIT_DOC, choices=WEIGHT_INITS)
    soseleto: SoseletoConfig = opt(SoseletoConfig(shared_classifier=False), "SOSELETO, transfer mode")
    target_only: PlainConfig = opt(PlainConfig(), "plain SGD on the target images")
    pretrain: PlainConfig = opt(PlainConfig(), "fine-tuning, first half: plain SGD on the source")
    finetune: PlainConfig = opt(PlainConfig(), "fine-tuning, second half: every layer on the target images")
    two_stage: SoseletoConfig = opt(SoseletoConfig(), "two-stage SOSELETO, stage 2 (noisy-label mode)")
    two_stage_init: str = opt("stage1", "stage 2 starts from the stage-1 network or from fresh weights",
                              choices=("stage1", "scratch"))
    theta_target_weight: float = opt(1.0, "soseleto_theta (not the paper): the soseleto settings with the target "
                                          "gradient also on theta, with this weight", gt=0)
    appendix_c: AppendixCConfig = opt(AppendixCConfig(), "Appendix C")

    def check(self) -> None:
        k = len(self.target.classes)
        for key, n in [("n_target", n) for n in self.n_target] + [("appendix_c.n_target", self.appendix_c.n_target)]:
            require(key, n % k == 0, n, f"a positive multiple of the {k} target classes (class-balanced target set)")
        require("soseleto.shared_classifier", not self.soseleto.shared_classifier, True,
                 "false (transfer mode: source and target label spaces differ)")
        require("two_stage.shared_classifier", self.two_stage.shared_classifier, False,
                 "true (stage 2 is noisy-label mode on pseudo-labelled target data)")
        file_target = self.target.dataset.lower() not in DATASET_NAMES
        if file_target and "two_stage" in self.methods:
            require("test_per_class", self.test_per_class is not None, None,
                    f"a number of test images per class when two_stage is run on the file {self.target.dataset!r} "
                    "(the unlabelled pool is what the test set and the labelled target leave)")
        if not file_target:
            require("test_per_class", self.test_per_class is None, self.test_per_class,
                    f"null: {self.target.dataset} has a test split of its own")


def _noisy_methods() -> tuple[str, ...]:
    return registry.choices("noisy")


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
            require("test_per_class", self.test_per_class is not None, None,
                     f"a number of images per class: the file {self.dataset!r} has no test split of its own")


@dataclass(frozen=True)
class NoisyConfig(Section):
    """Section 4.2 / Table 1 / Figure 2: a data set with confusion-matrix label noise (CIFAR-10)."""

    seeds: tuple[int, ...] = opt((0, 1, 2), "one run per (noise level, method, seed)", **SEEDS)
    noise_levels: tuple[float, ...] = opt((0.3, 0.4, 0.5), "overall noise levels p", min_items=1, unique=True,
                                          ge=0, lt=1)
    methods: tuple[str, ...] = opt(registry.names("noisy", rows=("paper",)), "methods to run "
                                   "(soseleto/config/methods.py)", min_items=1, unique=True, choices=_noisy_methods)
    split: NoisySplitConfig = opt(NoisySplitConfig(), "the data set and its split")
    model: str = opt("auto", "feature network; auto: by image shape (CIFAR-10 Quick for colour images)", choices=MODEL_CHOICES)
    weight_init: str = opt("pytorch", WEIGHT_INIT_DOC, choices=WEIGHT_INITS)
    input_scale: str = opt("standard", INPUT_SCALE_DOC, choices=INPUT_SCALES)
    trainer: SoseletoConfig = opt(SoseletoConfig(), "SOSELETO (noisy-label mode)")
    baseline: PlainConfig = opt(PlainConfig(), "plain SGD on the noisy source")
    finetune: PlainConfig = opt(PlainConfig(), "the noisy baseline trained further on the clean target")
    peer_trainer: PairedConfig = opt(PairedConfig(), "optimiser, batches and epochs of the peer methods")
    peers: PeerConfig = opt(PeerConfig(), "options of the peer methods")
    theta_target_weight: float = opt(0.2, "soseleto_theta (not the paper): the trainer settings with the clean "
                                          "target's gradient also on the features, with this weight", gt=0)
    cleanlab_folds: int = opt(5, "folds of cleanlab's out-of-fold probabilities of the noisy baseline; 0: no "
                                 "cleanlab detector", ge=0)
    threads: int = opt(4, "CPU threads of each training job (Snakemake threads)", ge=1)

    def check(self) -> None:
        require("trainer.shared_classifier", self.trainer.shared_classifier, False,
                 "true (noisy-label mode: source and target share the classifier)")
        require("cleanlab_folds", self.cleanlab_folds != 1, 1, "0 (no cleanlab) or at least 2 folds")


@dataclass(frozen=True)
class BenchConfig(Section):
    """``soseleto bench``: the cost of a SOSELETO step against a plain step."""

    models: tuple[str, ...] = opt(("lenet", "cifar_quick", "resnet18"), "models timed", min_items=1, unique=True,
                                  choices=("lenet", "cifar_quick", "resnet18"))
    reps: int = opt(20, "timed repetitions of each step type (median reported)", ge=1)
    quick: bool = opt(False, "3 repetitions and 1 warm-up (CI)")
    threads: int | None = opt(None, "torch CPU threads; null = torch's default", ge=1)
    load: int = opt(1, "CPU-heavy processes started beside a second timing of both steps (the loaded ratio); "
                       "0 = time on the quiet machine only", ge=0)
    share_jobs: tuple[int, ...] = opt((1, 4, 8, 16), "rule share_cost (not in `all`): training jobs side by side "
                                      "on one device, each count timed", min_items=1, unique=True, ge=1)
    share_seconds: float = opt(10.0, "rule share_cost: the timed window of each count, in seconds", gt=0)


@dataclass(frozen=True)
class WorkflowConfig(Section):
    """The whole workflow configuration (``config/config.yaml``)."""

    device: str = opt("auto", "torch device of every training job", pattern=DEVICE_PATTERN)
    data: DataConfig = opt(DataConfig(), "image data sets")
    synthetic: SyntheticConfig = opt(SyntheticConfig(), "section 4.1 / Figure 1")
    transfer: TransferConfig = opt(TransferConfig(), "section 4.3 / Table 2 / Appendix C")
    noisy: NoisyConfig = opt(NoisyConfig(), "section 4.2 / Table 1 / Figure 2, the peers, label errors")
    bench: BenchConfig = opt(BenchConfig(), "step cost benchmark")
