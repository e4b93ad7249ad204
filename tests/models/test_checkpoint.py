"""Loading user checkpoints: round trips, incremental training, and refusing unsafe files."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from ocula.errors import ModelError
from ocula.models import create_model, load_checkpoint, read_state_dict
from tests.models.conftest import write_run


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_state_dict_round_trip(tmp_path: Path) -> None:
    old, _, _ = create_model("small_cnn", 4)
    torch.save(old.state_dict(), tmp_path / "weights.pth")
    new, _, source = create_model("small_cnn", 4, pretrained=str(tmp_path / "weights.pth"))
    _assert_same_weights(old, new)
    n = len(old.state_dict())
    assert source == f"checkpoint {tmp_path / 'weights.pth'} (loaded {n}/{n} tensors)"


def test_wrapped_ddp_checkpoint(tmp_path: Path) -> None:
    old, _, _ = create_model("small_cnn", 4)
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in old.state_dict().items()}}
    torch.save(wrapped, tmp_path / "ckpt.pt")
    new, _, _ = create_model("small_cnn", 4, pretrained=str(tmp_path / "ckpt.pt"))
    _assert_same_weights(old, new)
    torch.save({"model": old.state_dict()}, tmp_path / "m.bin")
    assert set(read_state_dict(tmp_path / "m.bin")) == set(old.state_dict())


def test_safetensors_checkpoint(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    old, _, _ = create_model("small_cnn", 4)
    save_file({k: v.contiguous() for k, v in old.state_dict().items()}, str(tmp_path / "w.safetensors"))
    new, _, _ = create_model("small_cnn", 4, pretrained=str(tmp_path / "w.safetensors"))
    _assert_same_weights(old, new)


def test_run_with_two_more_classes_keeps_old_rows(tmp_path: Path) -> None:
    old_labels = ["apple", "banana", "cherry"]
    old, _, _ = create_model("small_cnn", 3)
    run = write_run(tmp_path / "runs" / "abc", old, old_labels, "small_cnn", input_size=40, mean=[0.4, 0.4, 0.4])
    # Class indices are alphabetical, so new classes land between the old ones.
    new_labels = ["apple", "avocado", "banana", "cherry", "date"]
    new, pre, source = create_model("small_cnn", 5, pretrained=str(run), labels=new_labels)

    n = len(old.state_dict())
    assert source == f"run {run} (loaded {n - 2}/{n} tensors; classifier re-initialised: 3 -> 5 classes, 3 rows copied)"
    old_head, new_head = old.get_classifier(), new.get_classifier()
    for new_i, label in enumerate(new_labels):
        if label in old_labels:
            old_i = old_labels.index(label)
            assert torch.equal(new_head.weight[new_i], old_head.weight[old_i])
            assert torch.equal(new_head.bias[new_i], old_head.bias[old_i])
        else:
            assert not any(torch.equal(new_head.weight[new_i], row) for row in old_head.weight)
    assert torch.equal(new.state_dict()["stages.2.0.weight"], old.state_dict()["stages.2.0.weight"])
    # Incremental training keeps the previous run's input pipeline.
    assert pre.input_size == 40 and pre.mean == (0.4, 0.4, 0.4)


def test_run_model_dir_and_weights_file_work_too(tmp_path: Path) -> None:
    old, _, _ = create_model("small_cnn", 2)
    run = write_run(tmp_path / "run", old, ["a", "b"], "small_cnn")
    for source in (run / "model", run / "model" / "weights.pt"):
        _, _, description = create_model("small_cnn", 3, pretrained=str(source), labels=["a", "b", "c"])
        assert "2 -> 3 classes, 2 rows copied" in description
        fresh, _, _ = create_model("small_cnn", 3, pretrained="none")
        report = load_checkpoint(fresh, source, labels=["a", "b", "c"])
        assert report.rows_copied == 2 and report.classifier_reset
        assert report.n_loaded == report.total - 2 and report.n_skipped == 2


def test_same_classes_load_everything(tmp_path: Path) -> None:
    old, _, _ = create_model("small_cnn", 2)
    run = write_run(tmp_path / "run", old, ["a", "b"], "small_cnn")
    new, _, source = create_model("small_cnn", 2, pretrained=str(run), labels=["a", "b"])
    _assert_same_weights(old, new)
    assert "re-initialised" not in source


def test_run_arch_must_match(tmp_path: Path) -> None:
    old, _, _ = create_model("small_cnn", 2)
    run = write_run(tmp_path / "run", old, ["a", "b"], "small_cnn")
    with pytest.raises(ModelError, match="was trained as 'small_cnn', not 'resnet18'.*--model small_cnn"):
        create_model("resnet18", 2, pretrained=str(run))


def test_state_dict_with_other_class_count_reinitialises_classifier(tmp_path: Path) -> None:
    old, _, _ = create_model("small_cnn", 10)
    torch.save(old.state_dict(), tmp_path / "w.pt")
    new, _, source = create_model("small_cnn", 12, pretrained=str(tmp_path / "w.pt"))
    assert "classifier re-initialised: 10 -> 12 classes" in source and "rows copied" not in source
    assert new.get_classifier().weight.shape == (12, 128)


def test_checkpoint_of_another_architecture_is_refused(tmp_path: Path) -> None:
    other, _, _ = create_model("resnet18", 2, pretrained="none")
    torch.save(other.state_dict(), tmp_path / "resnet.pt")
    with pytest.raises(ModelError, match="matches none of the model's"):
        create_model("small_cnn", 2, pretrained=str(tmp_path / "resnet.pt"))


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch exploited",))


def test_malicious_pickle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"state_dict": _Exploit()}, tmp_path / "evil.pt")
    with open(tmp_path / "evil_legacy.pth", "wb") as f:
        pickle.dump({"weight": _Exploit()}, f)
    for name in ("evil.pt", "evil_legacy.pth"):
        with pytest.raises(ModelError) as info:
            create_model("small_cnn", 2, pretrained=str(tmp_path / name))
        assert "\n" not in str(info.value)
    with pytest.raises(ModelError, match=r"refused: it contains the Python object .*system"):
        read_state_dict(tmp_path / "evil.pt")
    assert not (tmp_path / "exploited").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (os.urandom(4096), "not a (readable )?PyTorch file"),
        (b"", r"is empty \(0 bytes\)"),
    ],
)
def test_garbage_files_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "w.pt").write_bytes(content)
    with pytest.raises(ModelError, match=message):
        create_model("small_cnn", 2, pretrained=str(tmp_path / "w.pt"))


@pytest.mark.parametrize("obj", [[1, 2, 3], {"lr": 0.1}, torch.zeros(3), {}])
def test_non_state_dicts_are_refused(tmp_path: Path, obj: object) -> None:
    torch.save(obj, tmp_path / "w.pt")
    with pytest.raises(ModelError, match="does not hold a state dict"):
        create_model("small_cnn", 2, pretrained=str(tmp_path / "w.pt"))


def test_missing_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        create_model("small_cnn", 2, pretrained=str(tmp_path / "nope.pt"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ModelError, match="without weights.pt"):
        create_model("small_cnn", 2, pretrained=str(tmp_path / "empty_dir"))


def test_run_without_card_is_refused(tmp_path: Path) -> None:
    old, _, _ = create_model("small_cnn", 2)
    run = write_run(tmp_path / "run", old, ["a", "b"], "small_cnn")
    (run / "model" / "card.json").unlink()
    with pytest.raises(ModelError, match="no model card"):
        create_model("small_cnn", 2, pretrained=str(run))


def test_corrupt_card_is_refused(tmp_path: Path) -> None:
    old, _, _ = create_model("small_cnn", 2)
    run = write_run(tmp_path / "run", old, ["a", "b"], "small_cnn")
    data = json.loads((run / "model" / "card.json").read_text())
    data["colour"] = "blue"
    (run / "model" / "card.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="unknown key.*colour"):
        create_model("small_cnn", 2, pretrained=str(run))


def test_no_message_in_ocula_suggests_loading_unsafely():
    """torch's own refusal says "re-run with weights_only=False"; ocula's messages must not."""
    source = Path(__file__).parents[2] / "src" / "ocula"
    offenders = [str(p) for p in source.rglob("*.py") if "weights_only=False" in p.read_text()]
    assert not offenders
