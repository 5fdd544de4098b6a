"""The synthetic phantom tree is read by the ACDC adapter and the cine datasets as real ACDC is."""

import torch

from firereg.data.datasets import CinePairDataset
from firereg.data.preprocessing import PreprocessConfig
from firereg.data.sources.acdc import acdc_cases, acdc_test_pair
from firereg.data.sources.cardiac_phantom import PhantomConfig, write_acdc_phantom
from firereg.data.volume_store import VolumeStore

SMALL = PhantomConfig(size=(72, 72), pixel_spacing_mm=2.7, num_slices=4, slice_spacing_mm=13.0,
                      num_phases=20, supersample=2, through_plane_samples=2)


def test_phantom_tree_reads_as_acdc_and_feeds_the_datasets(tmp_path):
    written = write_acdc_phantom(tmp_path, 2, SMALL, seed=3)
    read = acdc_cases(tmp_path)
    assert [c.name for c in read] == [c.name for c in written]
    for a, b in zip(read, written, strict=True):
        assert (a.ed, a.es) == (b.ed, b.es) and a.cine == b.cine
        assert a.frame_labels == b.frame_labels
    pair = acdc_test_pair(read[0])
    assert (pair.moving, pair.fixed) == (read[0].es, read[0].ed)

    store = VolumeStore(PreprocessConfig(spacing=2.7))
    test = CinePairDataset(read, mode="test", dims=2, store=store)
    assert len(test) == 2 * SMALL.num_slices
    lv_es = sum(int((s.labels_a == 3).sum()) for s in test)
    lv_ed = sum(int((s.labels_b == 3).sum()) for s in test)
    assert lv_es < 0.8 * lv_ed  # the synthetic heart contracts
    train = CinePairDataset(read, mode="train", dims=2, store=store)
    assert len(train) == 2 * SMALL.num_slices * (SMALL.num_phases - 1)
    assert torch.isfinite(train[5].x_a).all()
