from PIL import Image

from tests.conftest import run_cli


def test_preview_writes_a_png_grid(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "d", per_class=4)
    out = tmp_path / "grid.png"
    result = run_cli("data", "preview", str(data), "--augment", "phone", "--out", str(out), "-n", "6",
                     "--image-size", "64")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    with Image.open(out) as grid:
        assert grid.width >= 3 * 64 and grid.height >= 2 * 64


def test_preview_unknown_policy_is_one_line(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "d", per_class=2)
    result = run_cli("data", "preview", str(data), "--augment", "crop_colour")
    assert result.returncode == 2 and "crop_color" in result.stderr and "Traceback" not in result.stderr


def test_policies_are_listed_with_their_parameters():
    result = run_cli("data", "policies")
    assert result.returncode == 0
    for name in ("none", "crop", "crop_color", "crop_color_transform", "randaugment", "trivialaugment", "phone"):
        assert f"{name}:" in result.stdout
