"""Boundary targets separate touching objects per section, without turning thin objects into boundary."""
import numpy as np
import pytest

from nnunetv2_reisoseg.data.instances import BOUNDARY, INTERIOR, boundary_targets, downsample_ids, touching_ids

SPACING = (40.0, 5.0, 5.0)


def test_a_touching_pair_is_split_by_its_boundary_in_every_section():
    import cc3d

    ids = np.zeros((3, 30, 40), np.uint32)
    ids[:, 5:25, 5:20], ids[:, 5:25, 20:35] = 4, 8  # touching along x in every section
    t = boundary_targets(ids, SPACING, 10.0)  # 2 pixels
    assert set(np.unique(t)) == {0, INTERIOR, BOUNDARY}
    interiors = cc3d.connected_components(t == INTERIOR, connectivity=26)
    assert interiors.max() == 2  # the interiors no longer touch: one seed per object
    assert (t[:, 10, 18:22] == BOUNDARY).all()  # two pixels each side of the contact
    assert (t[:, 10, 8:17] == INTERIOR).all() and (t[:, 10, 5:7] == BOUNDARY).all()


def test_across_sections_only_contacts_of_two_ids_are_boundary():
    ids = np.zeros((4, 20, 20), np.uint32)
    ids[0:2, 3:17, 3:17] = 1  # spans two sections: its top and bottom faces stay interior
    ids[2:4, 3:17, 3:17] = 2  # sits on object 1: their contact is boundary on both sides
    t = boundary_targets(ids, SPACING, 5.0)
    assert (t[0, 8:12, 8:12] == INTERIOR).all()
    assert (t[1, 8:12, 8:12] == BOUNDARY).all() and (t[2, 8:12, 8:12] == BOUNDARY).all()
    assert (t[3, 8:12, 8:12] == INTERIOR).all()
    lone = np.zeros((1, 20, 20), np.uint32)
    lone[0, 4:16, 4:16] = 3
    assert (boundary_targets(lone, (40.0, 5.0, 5.0), 5.0)[0, 5:15, 5:15] == INTERIOR).all()
    with pytest.raises(ValueError, match="> 0 nm"):
        boundary_targets(ids, SPACING, 0)


def test_ids_downsample_by_majority_and_touching_objects_are_found():
    ids = np.zeros((2, 4, 4), np.uint64)
    ids[:, :2, :2] = 2**40
    ids[0, 2:, 2:] = 5  # a tie of 5 and background in its block: to the id
    ids[:, 0, 3] = 7  # a minority in its block
    small = downsample_ids(ids, (2, 2, 2))
    assert small.tolist() == [[[2**40, 0], [0, 5]]] and small.dtype == np.uint64
    assert touching_ids(ids) == {5, 2**40}  # corner to corner: 26-neighbours
    assert touching_ids(np.array([[[1, 2, 0, 3]]])) == {1, 2}
