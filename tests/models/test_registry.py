from __future__ import annotations

import pytest
import torch

from ocula.errors import ModelError
from ocula.models import SmallCNN, create_model, list_models


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ModelError) as info:
        create_model("resnet81", 3)
    assert "unknown model 'resnet81'" in str(info.value)
    assert "'resnet18'" in str(info.value)
    assert info.value.exit_code == 2


def test_no_offline_weights_for_other_archs() -> None:
    with pytest.raises(ModelError) as info:
        create_model("resnet18", 3)
    message = str(info.value)
    assert "no offline pretrained weights for 'resnet18'" in message
    for fix in ("--pretrained none", "--pretrained hub", "--pretrained PATH", "tf_efficientnet_lite0"):
        assert fix in message
    assert "\n" not in message


def test_mistyped_pretrained_keyword() -> None:
    with pytest.raises(ModelError, match="did you mean 'default'"):
        create_model("small_cnn", 3, pretrained="defualt")


@pytest.mark.parametrize("num_classes", [0, -1, 2.5, True])
def test_bad_num_classes(num_classes: object) -> None:
    with pytest.raises(ModelError, match="num_classes"):
        create_model("small_cnn", num_classes)  # type: ignore[arg-type]


def test_bad_drop_rate_and_labels() -> None:
    with pytest.raises(ModelError, match="drop_rate"):
        create_model("small_cnn", 3, drop_rate=1.5)
    with pytest.raises(ModelError, match="2 labels given for num_classes=3"):
        create_model("small_cnn", 3, labels=["a", "b"])


def test_random_init_for_any_timm_model() -> None:
    model, pre, source = create_model("resnet18", 4, pretrained="none", image_size=64)
    assert source == "random initialisation (trained from scratch)"
    assert model.get_classifier().out_features == 4
    assert pre.input_size == 64 and pre.mean == (0.485, 0.456, 0.406)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 4)


def test_small_cnn_defaults() -> None:
    model, pre, source = create_model("small_cnn", 5)
    assert isinstance(model, SmallCNN)
    assert "from scratch" in source
    assert (pre.input_size, pre.mean, pre.std, pre.crop_pct) == (32, (0.5,) * 3, (0.5,) * 3, 1.0)
    with pytest.raises(ModelError, match="no published weights"):
        create_model("small_cnn", 5, pretrained="hub")


def test_drop_rate_reaches_the_model() -> None:
    model, _, _ = create_model("tf_efficientnet_lite0", 3, pretrained="none", drop_rate=0.3)
    assert model.drop_rate == 0.3


def test_list_models() -> None:
    names = list_models()
    assert "small_cnn" in names and "tf_efficientnet_lite0" in names and "resnet18" in names
    assert names == sorted(names)
    assert list_models("small*") == ["small_cnn"]
    assert "resnet18" in list_models("resnet1*") and "small_cnn" not in list_models("resnet1*")
