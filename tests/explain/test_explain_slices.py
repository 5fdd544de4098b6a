"""The 3D slice chooser and the plane extraction of firereg.explain.slices."""

import numpy as np
import pytest
from explain_helpers import blob

from firereg.explain.slices import View, choose_slices, slice_centre, take


def test_slices_pass_through_a_label_blobs_centroid():
    shape = (30, 26, 22)
    labels = np.zeros(shape, dtype=np.int32)
    labels[blob(shape, (20.0, 7.0, 12.0), (4, 3, 5)) > 0.5] = 3
    views, choice = choose_slices(shape, labels=labels)
    assert choice.centre == (20, 7, 12)
    assert "largest label region (label 3)" in choice.how
    assert {v.name: (v.axis, v.index) for v in views} == {"axial": (2, 12), "coronal": (1, 7),
                                                          "sagittal": (0, 20)}


def test_labels_of_interest_win_over_the_largest_region_and_images_fall_back_to_mass():
    shape = (20, 20, 20)
    labels = np.zeros(shape, dtype=np.int32)
    labels[8:19, 0:11, 5:16] = 1  # centroid (13, 5, 10)
    labels[4:7, 12:15, 7:10] = 2  # centroid (5, 13, 8)
    assert slice_centre(shape, labels=labels, labels_of_interest=[2]).centre == (5, 13, 8)
    assert slice_centre(shape, labels=labels).centre == (13, 5, 10)  # label 1 is larger
    missing = slice_centre(shape, labels=labels, labels_of_interest=[7])
    assert missing.centre == (13, 5, 10) and "none of the labels of interest" in missing.how
    image = -np.ones(shape)
    image[15, 3, 9] = 1.0
    chosen = slice_centre(shape, image=image)
    assert chosen.centre == (15, 3, 9) and "centre of mass" in chosen.how
    assert slice_centre(shape, labels=np.zeros(shape, int), image=image).centre == (15, 3, 9)
    with pytest.raises(ValueError, match="labels of shape"):
        slice_centre(shape, labels=np.zeros((3, 3, 3), int))


def test_take_orients_planes_for_imshow_origin_lower():
    volume = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    axial = take(volume, View("axial", 2, 3))
    assert axial.shape == (5, 4)  # rows: axis 1 (bottom to top), columns: axis 0 (left to right)
    assert axial[2, 1] == volume[1, 2, 3]
    sagittal = take(volume, View("sagittal", 0, 2))
    assert sagittal.shape == (6, 5) and sagittal[4, 3] == volume[2, 3, 4]
    # a feature grid of a quarter the size: the same plane, rescaled
    features = np.zeros((7, 1, 2, 3))  # (C, *S/4) for an image grid (4, 8, 12)... axis 2: 12 -> 3
    assert take(features, View("axial", 2, 11), image_shape=(4, 8, 12)).shape == (7, 2, 1)
    assert View("axial", 2, 11).index_on((4, 8, 12), (1, 2, 3)) == 2
    assert take(np.ones((3, 4)), View("image")).shape == (4, 3)
