"""ParameterRanges ↔ search space: AWS's checks, scales, wire strings both ways, the grid."""

from __future__ import annotations

import pytest

from kennel.runtime.tuning.space import SpaceError, from_wire, grid, parse_ranges, to_wire


def _ranges(**kinds):
    return {
        "IntegerParameterRanges": kinds.get("integer", []),
        "ContinuousParameterRanges": kinds.get("continuous", []),
        "CategoricalParameterRanges": kinds.get("categorical", []),
    }


def test_sdk_ranges_map_to_scales_and_wire_strings():
    ranges = parse_ranges(_ranges(
        continuous=[{"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "0.1", "ScalingType": "Auto"}],
        integer=[{"Name": "epochs", "MinValue": "1", "MaxValue": "5", "ScalingType": "Auto"}],
        categorical=[{"Name": "batch_size", "Values": ['"32"', '"64"', '"128"']}],
    ))  # fmt: skip
    by_name = {r.name: r for r in ranges}
    assert by_name["learning_rate"].scaling == "Logarithmic"  # spans two decades
    assert by_name["epochs"].scaling == "Linear"
    wire = to_wire(ranges, {"learning_rate": 0.046565659236665, "epochs": 3.0, "batch_size": '"64"'})
    assert wire == {"learning_rate": "0.046565659236665", "epochs": "3", "batch_size": '"64"'}
    assert from_wire(ranges, wire) == {"learning_rate": 0.046565659236665, "epochs": 3, "batch_size": '"64"'}


def test_reverse_logarithmic_is_searched_as_one_minus_x():
    (r,) = parse_ranges(_ranges(continuous=[
        {"Name": "momentum", "MinValue": "0.9", "MaxValue": "0.999", "ScalingType": "ReverseLogarithmic"}
    ]))  # fmt: skip
    low, high = r.bounds()
    assert low == pytest.approx(0.001) and high == pytest.approx(0.1)
    assert float(r.to_wire(0.01)) == pytest.approx(0.99)
    assert r.from_wire("0.99") == pytest.approx(0.01)
    assert r.from_wire("0.5") is None  # outside the range: not this space's point


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        (_ranges(continuous=[{"Name": "lr", "MinValue": "0.1", "MaxValue": "0.01"}]), "less than or equal"),
        (_ranges(categorical=[{"Name": "c", "Values": [str(i) for i in range(31)]}]), "maximum is 30"),
        (_ranges(integer=[{"Name": "n", "MinValue": "0", "MaxValue": "5", "ScalingType": "Logarithmic"}]),
         "greater than 0"),
        (_ranges(integer=[{"Name": "n", "MinValue": "0", "MaxValue": "1",
                                    "ScalingType": "ReverseLogarithmic"}]), "continuous"),
        (_ranges(continuous=[{"Name": "m", "MinValue": "0.5", "MaxValue": "1",
                                       "ScalingType": "ReverseLogarithmic"}]), "MaxValue < 1"),
        (_ranges(integer=[{"Name": "n", "MinValue": "1.5", "MaxValue": "3"}]), "not a valid integer"),
        (_ranges(continuous=[{"Name": f"p{i}", "MinValue": "0", "MaxValue": "1"} for i in range(31)]),
         "maximum is 30"),
        (_ranges(), "at least one"),
    ],
)  # fmt: skip
def test_bad_ranges_are_refused_with_aws_wording(ranges, message):
    with pytest.raises(SpaceError, match=message):
        parse_ranges(ranges)


def test_grid_is_every_categorical_combination():
    ranges = parse_ranges(_ranges(categorical=[
        {"Name": "a", "Values": ["1", "2", "3"]}, {"Name": "b", "Values": ['"x"', '"y"']},
    ]))  # fmt: skip
    points = grid(ranges)
    assert len(points) == 6
    assert {(p["a"], p["b"]) for p in points} == {(a, b) for a in "123" for b in ('"x"', '"y"')}


def test_grid_refuses_numeric_ranges():
    ranges = parse_ranges(_ranges(continuous=[{"Name": "lr", "MinValue": "0", "MaxValue": "1"}]))
    with pytest.raises(SpaceError, match="categorical ranges only"):
        grid(ranges)
