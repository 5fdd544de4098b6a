"""n-D spatial transforms: frames, affine matrices, dense fields, warping, composition, Jacobians.

The one internal frame is normalized coordinates in [-1, 1] (``align_corners=True``), vector
components in ``grid_sample`` order; world millimetres appear only at the I/O boundary.
"""

from firereg.spatial.affine import (
    affine_grid,
    apply_affine,
    compose_affine,
    identity_affine,
    invert_affine,
    is_affine,
    to_homogeneous,
)
from firereg.spatial.differential import laplacian
from firereg.spatial.frames import (
    identity_grid,
    normalized_from_voxel,
    normalized_from_world,
    transform_points,
    voxel_from_normalized,
    voxel_from_world,
    world_from_normalized,
    world_from_voxel,
)
from firereg.spatial.grids import grid_to_grid_affine
from firereg.spatial.jacobian import jacobian_determinant, jacobian_matrix
from firereg.spatial.resample import resize_field, resize_image
from firereg.spatial.transform import (
    compose,
    displacement_to_grid,
    grid_to_displacement,
    sample_field,
    sampling_grid,
)
from firereg.spatial.velocity import integrate_velocity
from firereg.spatial.warp import warp, warp_labels

__all__ = [
    "integrate_velocity",
    "affine_grid", "apply_affine", "compose", "compose_affine", "displacement_to_grid",
    "grid_to_displacement", "grid_to_grid_affine", "identity_affine", "identity_grid",
    "invert_affine", "is_affine",
    "jacobian_determinant", "jacobian_matrix", "laplacian", "normalized_from_voxel",
    "normalized_from_world", "resize_field", "resize_image", "sample_field", "sampling_grid",
    "to_homogeneous", "transform_points", "voxel_from_normalized", "voxel_from_world", "warp",
    "warp_labels", "world_from_normalized", "world_from_voxel",
]
