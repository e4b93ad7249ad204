from __future__ import annotations

import pytest
import torch

from ocula.data import POLICIES, cached_short_side, eval_transform, get_policy, mix_batch, random_erasing
from ocula.data.phone import PhoneParams, PhonePhoto
from ocula.errors import UsageError

SIZE = 64  # small and fast; the policies do not care


def cached_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)


def test_cached_short_side() -> None:
    assert cached_short_side(224) == 256
    assert cached_short_side(SIZE) == 73


@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("shape", [(73, 73), (73, 120), (140, 73), (30, 40)])
def test_every_policy_gives_uint8_square(name: str, shape: tuple[int, int]) -> None:
    policy = get_policy(name, SIZE)
    out = policy(cached_image(*shape))
    assert out.shape == (3, SIZE, SIZE) and out.dtype == torch.uint8


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_is_reproducible_under_a_seed(name: str) -> None:
    image = cached_image(73, 97)
    policy = get_policy(name, SIZE)
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        runs.append(torch.stack([policy(image) for _ in range(4)]))
    assert torch.equal(runs[0], runs[1])
    if name != "none":
        assert not all(torch.equal(runs[0][0], view) for view in runs[0][1:]), "a random policy should vary"


def test_phone_applies_every_effect_when_forced() -> None:
    always = PhoneParams(**{f: 1.0 for f in PhoneParams.__dataclass_fields__ if f.startswith("p_")})
    out = PhonePhoto(SIZE, always)(cached_image(73, 97))
    assert out.shape == (3, SIZE, SIZE) and out.dtype == torch.uint8
    assert "jpeg_quality" in POLICIES["phone"] and "p_motion" in POLICIES["phone"]


def test_eval_transform_is_a_deterministic_centre_crop() -> None:
    image = cached_image(73, 97)
    out = eval_transform(SIZE)(image)
    top, left = (73 - SIZE) // 2, (97 - SIZE) // 2
    assert torch.equal(out, image[:, top : top + SIZE, left : left + SIZE])


def test_unknown_policy_suggests_the_closest() -> None:
    with pytest.raises(UsageError, match=r"unknown augmentation policy 'crop_colour'.*did you mean 'crop_color'"):
        get_policy("crop_colour", 224)
    with pytest.raises(UsageError, match="image_size must be an integer >= 16"):
        get_policy("crop", 8)


def test_random_erasing_on_float_batch_only() -> None:
    batch = torch.zeros(8, 3, 32, 32)
    torch.manual_seed(0)
    erased = random_erasing(batch, p=1.0)
    assert erased.shape == batch.shape
    assert all((image != 0).any() for image in erased)  # every image got its own box
    assert torch.equal(random_erasing(batch, p=0.0), batch)
    with pytest.raises(UsageError, match="normalised float NCHW"):
        random_erasing(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mix_batch_gives_soft_targets(kind: str) -> None:
    x = torch.rand(6, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    mixed, targets = mix_batch(x, y, num_classes=4, kind=kind, alpha=1.0)
    assert mixed.shape == x.shape and targets.shape == (6, 4)
    assert torch.allclose(targets.sum(dim=1), torch.ones(6))


def test_mix_batch_rejects_bad_arguments() -> None:
    x, y = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    with pytest.raises(UsageError, match="unknown batch mixing kind 'mixup2'"):
        mix_batch(x, y, 2, kind="mixup2")
    with pytest.raises(UsageError, match="alpha must be > 0"):
        mix_batch(x, y, 2, alpha=0)


def test_phone_without_a_family_switches_off_exactly_its_effects() -> None:
    from ocula.data.phone import FAMILIES

    params = PhoneParams().without(["blur", "jpeg"])
    off = {name for family in ("blur", "jpeg") for name in FAMILIES[family]}
    effects = {name for names in FAMILIES.values() for name in names}
    assert effects == {n for n in PhoneParams.__dataclass_fields__ if n.startswith("p_")}
    for name in effects:
        assert (getattr(params, name) == 0.0) == (name in off), name
    policy = get_policy("phone-without:blur, jpeg", SIZE)
    assert isinstance(policy, PhonePhoto) and policy.params == params
    with pytest.raises(UsageError, match=r"unknown phone effect family 'blurr'.*did you mean 'blur'"):
        get_policy("phone-without:blurr", SIZE)
    with pytest.raises(UsageError, match="names no effect family"):
        get_policy("phone-without:", SIZE)


def test_phone_views_share_one_framing() -> None:
    from ocula.data.augment import consistency_views

    image = cached_image(97, 97)
    torch.manual_seed(5)
    views = consistency_views(get_policy("phone", SIZE))(image)
    assert views.shape == (3, 3, SIZE, SIZE) and views.dtype == torch.uint8
    assert not torch.equal(views[1], views[2])  # two independent phone photos
    torch.manual_seed(5)
    assert torch.equal(get_policy("phone", SIZE).views(image)[0], views[0])  # seeded
    # with every photometric effect off, the photos are the framed image itself: one framing
    geometry_only = PhoneParams().without(["blur", "exposure", "noise", "white_balance", "contrast", "jpeg"])
    same = PhonePhoto(SIZE, geometry_only).views(image, n=3)
    assert same.shape[0] == 4  # (mixing the same image with itself may round one level apart)
    assert all((same[0].int() - view.int()).abs().max() <= 1 for view in same[1:])
    shifted = PhonePhoto(SIZE, geometry_only)(image)  # another draw frames it elsewhere
    assert (same[0].int() - shifted.int()).abs().max() > 1
    with pytest.raises(UsageError, match="needs the phone policy"):
        consistency_views(get_policy("crop", SIZE))

