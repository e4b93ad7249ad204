from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocula.data import Sample, stratified_split
from ocula.errors import UsageError


def dataset(counts: dict[str, int]) -> list[Sample]:
    return [Sample(f"/d/{label}/{i}.jpg", label) for label, n in counts.items() for i in range(n)]


def test_deterministic_and_order_independent() -> None:
    samples = dataset({"a": 20, "b": 7, "c": 3})
    first = stratified_split(samples, 0.2, seed=1)
    assert stratified_split(samples, 0.2, seed=1) == first
    train, val = stratified_split(list(reversed(samples)), 0.2, seed=1)
    assert set(train) == set(first[0]) and set(val) == set(first[1])
    assert stratified_split(samples, 0.2, seed=2) != first


def test_stratified_and_keeps_input_order() -> None:
    samples = dataset({"a": 50, "b": 10, "single": 1})
    train, val = stratified_split(samples, 0.2)
    assert Counter(s.label for s in val) == {"a": 10, "b": 2}
    assert [s for s in samples if s in set(train)] == train
    assert [s for s in samples if s in set(val)] == val


def test_small_classes_get_one_val_image_singletons_stay_in_train() -> None:
    train, val = stratified_split(dataset({"a": 2, "b": 2, "c": 1}), 0.05)
    assert Counter(s.label for s in val) == {"a": 1, "b": 1}
    assert Counter(s.label for s in train) == {"a": 1, "b": 1, "c": 1}


def test_adding_a_class_does_not_reshuffle_others() -> None:
    _, before = stratified_split(dataset({"a": 30}), 0.2, seed=3)
    _, after = stratified_split(dataset({"a": 30, "b": 30}), 0.2, seed=3)
    assert [s for s in after if s.label == "a"] == before


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_fraction_must_be_inside_zero_one(fraction: float) -> None:
    with pytest.raises(UsageError, match="between 0 and 1"):
        stratified_split(dataset({"a": 4}), fraction)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 40), min_size=1),
    st.floats(0.05, 0.95),
    st.integers(0, 2**32),
)
def test_split_sizes_property(counts: dict[str, int], fraction: float, seed: int) -> None:
    samples = dataset(counts)
    train, val = stratified_split(samples, fraction, seed)
    assert sorted(train + val, key=lambda s: s.path) == sorted(samples, key=lambda s: s.path)
    assert not set(train) & set(val)
    in_val = Counter(s.label for s in val)
    for label, n in counts.items():
        if n == 1:
            assert in_val[label] == 0
        else:
            assert 1 <= in_val[label] <= n - 1
            assert abs(in_val[label] - fraction * n) <= 1
