import pytest

from ocula.config import TrainConfig, parse_duration
from ocula.errors import ConfigError


def test_every_default_is_written_out():
    values = TrainConfig(data="photos").to_dict()
    assert values["mode"] == "finetune" and values["model"] == "tf_efficientnet_lite0"
    assert TrainConfig.from_dict(values) == TrainConfig(data="photos")


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        TrainConfig.from_dict({"data": "x", "epocs": 3})


@pytest.mark.parametrize("field, value", [("val_fraction", 1.5), ("epochs", 0), ("lr", -1.0),
                                          ("imbalance", "sometimes"), ("mix", "mixupp")])
def test_bad_values_are_refused_with_their_name(field, value):
    with pytest.raises(ConfigError, match=field if field not in ("imbalance", "mix") else "unknown"):
        TrainConfig(data="x", **{field: value})


@pytest.mark.parametrize("changes, said", [
    ({"consistency": -1.0}, "use 0"),
    ({"consistency": 12.0}, "use it with --augment phone"),
    ({"consistency": 12.0, "augment": "phone", "mix": "mixup"}, "does not combine with --mix"),
])
def test_consistency_needs_the_phone_policy_and_no_mixing(changes, said):
    with pytest.raises(ConfigError, match=f"consistency=.*{said}"):
        TrainConfig(data="x", **changes)
    assert TrainConfig(data="x", augment="phone-without:jpeg", consistency=12.0).consistency_weight == 12.0


def test_consistency_is_on_by_default_with_the_phone_policy_only():
    assert TrainConfig(data="x", augment="phone").consistency_weight == 12.0
    assert TrainConfig(data="x", augment="phone", consistency=0).consistency_weight == 0.0
    assert TrainConfig(data="x", augment="phone", mix="cutmix").consistency_weight == 0.0
    assert TrainConfig(data="x").consistency_weight == 0.0  # crop


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1.5h", 5400), ("45", 45), (30, 30)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["ten minutes", "-5m", "0"])
def test_bad_durations(text):
    with pytest.raises(ConfigError):
        parse_duration(text)


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:pw@db:5432/ocula", "postgresql://u:***@db:5432/ocula"),
    ("postgresql://db/ocula?user=u&password=s3cret&sslmode=require",
     "postgresql://db/ocula?user=u&password=***&sslmode=require"),
    ("postgresql+psycopg://u@db/x?sslpassword=k&PWD=p", "postgresql+psycopg://u@db/x?sslpassword=***&PWD=***"),
    ("s3://bucket/runs?access_key=AK&secret_key=SK&region=eu", "s3://bucket/runs?access_key=***&secret_key=***&region=eu"),
    ("sqlite:////tmp/study.db", "sqlite:////tmp/study.db"),
])
def test_storage_urls_never_show_a_password(url, shown):
    from ocula.errors import mask_url

    assert mask_url(url) == shown


def test_a_study_storage_error_masks_a_password_in_the_query(tmp_path):
    from ocula.errors import UsageError
    from ocula.tune.study import settings as study_settings

    url = "postgresql://127.0.0.1:1/ocula?user=u&password=s3cret&connect_timeout=1"
    with pytest.raises(UsageError) as caught:
        study_settings("s", url)
    assert "s3cret" not in str(caught.value) and "password=***" in str(caught.value)
