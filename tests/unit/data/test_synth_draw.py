"""Drawing one synthetic radiograph: a user notices if the default dataset changes between runs with the
same seed (caches and benchmarks stop matching), if odd image shapes break drawing, or if the limb is not
where a radiograph puts it (bright bone and tissue in the middle, dark background at the corners)."""

from __future__ import annotations

import numpy as np
import pytest

from fracture_tune.data.synth_draw import draw_radiograph


def test_same_generator_state_draws_the_same_image_and_other_seeds_do_not() -> None:
    first = draw_radiograph(np.random.default_rng([1, 2]), 40, 48, fractured=True)
    again = draw_radiograph(np.random.default_rng([1, 2]), 40, 48, fractured=True)
    other = draw_radiograph(np.random.default_rng([1, 3]), 40, 48, fractured=True)

    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize(("height", "width"), [(32, 32), (33, 70), (90, 35)])
def test_any_shape_gives_a_finite_image_in_the_unit_range(height: int, width: int) -> None:
    for fractured in (False, True):
        image = draw_radiograph(np.random.default_rng(height * width), height, width, fractured)

        assert image.shape == (height, width)
        assert np.isfinite(image).all()
        assert image.min() >= 0.0 and image.max() <= 1.0


def test_the_limb_is_brighter_than_the_corners() -> None:
    for index in range(10):
        image = draw_radiograph(np.random.default_rng([7, index]), 64, 64, fractured=index % 2 == 1)
        centre = image[24:40, 24:40].mean()
        corners = np.mean([image[:6, :6], image[:6, -6:], image[-6:, :6], image[-6:, -6:]])

        assert centre > corners + 0.05, f"draw {index}: centre {centre:.2f}, corners {corners:.2f}"
