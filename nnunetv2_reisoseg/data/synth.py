"""Synthetic serial-section EM with known isotropic truth, written as an nnU-Net raw dataset.

The tissue is built on a fine isotropic grid at the lateral pixel size (cells with membranes,
mitochondria as curved tubes and ellipsoids in random 3D orientations, vesicles and texture as
distractors), then "imaged": each section integrates the tissue over its thickness, with lateral blur,
noise, section-to-section brightness/contrast jitter and small lateral misalignment.

Sizes are physical, in nm, and do not depend on the grid: mitochondria are 150-600 nm across and up to
2 um long (``MITO_*``), as in neurons, so at 40-50 nm sections they span several sections, which is what
ReIsoSeg is about. Labels are given on the anisotropic grid (mitochondria = 1) by ``section_labels``'s
rule, which keeps every truth object that reaches into a section. The isotropic truth is kept beside the
dataset in ``isotropic_truth/`` so that a prediction can be judged against what was really there (shifted
with its section's misalignment, i.e. in the frame of the image).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from nnunetv2_reisoseg.data.instances import boundary_targets
from nnunetv2_reisoseg.data.raw_dataset import raw_dataset_target, write_dataset_json, write_image
from nnunetv2_reisoseg.errors import InputError
from nnunetv2_reisoseg.io.checks import MAX_VOXEL_NM, MIN_VOXEL_NM, number, probability, voxel_size, whole_numbers
from nnunetv2_reisoseg.io.folders import staged_folder
from nnunetv2_reisoseg.progress import progress_bar


@dataclass
class SynthCase:
    image: np.ndarray  # float32, anisotropic grid (Z, Y, X)
    labels: np.ndarray  # uint8, anisotropic grid
    truth: np.ndarray  # uint8, fine isotropic grid (Z * f, Y, X)
    ids: np.ndarray | None = None  # uint32, anisotropic grid: one id per mitochondrion (instances only)


# mitochondria in neurons: tubes 150-500 nm across and 0.4-2 um long, ellipsoids up to 600 nm across
MITO_TUBE_RADIUS_NM = (75.0, 250.0)
MITO_TUBE_LENGTH_NM = (400.0, 2000.0)
MITO_ELLIPSOID_RADIUS_NM = (75.0, 300.0)
MITO_VOLUME_FRACTION = 0.08
CELL_DIAMETER_NM = 1500.0
MEMBRANE_NM = 20.0  # membranes as they look at this resolution, stain included
CRISTAE_PERIOD_NM = 40.0


def _smooth_curve(rng: np.random.Generator, shape: Sequence[int], length: float, n_points: int = 200) -> np.ndarray:
    """A smooth random 3D curve of about ``length`` voxels in a random orientation, centred in the volume
    (voxel coordinates on the fine grid)."""
    shape_a = np.asarray(shape, dtype=float)
    start = rng.uniform(0.1, 0.9, 3) * shape_a
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    bend = rng.normal(size=(2, 3)) * 0.2 * length
    t = np.linspace(-0.5, 0.5, n_points)[:, None]
    return start + t * length * direction + np.sin(np.pi * t) * bend[0] + np.sin(2 * np.pi * t) * bend[1] * 0.5


def _tubes(shape: Sequence[int], curves: Sequence[np.ndarray], radii: Sequence[float], step: int = 1,
           with_ids: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Union of tubes around curves, from one distance transform: a voxel is inside when it lies
    within the radius of the centre-line point nearest to it. With ``step`` > 1 the distance field
    is computed on a grid ``step`` times coarser and interpolated (8x less work for step 2). With ``with_ids``
    also each voxel's tube (1..n, the nearest centre line's: two tubes that meet share a face)."""
    coarse = tuple(-(-int(s) // step) for s in shape)
    seed_id = np.zeros(coarse, np.int32)
    for i, curve in enumerate(curves, start=1):
        idx = np.round((curve - (step - 1) / 2) / step).astype(int)
        ok = np.all((idx >= 0) & (idx < np.asarray(coarse)), axis=1)
        seed_id[tuple(idx[ok].T)] = i
    if not seed_id.any():
        empty = np.zeros(shape, bool)
        return (empty, np.zeros(shape, np.int32)) if with_ids else empty
    dist, nearest = ndi.distance_transform_edt(seed_id == 0, return_indices=True)
    field = (dist * step - np.asarray([0.0, *radii])[seed_id[tuple(nearest)]]).astype(np.float32)
    ids = seed_id[tuple(nearest)] if with_ids else None
    if step > 1:
        zoom = [s / c for s, c in zip(shape, coarse)]
        field = ndi.zoom(field, zoom, order=1, grid_mode=True, mode="nearest")[: shape[0], : shape[1], : shape[2]]
        if ids is not None:
            ids = ndi.zoom(ids, zoom, order=0, grid_mode=True, mode="nearest")[: shape[0], : shape[1], : shape[2]]
    mask = field <= 0
    return (mask, np.where(mask, ids, 0)) if ids is not None else mask


def _ellipsoid(mask: np.ndarray, rng: np.random.Generator, radii: Sequence[float], ids: np.ndarray | None = None,
               label: int = 0) -> None:
    """Add an ellipsoid in a random 3D orientation to ``mask`` (evaluated in its bounding box only), and as object
    ``label`` to ``ids`` where given."""
    shape = np.asarray(mask.shape)
    center = rng.uniform(0.15, 0.85, 3) * shape
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    r = max(radii)
    lo = np.maximum(np.floor(center - r).astype(int), 0)
    hi = np.minimum(np.ceil(center + r).astype(int) + 1, shape)
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1) - center
    inside = np.square((grid @ q) / np.asarray(radii)).sum(-1) <= 1.0
    mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= inside
    if ids is not None:
        ids[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][inside] = label


def _cell_membranes(rng: np.random.Generator, shape: Sequence[int], n_cells: int, width: float) -> np.ndarray:
    """Voronoi cells around random centres; membranes of ``width`` voxels where the nearest and the
    second-nearest centre are about equally far (computed per z slab to bound memory)."""
    seeds = rng.uniform(0, 1, (n_cells, 3)) * np.asarray(shape)
    zz, yy, xx = (np.arange(n, dtype=np.float32) for n in shape)
    out = np.zeros(shape, bool)
    for z0 in range(0, shape[0], 32):
        z = zz[z0:z0 + 32, None, None]
        d1 = np.full((len(z), shape[1], shape[2]), np.inf, np.float32)
        d2 = d1.copy()
        for cz, cy, cx in seeds:
            d = np.sqrt((z - cz) ** 2 + (yy[None, :, None] - cy) ** 2 + (xx[None, None, :] - cx) ** 2)
            d2 = np.minimum(d2, np.maximum(d1, d))
            d1 = np.minimum(d1, d)
        out[z0:z0 + len(z)] = d2 - d1 <= width  # d2 - d1 is twice the distance to the bisecting plane
    return out


def section_labels(truth: np.ndarray, f: int) -> np.ndarray:
    """Labels of the sections from a boolean isotropic truth (``f`` fine slices per section).

    The rule: a pixel is labelled where the truth fills at least half of the section's thickness. An
    object (3D connected component of the truth) that reaches into a section without filling half of it
    anywhere is labelled there too: on the pixels it reaches that touch (8-neighbourhood) its labels in
    the section above or below, so it stays one object; where it touches none, on the pixels it fills
    most. So no object visible in a section vanishes from that section's labels."""
    import cc3d

    z = truth.shape[0] // f
    labels = truth.reshape(z, f, *truth.shape[1:]).mean(1) >= 0.5
    anchors = labels.copy()  # the half-filled pixels: what the top-ups connect to
    ids = cc3d.connected_components(truth, connectivity=26)
    slabs = ids.reshape(z, f, *truth.shape[1:])
    ring = np.ones((3, 3), bool)
    for s in range(z):
        present = set(np.unique(slabs[s]).tolist()) - {0}
        for j in sorted(present - set(np.unique(slabs[s][:, anchors[s]]).tolist())):
            reach = (slabs[s] == j).any(0)
            nearby = np.zeros(reach.shape, bool)
            for t in (s - 1, s + 1):
                if 0 <= t < z:
                    nearby |= anchors[t] & (slabs[t] == j).any(0)
            grown = reach & ndi.binary_dilation(nearby, ring)
            if grown.any():
                labels[s] |= grown
            else:
                cover = (slabs[s] == j).sum(0)
                labels[s] |= cover == cover.max()
    return labels


def _n_objects(rng: np.random.Generator, volume_nm3: float, xy_nm: float) -> tuple[list, list, int]:
    """Tube radii and lengths (voxels) and the number of ellipsoids that fill ``MITO_VOLUME_FRACTION``."""
    radii, lengths, filled, n_ellipsoids = [], [], 0.0, 0
    while filled < MITO_VOLUME_FRACTION * volume_nm3 and len(radii) + n_ellipsoids < 200:
        if rng.random() < 0.7:
            r, length = rng.uniform(*MITO_TUBE_RADIUS_NM), rng.uniform(*MITO_TUBE_LENGTH_NM)
            radii.append(r / xy_nm)
            lengths.append(length / xy_nm)
            filled += np.pi * r * r * length
        else:
            n_ellipsoids += 1
            filled += 4 / 3 * np.pi * float(np.mean(MITO_ELLIPSOID_RADIUS_NM)) ** 3
    return radii, lengths, n_ellipsoids


def generate_case(
    rng: np.random.Generator,
    shape: Sequence[int],
    anisotropy: int,
    xy_nm: float = 10.0,
    missing_section: bool = False,
    membranes_class: bool = False,
    instances: bool = False,
    touching: float = 0.0,
) -> SynthCase:
    """One simulated EM volume of ``shape`` (anisotropic grid, sections ``anisotropy`` x ``xy_nm`` nm thick)
    and its truth: mitochondria = 1 and, with ``membranes_class``, cell membranes = 2 (thin sheets, the hard
    case for coarse sections). With ``instances`` each mitochondrion keeps its id, has its own dark membrane (so
    that two that touch are told apart in the image, as in EM), and with probability ``touching`` a tube gets a
    sibling pressed against it."""
    f = int(anisotropy)
    if f < 1 or f != anisotropy:
        raise ValueError(f"the section thickness must be a whole number of lateral pixels, got {anisotropy}")
    z, y0, x0 = (int(s) for s in shape)
    # misalignment: each section is cut from a slightly shifted window of a wider tissue, not wrapped around
    shifts = np.round(np.cumsum(rng.normal(0, 0.6, (z, 2)), 0)).astype(int)
    shifts -= np.round(shifts.mean(0)).astype(int)
    m = int(np.abs(shifts).max())
    y, x = y0 + 2 * m, x0 + 2 * m
    fine = (z * f, y, x)
    vol = float(np.prod(fine))
    mito, ids = _mitochondria(rng, fine, xy_nm, instances, touching)
    cells = max(3, round(vol * xy_nm**3 / CELL_DIAMETER_NM**3))
    membranes = _cell_membranes(rng, fine, cells, width=max(2.0, MEMBRANE_NM / xy_nm)) & ~mito
    vesicles = np.zeros(fine, bool)
    vesicles[tuple((rng.uniform(0, 1, (max(2, int(vol / 8000)), 3)) * np.asarray(fine)).astype(int).T)] = True
    vesicle_rim = ndi.binary_dilation(vesicles, iterations=2) & ~ndi.binary_dilation(vesicles, iterations=1) & ~mito

    # intensities: bright cytoplasm with texture, dark membranes, dark double-membraned mitochondria
    # with striped cristae, small dark vesicle rims
    tissue = ndi.gaussian_filter(rng.standard_normal(size=fine, dtype=np.float32), 1.5)
    tissue *= 0.6
    tissue += 0.62
    mito_inner = ndi.binary_erosion(mito, iterations=1) if ids is None else _inner(ids)
    k = 2 * np.pi * xy_nm / CRISTAE_PERIOD_NM
    cristae = 0.5 + 0.5 * np.sin(np.arange(fine[1])[:, None] * k * 0.88 + np.arange(fine[2])[None, :] * k * 0.47)
    tissue[mito] = 0.25
    tissue[mito_inner] = np.broadcast_to(0.38 + 0.12 * cristae.astype(np.float32), fine)[mito_inner]
    tissue[membranes] = 0.22
    tissue[vesicle_rim] = 0.3

    # imaging: section integration over its thickness, lateral blur, per-section jitter, misalignment
    sections = tissue.reshape(z, f, y, x).mean(1)
    sections = ndi.gaussian_filter(sections, (0, 0.8, 0.8))
    gain = rng.normal(1.0, 0.05, (z, 1, 1))
    offset = rng.normal(0.0, 0.03, (z, 1, 1))
    sections = sections * gain + offset
    truth = mito.astype(np.uint8)
    if membranes_class:
        truth[membranes] = 2
    windows = [(slice(m - sy, m - sy + y0), slice(m - sx, m - sx + x0)) for sy, sx in shifts]
    # the truth moves with its section (it is judged in the frame that was imaged) and is labelled there
    sections = np.stack([sections[s][w] for s, w in enumerate(windows)])
    truth = np.concatenate([truth[s * f:(s + 1) * f][(slice(None), *w)] for s, w in enumerate(windows)])
    labels = section_labels(truth == 1, f).astype(np.uint8)
    section_ids = None
    if ids is not None:
        moved = np.concatenate([ids[s * f:(s + 1) * f][(slice(None), *w)] for s, w in enumerate(windows)])
        section_ids = _section_ids(moved, labels, f)
    if membranes_class:
        # a membrane crossing a section obliquely still darkens it: label where it covers a third
        labels[((truth == 2).reshape(z, f, y0, x0).mean(1) >= 1 / 3) & (labels == 0)] = 2
    sections += rng.normal(0, 0.04, sections.shape)
    if missing_section and z > 2:
        s = int(rng.integers(1, z - 1))
        sections[s] = sections[s].mean() + rng.normal(0, 0.04, sections[s].shape)
    image = np.clip(sections * 255.0, 0, 255).astype(np.float32)
    return SynthCase(image=image, labels=labels, truth=truth, ids=section_ids)


def _mitochondria(rng: np.random.Generator, fine: tuple[int, int, int], xy_nm: float, instances: bool,
                  touching: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The mitochondria of a case on the fine grid (tubes, then ellipsoids), and with ``instances`` their ids."""
    radii, lengths, n_ellipsoids = _n_objects(rng, float(np.prod(fine)) * xy_nm**3, xy_nm)
    step = max(1, int(min(radii, default=8.0) // 4))  # the distance field on a coarser grid where tubes are wide
    curves = [_smooth_curve(rng, fine, n) for n in lengths]
    ids = None
    if instances:
        curves, radii = _touching_pairs(rng, curves, radii, touching, xy_nm)
        mito, ids = _tubes(fine, curves, radii, step=step, with_ids=True)
    else:
        mito = _tubes(fine, curves, radii, step=step)
    for k in range(n_ellipsoids):
        _ellipsoid(mito, rng, rng.uniform(*MITO_ELLIPSOID_RADIUS_NM, 3) / xy_nm, ids, len(curves) + 1 + k)
    return mito, ids


def _touching_pairs(rng: np.random.Generator, curves: list[np.ndarray], radii: list[float], p: float,
                    xy_nm: float) -> tuple[list[np.ndarray], list[float]]:
    """With probability ``p`` per tube, a sibling tube pressed against it: its centre line the same curve moved
    sideways by less than both radii, so the two meet on a shared face (``_tubes`` gives each voxel the nearer)."""
    if not p:
        return curves, radii
    curves, radii = list(curves), list(radii)
    for c, r in list(zip(curves, radii)):
        if rng.random() >= p:
            continue
        r2 = rng.uniform(*MITO_TUBE_RADIUS_NM) / xy_nm
        direction = c[-1] - c[0]
        direction /= max(np.linalg.norm(direction), 1e-9)
        side = rng.normal(size=3)
        side -= side.dot(direction) * direction
        side /= max(np.linalg.norm(side), 1e-9)
        curves.append(c + side * max(1.0, 2 * min(r, r2) - 1))
        radii.append(r2)
    return curves, radii


def _inner(ids: np.ndarray) -> np.ndarray:
    """The voxels of an object whose six neighbours are all that object (``binary_erosion`` of each object): what
    is left is each object's own rim, also where two objects meet."""
    cross = ndi.generate_binary_structure(3, 1)
    lo = ndi.minimum_filter(ids, footprint=cross, mode="constant", cval=0)
    hi = ndi.maximum_filter(ids, footprint=cross, mode="constant", cval=0)
    return (ids != 0) & (lo == hi)


def _section_ids(ids: np.ndarray, labels: np.ndarray, f: int) -> np.ndarray:
    """Each labelled pixel of the sections gets the id that fills most of its section's thickness there."""
    z = labels.shape[0]
    col = ids.reshape(z, f, *ids.shape[1:])
    counts = np.stack([((col == col[:, [j]]) & (col[:, [j]] != 0)).sum(1) for j in range(f)], axis=1)
    best = np.take_along_axis(col, counts.argmax(1)[:, None], axis=1)[:, 0]
    return np.where(labels != 0, best, 0).astype(np.uint32)


def save_preview(image: np.ndarray, labels: np.ndarray, anisotropy: float, path: Path) -> None:
    """An xy section and an xz section (stretched to physical proportions) with labels overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z, y, _ = image.shape
    views = [("xy section", image[z // 2], labels[z // 2], 1.0),
             ("xz section", image[:, y // 2], labels[:, y // 2], float(anisotropy))]
    with plt.style.context("default"):
        fig, axes = plt.subplots(2, 2, figsize=(10, 7), gridspec_kw={"height_ratios": [1, 1]})
        for row, (title, img, lab, aspect) in enumerate(views):
            for col, overlay in enumerate((False, True)):
                ax = axes[row, col]
                ax.imshow(img, cmap="gray", aspect=aspect, interpolation="nearest")
                if overlay:
                    ax.imshow(np.ma.masked_equal(lab, 0), cmap="autumn", alpha=0.45, aspect=aspect,
                              interpolation="nearest")
                ax.set_title(title + (", mitochondria labels" if overlay else ""), fontsize=9)
                ax.axis("off")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)


@dataclass(frozen=True, kw_only=True)
class SynthSpec:
    """What ``generate_dataset`` generates: how many cases of which grid, and the options of the data."""

    cases: int = 20
    shape: tuple[int, int, int] = (32, 256, 256)
    anisotropy: int = 8  # section thickness in lateral pixels
    xy_nm: float = 5.0
    seed: int = 0
    test_cases: int = 0
    membranes_class: bool = False
    missing_sections: float = 0.0  # probability that a case has one section lost to noise (damaged sections)
    # one id per mitochondrion, kept in instancesTr/ and instancesTs/, each with its own membrane in the image
    instances: bool = False
    touching: float = 0.0  # with instances: probability that a tube gets a sibling pressed against it
    boundary_nm: float | None = None  # boundary targets of this thickness for nnU-Net (implies instances)

    @property
    def keeps_ids(self) -> bool:
        return self.instances or self.boundary_nm is not None

    def check(self) -> None:
        """Refuse, before anything is written, what would fail or generate nonsense (``io.checks``)."""
        if self.cases < 1 or self.test_cases < 0:
            raise InputError(f"--cases must be >= 1 and --test-cases >= 0, got {self.cases} and {self.test_cases}")
        whole_numbers(self.shape, "--shape", 3, 1)
        number(self.xy_nm, "--xy-nm (or the lateral --voxel-size)", MIN_VOXEL_NM, MAX_VOXEL_NM,
               what="a pixel size in nm")
        whole_numbers([self.anisotropy], "--anisotropy (section thickness in lateral pixels)", 1, 1)
        voxel_size((self.xy_nm * self.anisotropy, self.xy_nm, self.xy_nm), "--voxel-size")
        probability(self.missing_sections, "--missing-sections")
        if self.seed < 0:
            raise InputError(f"--seed must be >= 0 (numpy's generators take no negative seed), got {self.seed}")
        probability(self.touching, "--touching")
        if self.touching and not self.keeps_ids:
            raise InputError("--touching places touching pairs of mitochondria told apart by their ids: add "
                             "--instances (or --boundary-nm)")
        if self.boundary_nm is not None:
            number(self.boundary_nm, "--boundary-nm", 0.0, 1e6, low_open=True, what="a thickness in nm")
            if self.membranes_class:
                raise InputError("--boundary-nm trains background / mitochondria / boundary; --membranes would be a "
                                 "fourth class: give one")


def grid_of(voxel_size_nm: Sequence[float]) -> tuple[int, float]:
    """``--voxel-size Z Y X`` as the generator's grid: (anisotropy, lateral pixel in nm); sections must be a
    whole number of equal lateral pixels."""
    vz, vy, vx = voxel_size(voxel_size_nm, "--voxel-size")
    if vy != vx or abs(vz / vy - round(vz / vy)) > 1e-6 or round(vz / vy) < 1:
        raise InputError(f"--voxel-size {vz:g} {vy:g} {vx:g}: the lateral axes must be equal and the section "
                         "thickness a whole number of lateral pixels (e.g. 40 10 10 or 45 5 5)")
    return round(vz / vy), vy


def _write_labels(c: SynthCase, spec: SynthSpec, spacing: tuple[float, ...], tmp: Path, folder: str,
                  case_id: str) -> None:
    """The case's labels (boundary targets from its ids with ``spec.boundary_nm``) and, with ids, the ids in
    instancesTr/ or instancesTs/ beside them."""
    labels = c.labels
    if c.ids is not None:
        ids_folder = tmp / folder.replace("labels", "instances")
        ids_folder.mkdir(exist_ok=True)
        write_image(c.ids, spacing, ids_folder / f"{case_id}.nii.gz")
        if spec.boundary_nm is not None:
            labels = boundary_targets(c.ids, spacing, spec.boundary_nm)
    write_image(labels, spacing, tmp / folder / f"{case_id}.nii.gz")


def generate_dataset(raw_root: str | os.PathLike, dataset_id: int, name: str, spec: SynthSpec | None = None,
                     overwrite: bool = False, progress: bool = True) -> Path:
    """Write ``DatasetXXX_NAME`` under ``raw_root`` (imagesTr, labelsTr, dataset.json, isotropic_truth/,
    preview.png of the first case, and imagesTs/labelsTs when ``spec.test_cases``). Written to a temporary
    folder first and moved into place at the end, so a failure leaves nothing behind."""
    spec = spec or SynthSpec()
    cases, shape, anisotropy, xy_nm, seed = spec.cases, spec.shape, spec.anisotropy, spec.xy_nm, spec.seed
    test_cases, membranes_class, missing_sections = spec.test_cases, spec.membranes_class, spec.missing_sections
    spec.check()
    target, clashes = raw_dataset_target(raw_root, dataset_id, name, overwrite)
    rng = np.random.default_rng(seed)
    spacing = (xy_nm * anisotropy, xy_nm, xy_nm)
    with staged_folder(target, "synth", replaces=clashes) as tmp:
        for sub in ("imagesTr", "labelsTr", "isotropic_truth") + (("imagesTs", "labelsTs") if test_cases else ()):
            (tmp / sub).mkdir()
        total = cases + test_cases
        bar = progress_bar(total, "synth: cases", "case", show=progress)
        for i in range(total):
            split = ("imagesTr", "labelsTr") if i < cases else ("imagesTs", "labelsTs")
            case_id = f"{name.lower()}_{i:03d}"
            missing = bool(missing_sections) and bool(rng.random() < missing_sections)
            c = generate_case(rng, shape, anisotropy, xy_nm, missing_section=missing, membranes_class=membranes_class,
                              instances=spec.keeps_ids, touching=spec.touching)
            write_image(c.image, spacing, tmp / split[0] / f"{case_id}_0000.nii.gz")
            _write_labels(c, spec, spacing, tmp, split[1], case_id)
            write_image(c.truth, (xy_nm, xy_nm, xy_nm), tmp / "isotropic_truth" / f"{case_id}.nii.gz")
            if i == 0:
                save_preview(c.image, c.labels, anisotropy, tmp / "preview.png")
            bar.update()
        bar.close()
        second = {"membranes": 2} if membranes_class else {"boundary": 2} if spec.boundary_nm is not None else {}
        write_dataset_json(tmp, {"background": 0, "mitochondria": 1, **second},
                           cases, name, f"reisoseg synth: anisotropy {anisotropy}, {xy_nm} nm lateral, seed {seed}",
                           spacing, provenance=("synthetic data generated by reisoseg synth", "reisoseg synth"))
    return target


@dataclass
class SynthCommand:
    """Everything ``reisoseg synth`` was asked, named as its options."""

    dataset_id: int = 901
    name: str = "SynthEM"
    cases: int = 20
    test_cases: int = 0
    shape: Sequence[int] = (32, 256, 256)
    voxel_size: Sequence[float] | None = None
    anisotropy: int = 8
    xy_nm: float = 5.0
    seed: int = 0
    membranes: bool = False
    missing_sections: float = 0.0
    instances: bool = False
    touching: float = 0.0
    boundary_nm: float | None = None
    overwrite: bool = False

    def run(self) -> Path:
        """The dataset in ``$nnUNet_raw``, its grid from ``voxel_size`` where given (else ``anisotropy`` and
        ``xy_nm``)."""
        from nnunetv2_reisoseg.io.datasets import env_folder

        raw = env_folder("nnUNet_raw")
        anisotropy, xy_nm = grid_of(self.voxel_size) if self.voxel_size is not None else (self.anisotropy,
                                                                                            self.xy_nm)
        spec = SynthSpec(cases=self.cases, shape=tuple(self.shape), anisotropy=anisotropy, xy_nm=xy_nm,
                         seed=self.seed, test_cases=self.test_cases, membranes_class=self.membranes,
                         missing_sections=self.missing_sections, instances=self.instances, touching=self.touching,
                         boundary_nm=self.boundary_nm)
        path = generate_dataset(raw, self.dataset_id, self.name, spec, self.overwrite)
        print(f"wrote {path}")
        return path
