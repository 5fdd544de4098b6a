"""Deriving named brain structures from the Neuromorphometrics atlas and tissue maps."""

from __future__ import annotations

import numpy as np
import pytest

from firereg.data.image import Image
from firereg.data.sources import brain_labels as bl

# real names from SPM's labels_Neuromorphometrics.xml -> the structure they must join (by hand)
REAL_NAMES = {
    "3rd Ventricle": 6, "4th Ventricle": 6, "Right Inf Lat Vent": 6, "Left Lateral Ventricle": 6,
    "Right Accumbens Area": 2, "Left Caudate": 2, "Right Pallidum": 2, "Left Putamen": 2,
    "Right Thalamus Proper": 2, "Right Ventral DC": 2, "Left Basal Forebrain": 2,
    "Brain Stem": 8,
    "Right Cerebellum Exterior": 7, "Left Cerebellum White Matter": 7,
    "Cerebellar Vermal Lobules I-V": 7, "Cerebellar Vermal Lobules VIII-X": 7,
    "Right Cerebral White Matter": 3, "Optic Chiasm": 3,
    "CSF": 5,
    "Right Hippocampus": 1, "Left Amygdala": 1,
    "Right ACgG anterior cingulate gyrus": 1, "Left Calc calcarine cortex": 1,
    "Right Ent entorhinal area": 1, "Left FRP frontal pole": 1, "Right PCu precuneus": 1,
    "Left MPoG postcentral gyrus medial segment": 1, "Right PP planum polare": 1,
    "Left OpIFG opercular part of the inferior frontal gyrus": 1, "Right SCA subcallosal area": 1,
    "Left SPL superior parietal lobule": 1, "Right TTG transverse temporal gyrus": 1,
    "Right vessel": 0, "Left vessel": 0,
}


@pytest.mark.parametrize(("name", "value"), sorted(REAL_NAMES.items()))
def test_structure_of_real_atlas_names(name, value):
    assert bl.structure_of(name) == value


def test_structure_values_match_the_mrbrains_table():
    """The same value means the same structure in every brain dataset of firereg."""
    mrbrains = pytest.importorskip("firereg.data.sources.mrbrains")
    for value, name in bl.SPM_LABELS.items():
        assert mrbrains.BRAIN_LABELS[value] == name


def test_parse_atlas_xml(tmp_path):
    xml = (b'<?xml version="1.0" encoding="ISO-8859-1"?><atlas version="2.0"><header><name>N</name>'
           b'</header><data><label><index>4</index><name>3rd Ventricle</name></label>'
           b'<label><index> 35 </index><name>Brain  Stem</name></label></data></atlas>')
    assert bl.parse_atlas_xml(xml) == {4: "3rd Ventricle", 35: "Brain Stem"}
    path = tmp_path / "a.xml"
    path.write_bytes(xml)
    assert bl.parse_atlas_xml(path) == {4: "3rd Ventricle", 35: "Brain Stem"}
    with pytest.raises(ValueError, match="not a readable atlas XML"):
        bl.parse_atlas_xml(b"<atlas><data>")
    with pytest.raises(ValueError, match="no <label>"):
        bl.parse_atlas_xml(b"<atlas><data/></atlas>")
    with pytest.raises(ValueError, match="appears twice"):
        bl.parse_atlas_xml(b"<a><label><index>1</index><name>x</name></label>"
                           b"<label><index>1</index><name>y</name></label></a>")
    with pytest.raises(ValueError, match="not an integer"):
        bl.parse_atlas_xml(b"<a><label><index>one</index><name>x</name></label></a>")


def test_tissue_labels_take_the_most_probable_tissue_above_the_threshold():
    grey = np.array([0.6, 0.2, 0.1, 0.2, 0.3, 0.0])
    white = np.array([0.3, 0.7, 0.1, 0.2, 0.3, 0.0])
    csf = np.array([0.0, 0.0, 0.5, 0.05, 0.0, 0.0])
    np.testing.assert_array_equal(bl.tissue_labels(grey, white, csf), [1, 3, 5, 0, 1, 0])
    np.testing.assert_array_equal(bl.tissue_labels(grey, white), [1, 3, 0, 0, 1, 0])
    np.testing.assert_array_equal(bl.tissue_labels(grey, white, csf, threshold=0.2), [1, 3, 5, 1, 1, 0])
    with pytest.raises(ValueError, match="differ in shape"):
        bl.tissue_labels(grey, white[:3])


def _grid(shape, spacing, corner):
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = corner
    return Image(np.zeros(shape, np.float32), affine, ndim=3)


def test_derive_resamples_1p5_mm_to_2_mm_in_world_coordinates():
    """SPM's case: a 1.5 mm atlas and a 2 mm grid sharing their corner voxel centre."""
    target = _grid((12, 8, 8), 2.0, (-11.0, 0.0, 0.0))  # x centres -11 .. 11 mm
    atlas = _grid((16, 11, 11), 1.5, (-11.0, 0.0, 0.0))  # x centres -11 .. 11.5 mm
    x_world = atlas.affine[0, 0] * np.arange(16) + atlas.affine[0, 3]
    fine = np.where(x_world[:, None, None] < 0, 183, 52) * np.ones((16, 11, 11), np.int32)
    names = {183: "Left PrG precentral gyrus", 52: "Left Lateral Ventricle"}
    zeros = target.data
    derived = bl.derive_brain_labels(atlas.with_data(fine), names, target, target.with_data(zeros),
                                     target.with_data(zeros))
    x_target = target.affine[0, 0] * np.arange(12) + target.affine[0, 3]
    expected = np.where(x_target < 0, 1, 6)[:, None, None] * np.ones((12, 8, 8), np.int32)
    inner = (slice(None), slice(0, 7), slice(0, 7))  # the atlas ends at 15 mm in y and z
    np.testing.assert_array_equal(derived.labels[inner], expected[inner])
    assert derived.lookup == {52: 6, 183: 1}
    assert derived.groups[1] == ["Left PrG precentral gyrus"] and derived.unassigned == []
    np.testing.assert_array_equal(np.unique(derived.fine[inner]), [52, 183])

    # the same atlas moved 6 mm to the right in the world moves the labels by 3 voxels
    moved = atlas.affine.copy()
    moved[0, 3] += 6.0
    shifted = bl.derive_brain_labels(Image(fine, moved, ndim=3), names, target, target.with_data(zeros),
                                     target.with_data(zeros))
    np.testing.assert_array_equal(shifted.labels[3:, :7, :7], derived.labels[:-3, :7, :7])


def test_derive_refuses_unnamed_values_and_mismatched_maps():
    target = _grid((4, 4, 4), 2.0, (0.0, 0.0, 0.0))
    atlas = target.with_data(np.full((4, 4, 4), 7, np.int32))
    with pytest.raises(ValueError, match=r"label values \[7\] have no name"):
        bl.derive_brain_labels(atlas, {8: "Brain Stem"}, target, target, target)
    other = _grid((5, 4, 4), 2.0, (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="not on the grid"):
        bl.derive_brain_labels(atlas, {7: "Brain Stem"}, target, other, target)
