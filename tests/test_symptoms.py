"""Failure messages name the symptom and print just enough digits (issue 12, "Verdicts that read true")."""
from __future__ import annotations

import pytest

from harness.symptoms import apart, describe_pair, factor_text, symptom


@pytest.mark.parametrize("worst, sizes, want", [
    ({"exact": "0.62", "observed": "nan"}, (), "nan where finite"),
    ({"exact": "nan", "observed": "0.5"}, (), "nan expected"),
    ({"exact": "3.5", "observed": "inf"}, (), "inf where finite"),
    ({"exact": "inf", "observed": "1e38"}, (), "finite where infinite"),
    ({"exact": "-0.25", "observed": "0.25"}, (), "wrong sign"),
    ({"exact": "1e-42", "observed": "0.0"}, (), "flushed to zero"),
    ({"exact": "0", "observed": "1e-3"}, (), "nonzero where exact is 0"),
    ({"exact": "0.8", "observed": "1.6"}, (), "off by a simple factor"),
    ({"exact": "0.8", "observed": "0.1"}, (8, 8), "off by a simple factor"),  # a mean over C = 8
    ({"exact": "1e-8", "observed": "0.0", "rung": "absolute"}, (), "absolute-only cliff"),
    ({"exact": "0.8", "observed": "0.80001"}, (), "inaccurate"),
    ({"exact": "undetermined", "observed": "0.5"}, (), None),
])
def test_symptom(worst, sizes, want):
    assert symptom(worst, sizes=sizes) == want


def test_factor_text_names_the_factor():
    assert factor_text({"exact": "0.8", "observed": "0.1"}, (4, 8)) == "×1/8"
    assert factor_text({"exact": "0.8", "observed": "1.6"}) == "×2"
    assert factor_text({"exact": "0.8", "observed": "0.9"}) is None


def test_digits_tell_exact_and_observed_apart():
    assert apart("0.6213401234", "0.6213401")[:2] == ("0.62134012", "0.6213401")
    assert apart("1.5912345678e-13", "1.59123e-13")[:2] == ("1.591235e-13", "1.59123e-13")
    assert apart("0.5", "0.5")[:2] == ("0.5", "0.5")  # equal: the same text, never invented digits
    assert apart("0.62", "nan")[:2] == ("0.62", "nan")


def test_the_rounded_value_is_shown_where_it_reads_differently():
    """issue 12's example: a float16 gradient of exact 2.12e-1823 (0 in float16) returned as NaN."""
    assert describe_pair({"exact": "2.12e-1823", "observed": "nan", "rounded": "0.0"}, "float16") == \
        "exact 2.12e-1823 → 0 in float16, got nan"
    # where the rounding reads the same at the digits shown, it is left out
    assert describe_pair({"exact": "0.62134", "observed": "0.625", "rounded": "0.62134"}, "float32") == \
        "exact 0.621, got 0.625"
