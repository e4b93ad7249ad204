from __future__ import annotations

import pytest
import torch

from ocula.models import SmallCNN


@pytest.mark.parametrize("size", [32, 64, 16])
def test_forward_any_size(size: int) -> None:
    model = SmallCNN(5)
    assert model(torch.randn(2, 3, size, size)).shape == (2, 5)


def test_timm_style_interface() -> None:
    model = SmallCNN(5, in_chans=1, drop_rate=0.0).eval()
    x = torch.randn(2, 1, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (2, model.num_features, 4, 4)
    pooled = model.forward_head(feats, pre_logits=True)
    assert pooled.shape == (2, model.num_features)
    torch.testing.assert_close(model.get_classifier()(pooled), model(x))

    model.reset_classifier(7)
    assert model.get_classifier().out_features == 7 and model(x).shape == (2, 7)
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)


def test_it_learns() -> None:
    # Two classes told apart by brightness, shuffled mini-batches: it must fit them.
    x = torch.cat([torch.rand(16, 3, 32, 32) * 0.3, 0.7 + torch.rand(16, 3, 32, 32) * 0.3]) * 2 - 1
    y = torch.tensor([0] * 16 + [1] * 16)
    model = SmallCNN(2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(50):
        batch = torch.randperm(32)[:8]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        opt.step()
    model.eval()
    with torch.inference_mode():
        assert (model(x).argmax(1) == y).all()
