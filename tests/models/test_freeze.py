from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ocula.errors import ModelError
from ocula.models import configure, create_model, features_and_head, parse_mode, set_train_mode, stage_groups


@pytest.fixture(scope="module")
def lite0() -> nn.Module:
    return create_model("tf_efficientnet_lite0", 3)[0]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("head", ("head", None)), ("finetune", ("finetune", None)), ("full", ("full", None)),
     ("last-1", ("last", 1)), ("last-12", ("last", 12)), (" Last-2 ", ("last", 2))],
)
def test_parse_mode_accepts(mode: str, expected: tuple[str, int | None]) -> None:
    assert parse_mode(mode) == expected


@pytest.mark.parametrize("mode", ["last-0", "last-", "last--1", "last-2x", "fine-tune", "all", "", "last2"])
def test_parse_mode_refuses(mode: str) -> None:
    with pytest.raises(ModelError) as info:
        parse_mode(mode)
    assert repr(mode) in str(info.value)
    assert "head, finetune, full or last-N" in str(info.value)


def _trainable(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_stage_groups_cover_every_parameter_once(lite0: nn.Module) -> None:
    groups = stage_groups(lite0)
    ids = [id(p) for group in groups for p in group]
    assert len(ids) == len(set(ids)) == len(list(lite0.parameters()))
    assert {id(p) for p in groups[-1]} == {id(p) for p in lite0.get_classifier().parameters()}
    assert {id(p) for p in groups[0]} == {id(lite0.conv_stem.weight), id(lite0.bn1.weight), id(lite0.bn1.bias)}
    assert len(groups) == 9  # stem, 7 block stages (the last with conv_head), classifier


def test_configure_head(lite0: nn.Module) -> None:
    groups = configure(lite0, "head", 1e-3)
    assert _trainable(lite0) == {"classifier.weight", "classifier.bias"}
    assert [g["name"] for g in groups] == ["classifier"] and groups[0]["lr"] == 1e-3


def test_configure_last_n(lite0: nn.Module) -> None:
    groups = configure(lite0, "last-2", 1e-3)
    trainable = _trainable(lite0)
    assert all(n.startswith(("blocks.5.", "blocks.6.", "conv_head", "bn2", "classifier")) for n in trainable)
    assert "blocks.5.0.conv_pw.weight" in trainable and "bn2.weight" in trainable
    assert "blocks.4.0.conv_pw.weight" not in trainable
    assert [g["name"] for g in groups] == ["stage6", "stage7", "classifier"]
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    # More stages than the model has: everything.
    configure(lite0, "last-50", 1e-3)
    assert len(_trainable(lite0)) == len(list(lite0.parameters()))


def test_configure_everything(lite0: nn.Module) -> None:
    configure(lite0, "head", 1e-3)  # configure must also unfreeze what an earlier phase froze
    groups = configure(lite0, "full", 1e-3)
    assert len(_trainable(lite0)) == len(list(lite0.parameters()))
    assert sum(len(g["params"]) for g in groups) == len(list(lite0.parameters()))
    assert {g["lr"] for g in groups} == {1e-3}


def test_finetune_keeps_the_cheap_early_stages_frozen(lite0: nn.Module) -> None:
    configure(lite0, "head", 1e-3)
    groups = configure(lite0, "finetune", 1e-3)
    # stem, stage1 and stage2 hold 0.5% of the weights; stage3 would take them past 1%.
    assert [g["name"] for g in groups] == ["stage3", "stage4", "stage5", "stage6", "stage7", "classifier"]
    frozen = {n for n, p in lite0.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("conv_stem", "bn1.", "blocks.0.", "blocks.1.")) for n in frozen)
    assert sum(p.numel() for n, p in lite0.named_parameters() if n in frozen) < 0.01 * sum(
        p.numel() for p in lite0.parameters())


def test_discriminative_rates_rise_geometrically(lite0: nn.Module) -> None:
    groups = configure(lite0, "full", 2e-3, discriminative=True, lr_ratio=100.0)
    rates = [g["lr"] for g in groups]
    assert rates == sorted(rates) and len(set(rates)) == len(rates)
    assert rates[0] == pytest.approx(2e-5) and rates[-1] == pytest.approx(2e-3)
    ratios = [b / a for a, b in zip(rates, rates[1:])]
    assert ratios == pytest.approx([ratios[0]] * len(ratios))
    # A stage keeps its rate whatever is unfrozen, so finetune's phases agree.
    partial = {g["name"]: g["lr"] for g in configure(lite0, "last-2", 2e-3, discriminative=True)}
    assert all(partial[g["name"]] == pytest.approx(g["lr"]) for g in groups if g["name"] in partial)


def test_configure_refuses_bad_rates(lite0: nn.Module) -> None:
    with pytest.raises(ModelError, match="learning rate"):
        configure(lite0, "full", 0.0)
    with pytest.raises(ModelError, match="lr_ratio"):
        configure(lite0, "full", 1e-3, lr_ratio=0.5)


def _bn_modes(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules() if isinstance(m, _BatchNorm)]


def test_set_train_mode_keeps_batch_norm_in_eval(lite0: nn.Module) -> None:
    configure(lite0, "full", 1e-3)
    set_train_mode(lite0, freeze_bn=True)
    assert lite0.training and not any(_bn_modes(lite0))
    before = lite0.bn2.running_mean.clone()
    lite0(torch.randn(2, 3, 64, 64))
    assert torch.equal(lite0.bn2.running_mean, before)

    set_train_mode(lite0, freeze_bn=False)
    assert all(_bn_modes(lite0))

    # Frozen batch norm stays in eval mode even without freeze_bn.
    configure(lite0, "last-1", 1e-3)
    set_train_mode(lite0, freeze_bn=False)
    assert lite0.bn2.training and lite0.blocks[6][0].bn1.training
    assert not lite0.bn1.training and not lite0.blocks[0][0].bn1.training


@pytest.mark.parametrize("arch", ["tf_efficientnet_lite0", "small_cnn"])
def test_features_and_head_reproduce_the_model(arch: str) -> None:
    model = create_model(arch, 4, pretrained="default")[0].eval()
    features, classifier = features_and_head(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        feats = features(x)
        assert feats.shape == (2, model.num_features)
        torch.testing.assert_close(classifier(feats), model(x))
    assert classifier is model.get_classifier()


def test_plain_modules_fall_back_to_children() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(1, 3, 8, 8))
    groups = stage_groups(model)
    assert [len(g) for g in groups] == [2, 2, 2]
    param_groups = configure(model, "head", 0.1)
    assert [g["name"] for g in param_groups] == ["classifier"]
    assert [p.requires_grad for p in model.parameters()] == [False, False, False, False, True, True]
