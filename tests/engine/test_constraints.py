"""max_norm clips exactly the columns above r, to norm r, keeping their direction."""

import numpy as np
import pytest

from app.engine import constraints
from app.engine.constraints import CONSTRAINTS


def test_only_columns_above_r_are_clipped() -> None:
    # Column norms: 1 (below r), 2 (exactly r), 5 (above: 3-4-5 triangle), 0 (zero column).
    kernel = np.array(
        [
            [1.0, 0.0, 3.0, 0.0],
            [0.0, 2.0, 4.0, 0.0],
        ]
    )
    clipped = constraints.get("max_norm", max_value=2.0)(kernel)
    expected = np.array(
        [
            [1.0, 0.0, 1.2, 0.0],  # 3 * 2/5
            [0.0, 2.0, 1.6, 0.0],  # 4 * 2/5
        ]
    )
    np.testing.assert_allclose(clipped, expected, rtol=1e-15)
    np.testing.assert_array_equal(clipped[:, [0, 1, 3]], kernel[:, [0, 1, 3]])  # untouched
    np.testing.assert_array_equal(kernel[:, 2], [3.0, 4.0])  # the input is not modified


def test_random_kernel_norms_after_clipping() -> None:
    rng = np.random.default_rng(0)
    kernel = rng.normal(0.0, 1.5, (6, 8))
    norms = np.sqrt((kernel**2).sum(axis=0))
    assert (norms > 3.0).any() and (norms < 3.0).any()
    clipped = constraints.MaxNorm(max_value=3.0)(kernel)
    new_norms = np.sqrt((clipped**2).sum(axis=0))
    np.testing.assert_allclose(new_norms, np.minimum(norms, 3.0), rtol=1e-14)
    # Direction kept: each clipped column is a positive multiple of the original.
    np.testing.assert_allclose(clipped / kernel, np.broadcast_to(new_norms / norms, (6, 8)))


def test_axis_1_clips_rows() -> None:
    w = np.array([[3.0, 4.0], [0.3, 0.4]])
    np.testing.assert_allclose(
        constraints.get("max_norm", max_value=1.0, axis=1)(w), [[0.6, 0.8], [0.3, 0.4]]
    )


def test_keras_default_is_r_2_over_axis_0() -> None:
    assert constraints.get("max_norm").get_config() == {"max_value": 2.0, "axis": 0}
    assert CONSTRAINTS["max_norm"].defaults() == {"max_value": 2.0, "axis": 0}


def test_bad_parameters_name_the_value() -> None:
    with pytest.raises(ValueError, match=r"max_value=0\.0 is out of range; expected 0 < max_value"):
        constraints.get("max_norm", max_value=0.0)
    with pytest.raises(ValueError, match=r"max_value=-1\.0 is out of range"):
        constraints.MaxNorm(max_value=-1.0)
    with pytest.raises(ValueError, match=r"axis=5 is out of range; expected -2 <= axis <= 1"):
        constraints.get("max_norm", axis=5)
    with pytest.raises(ValueError, match=r"axis=1\.5 is not an integer"):
        constraints.get("max_norm", axis=1.5)
    with pytest.raises(ValueError, match=r"axis=1 does not exist for weights of shape \(3,\)"):
        constraints.get("max_norm", axis=1)(np.ones(3))
    with pytest.raises(ValueError, match="unknown constraint 'unit_norm'; expected one of"):
        constraints.get("unit_norm")


def test_instances_pass_through() -> None:
    c = constraints.max_norm(1.0)
    assert constraints.get(c) is c
