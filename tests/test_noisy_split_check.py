"""A noisy-label split file is used only with the data it was drawn from (:func:`soseleto.experiments.noisy.load_sets`)."""

import pandas as pd
import pytest

from soseleto.config import DataConfig, NoisySplitConfig
from soseleto.experiments import noisy

DATA = DataConfig(source="generated", dir="unused", download=False, generated_train=160, generated_test=60)
SPLIT = NoisySplitConfig(dataset="cifar10", n_target=50)


@pytest.fixture
def split(tmp_path):
    out = {n: str(tmp_path / f) for n, f in (("split", "split.csv"), ("confusion", "c.csv"), ("info", "i.json"))}
    noisy.write_split(SPLIT, DATA, noise=0.4, outputs=out)
    return pd.read_csv(out["split"])


def test_a_split_of_another_size_is_refused_with_the_counts(split):
    with pytest.raises(ValueError, match=r"does not match the data set 'cifar10' \(159 rows for 160 samples"):
        noisy.load_sets(SPLIT, DATA, split.iloc[:-1])


def test_a_split_of_other_labels_is_refused_with_the_row(split):
    other = split.copy()
    other.loc[7, "true_label"] = (other.loc[7, "true_label"] + 1) % 10  # same size, other data
    with pytest.raises(ValueError, match=r"\(row 7 has another label: written for different data\?\); delete"):
        noisy.load_sets(SPLIT, DATA, other)
    assert len(noisy.load_sets(SPLIT, DATA, split).source) > 0  # the matching split loads
