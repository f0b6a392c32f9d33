"""Evaluation of a (features, classifier) pair (:mod:`soseleto.core.evaluate`)."""

import pytest
import torch

from soseleto.core.evaluate import accuracy, predict, predict_proba
from soseleto.core.models import build


def test_predictions_in_eval_mode_and_in_batches():
    features, (head,) = build("bn_convnet", (1, 6, 6), [3], seed=0)
    x = torch.randn(7, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    buffers = [b.clone() for b in features.buffers()]
    with torch.no_grad():
        features.eval()
        expected = head(features(x))
    features.train()
    probs = predict_proba(features, head, x, batch_size=3)  # 3 + 3 + 1: the same as one batch in eval mode
    torch.testing.assert_close(probs, expected.softmax(1))
    assert torch.equal(predict(features, head, x, batch_size=2), expected.argmax(1))
    assert not features.training and all(torch.equal(a, b) for a, b in zip(buffers, features.buffers()))
    y = expected.argmax(1).clone()
    y[:2] = (y[:2] + 1) % 3
    assert accuracy(features, head, x, y) == pytest.approx(5 / 7)
