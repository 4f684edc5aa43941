"""The shapes reader against the generator's truth, and the feature-space FID's basic properties."""

from __future__ import annotations

import numpy as np
import pytest

from paris_node.data.shapes import COLOURS, coverage, coverages, render_shape, shape_params
from paris_node.errors import UsageError
from paris_node.evaluate.features import frechet_distance, labels_of
from paris_node.evaluate.quality import check_prompts, held_out_prompts, reader_accuracy
from paris_node.evaluate.shapes_reader import Reading, agreement, read_images, to_uint8


@pytest.mark.parametrize("resolution", [16, 32])
def test_reader_accuracy_on_held_out_real_images(resolution):
    acc = reader_accuracy(resolution, n=300)
    assert acc["background"] >= 0.98 and acc["colour"] >= 0.98 and acc["shape"] >= 0.98, acc


def test_reader_sees_no_shape_on_a_plain_field():
    field = np.zeros((1, 16, 16, 3), dtype=np.uint8) + np.array(COLOURS["blue"], dtype=np.uint8)
    (r,) = read_images(field)
    assert r == Reading("blue", None, None)


def test_reader_is_fooled_by_nothing_swapped():
    """Swapping foreground and background colours of a real image must change what is read."""
    img, caption = render_shape(5, 16)
    shape, colour, background = shape_params(5)[:3]
    (r,) = read_images(np.asarray(img))
    assert (r.shape, r.colour, r.background) == (shape, colour, background)
    a = np.asarray(img).astype(np.int64)
    swapped = np.where((a == COLOURS[background]).all(-1, keepdims=True), COLOURS[colour], COLOURS[background])
    (s,) = read_images(swapped.astype(np.uint8))
    assert (s.colour, s.background) == (background, colour)


def test_fast_coverages_equal_direct_rendering():
    centres = [(20, 30), (33, 41), (17, 17), (45, 46)]
    for resolution in (8, 16, 32):
        fast = coverages("triangle", 17, resolution, centres)
        for k, (cx, cy) in enumerate(centres):
            assert np.array_equal(fast[k], coverage("triangle", cx, cy, 17, resolution))


def test_agreement_counts_each_attribute():
    truths = [("circle", "red", "blue"), ("square", "green", "white")]
    readings = [Reading("blue", "red", "ring"), Reading("white", "green", "square")]
    assert agreement(readings, truths) == {"background": 1.0, "colour": 1.0, "shape": 0.5, "all": 0.5}


def test_to_uint8_matches_the_png_writer():
    import torch

    from paris_node.sampling.images import to_pil

    x = torch.linspace(-1.2, 1.2, 3 * 4 * 4).reshape(1, 3, 4, 4)
    assert np.array_equal(to_uint8(x)[0], np.asarray(to_pil(x)[0]))


def test_prompts_outside_the_vocabulary_are_refused_with_the_vocabulary():
    with pytest.raises(UsageError, match="colours red, orange"):
        check_prompts(["two purple stars on an orange background"])
    with pytest.raises(UsageError):
        check_prompts(["a red circle on a red background"])
    assert check_prompts(["a red circle on a blue background"]) == [("circle", "red", "blue")]


def test_held_out_prompts_are_distinct_and_deterministic():
    a = held_out_prompts(32)
    assert a == held_out_prompts(32) and len(set(a)) == 32
    assert a != held_out_prompts(32, seed=1)


def test_frechet_distance_is_zero_for_identical_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + 1.0) == pytest.approx(8.0, rel=0.05)
    assert frechet_distance(a, a * 2.0) > 1.0


def test_labels_are_attributes_for_shapes_and_captions_otherwise():
    shapes = labels_of(["a red circle on a blue background", "a blue ring on a red background"])
    assert shapes.classes == [6, 8, 8] and shapes.values.shape == (2, 3)
    other = labels_of(["grinning face", "red apple", "grinning face"])
    assert other.classes == [2] and other.values[:, 0].tolist() == [0, 1, 0]
