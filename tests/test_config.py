import pytest

from soseleto.config import SyntheticConfig, TrainerConfig, from_dict


def test_from_dict_builds_nested_dataclasses():
    cfg = from_dict(SyntheticConfig, {"n_source": 10, "n_noisy": 2, "trainer": {"lr_p": 0.5, "epochs": 3}})
    assert isinstance(cfg.trainer, TrainerConfig)
    assert cfg.trainer.lr_p == 0.5 and cfg.trainer.epochs == 3 and cfg.n_source == 10


@pytest.mark.parametrize(
    "data,match",
    [
        ({"lr_p": -1.0}, r"lr_p=-1\.0"),
        ({"momentum": 1.0}, r"momentum=1\.0"),
        ({"alpha_init": 2.0}, r"alpha_init=2\.0"),
        ({"loss_scale": "sum"}, r"loss_scale='sum'"),
        ({"epochs": 0}, r"epochs=0"),
        ({"batch": 3}, r"unknown config key\(s\) batch"),
    ],
)
def test_bad_trainer_values_name_the_key(data, match):
    with pytest.raises(ValueError, match=match):
        from_dict(TrainerConfig, data)


def test_nested_error_carries_the_path():
    with pytest.raises(ValueError, match=r"trainer\.alpha_max"):
        from_dict(SyntheticConfig, {"trainer": {"alpha_max": -1.0}})
