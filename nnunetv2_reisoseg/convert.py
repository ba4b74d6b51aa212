"""Real EM volumes (HDF5, TIFF or a folder of slices, zarr / OME-Zarr, MRC) into an nnU-Net raw dataset.

EM datasets are often one or two large volumes; ``split`` cuts each into blocks so that nnU-Net's
5-fold cross-validation has cases. Voxel sizes are written in nm, taken from the file (HDF5
``resolution`` / ``element_size_um``, OME-Zarr ``multiscales``, MRC header, ImageJ TIFF tags) or
from ``spacing``. Everything is written to a staging folder first, so an error leaves nothing behind.
"""
from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnunetv2_reisoseg.fsutil import raw_dataset_target, staged_folder, write_image

CREMI_BACKGROUND = 0xFFFFFFFFFFFFFFFF  # CREMI's "no label" value in its uint64 label volumes
MAX_CLASSES = 50  # more distinct values than this are instance ids, not classes
SLICE_SUFFIXES = (".tif", ".tiff", ".png")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".n5h5")
_UNIT_TO_NM = {"nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "um": 1e3, "µm": 1e3, "\\u00b5m": 1e3,
               "micron": 1e3, "microns": 1e3, "micrometer": 1e3, "micrometers": 1e3, "mm": 1e6,
               "millimeter": 1e6, "angstrom": 0.1, "å": 0.1}


class ConvertError(ValueError):
    """Bad input for ``reisoseg convert``; the message names the problem and the fix."""


@dataclass
class Volume:
    """A 3D (Z, Y, X) array-like read lazily where the format allows, with its voxel size in nm."""

    array: Any  # numpy array, h5py/zarr dataset or memmap: anything with shape, dtype and slicing
    spacing_nm: tuple[float, float, float] | None
    source: str
    close: Callable[[], None] = field(default=lambda: None)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.array.shape)


def split_spec(spec: str) -> tuple[Path, str | None]:
    """``file.h5:volumes/raw`` -> (file.h5, 'volumes/raw'); a path that exists is taken whole."""
    if os.path.exists(spec):
        return Path(spec), None
    head, sep, key = spec.rpartition(":")
    if sep and head and os.path.exists(head):
        return Path(head), key.strip("/") or None
    raise ConvertError(f"{spec}: no such file or folder" + (f" ({head} not found either)" if sep and head else ""))


def _to_nm(value: float, unit: str | None) -> float:
    if unit is None:
        return float(value)
    factor = _UNIT_TO_NM.get(str(unit).strip().lower())
    if factor is None:
        raise ConvertError(f"unknown length unit {unit!r} in the file's metadata; pass --spacing Z Y X (nm)")
    return float(value) * factor


def _spacing3(values: Sequence[float]) -> tuple[float, float, float] | None:
    v = [float(x) for x in values][-3:]
    if len(v) != 3 or not all(np.isfinite(v)) or min(v) <= 0:
        return None
    return v[0], v[1], v[2]


def _squeeze3(array: Any, source: str) -> Any:
    shape = tuple(array.shape)
    if len(shape) == 3:
        return array
    if len(shape) > 3 and all(s == 1 for s in shape[:-3]):
        return array[(0,) * (len(shape) - 3)]
    raise ConvertError(f"{source}: expected a 3D volume (Z, Y, X), got shape {shape}. Multi-channel or "
                       "time series data is not supported; select one 3D dataset with PATH:KEY.")


def _read_hdf5(path: Path, key: str | None) -> Volume:
    import h5py

    f = h5py.File(path, "r")
    datasets: list[str] = []
    f.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
    if key is None:
        if len(datasets) != 1:
            f.close()
            raise ConvertError(f"{path} holds {len(datasets)} datasets; name one as {path}:KEY "
                               f"(available: {', '.join(datasets) or 'none'})")
        key = datasets[0]
    if key not in f or not isinstance(f[key], h5py.Dataset):
        f.close()
        raise ConvertError(f"{path} has no dataset {key!r}; available: {', '.join(datasets) or 'none'}")
    ds = f[key]
    spacing = None
    if "resolution" in ds.attrs:  # CREMI: (z, y, x) in nm
        spacing = _spacing3(np.ravel(ds.attrs["resolution"]))
    elif "element_size_um" in ds.attrs:  # ilastik / Fiji HDF5: (z, y, x) in micrometres
        spacing = _spacing3(np.ravel(ds.attrs["element_size_um"]) * 1e3)
    return Volume(_squeeze3(ds, f"{path}:{key}"), spacing, f"{path}:{key}", f.close)


def _ome_multiscales(attrs: dict) -> list | None:
    ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")  # OME-Zarr 0.4 / 0.5
    return ms if isinstance(ms, list) and ms else None


def _ome_scale(multiscales: list, dataset_path: str) -> tuple[float, float, float] | None:
    ms = multiscales[0]
    axes = ms.get("axes") or []
    for ds in ms.get("datasets", []):
        if str(ds.get("path")).strip("/") != dataset_path:
            continue
        scale = None
        for t in ds.get("coordinateTransformations", []):
            if t.get("type") == "scale":
                scale = [float(v) for v in t["scale"]]
        for t in ms.get("coordinateTransformations", []):  # a global scale multiplies the dataset's
            if t.get("type") == "scale" and scale is not None:
                scale = [a * float(b) for a, b in zip(scale, t["scale"])]
        if scale is None:
            return None
        spatial = [i for i, a in enumerate(axes) if isinstance(a, dict) and a.get("type") == "space"]
        idx = spatial[-3:] if len(spatial) >= 3 else list(range(len(scale)))[-3:]
        units = [axes[i].get("unit") if i < len(axes) and isinstance(axes[i], dict) else None for i in idx]
        return _spacing3([_to_nm(scale[i], u) for i, u in zip(idx, units)])
    return None


def _read_zarr(path: Path, key: str | None) -> Volume:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as e:  # zarr raises several types for "not a zarr store"
        raise ConvertError(f"{path}: not a readable zarr store ({e})") from None
    multiscales = None
    if isinstance(node, zarr.Group):
        multiscales = _ome_multiscales(dict(node.attrs))
        if key is None:
            if multiscales:
                key = str(multiscales[0]["datasets"][0]["path"]).strip("/")  # full resolution
            else:
                arrays = [name for name, _ in node.arrays()]
                if len(arrays) != 1:
                    raise ConvertError(f"{path} holds {len(arrays)} arrays at its top level; name one as "
                                       f"{path}:KEY (available: {', '.join(arrays) or 'none'})")
                key = arrays[0]
        try:
            arr = node[key]
        except KeyError:
            raise ConvertError(f"{path} has no array {key!r}; top level: "
                               f"{', '.join(sorted(node.keys())) or 'empty'}") from None
        if not isinstance(arr, zarr.Array):
            sub = _ome_multiscales(dict(arr.attrs))
            if not sub:
                raise ConvertError(f"{path}:{key} is a group, not an array; name an array inside it")
            multiscales, inner = sub, str(sub[0]["datasets"][0]["path"]).strip("/")
            arr, key = arr[inner], inner
    else:
        arr = node
    spacing = _ome_scale(multiscales, key) if multiscales and key else None
    if spacing is None and "resolution" in arr.attrs:  # CREMI-style attribute on a plain zarr array
        spacing = _spacing3(np.ravel(arr.attrs["resolution"]))
    return Volume(_squeeze3(arr, f"{path}:{key}"), spacing, f"{path}" + (f":{key}" if key else ""))


def _read_mrc(path: Path) -> Volume:
    import mrcfile

    mrc = mrcfile.mmap(str(path), mode="r", permissive=True)
    if mrc.data is None:
        mrc.close()
        raise ConvertError(f"{path}: not a readable MRC file")
    vs = mrc.voxel_size  # Angstrom, (x, y, z)
    spacing = _spacing3([vs.z / 10.0, vs.y / 10.0, vs.x / 10.0])
    data = mrc.data if mrc.data.ndim == 3 else _squeeze3(mrc.data, str(path))
    return Volume(data, spacing, str(path), mrc.close)


def _tiff_spacing(tif: Any) -> tuple[float, float, float] | None:
    """Voxel size from ImageJ TIFF metadata: 'spacing' (z) and 'unit', XResolution/YResolution."""
    ij = tif.imagej_metadata or {}
    page = tif.pages[0]
    if "spacing" not in ij or "XResolution" not in page.tags:
        return None
    unit = ij.get("unit", "um")  # ImageJ writes 'micron' or an escaped 'µm'; _to_nm knows both

    def res(tag: str) -> float:
        num, den = page.tags[tag].value
        return den / num  # pixels per unit -> unit per pixel

    try:
        return _spacing3([_to_nm(float(ij["spacing"]), unit), _to_nm(res("YResolution"), unit),
                          _to_nm(res("XResolution"), unit)])
    except (ConvertError, KeyError, ZeroDivisionError):
        return None


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _read_slices(folder: Path) -> Volume:
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in SLICE_SUFFIXES), key=_natural_key)
    if not files:
        raise ConvertError(f"{folder}: no 2D slices ({', '.join(SLICE_SUFFIXES)}) in this folder")
    import tifffile
    from PIL import Image

    def read(p: Path) -> np.ndarray:
        return tifffile.imread(p) if p.suffix.lower() in (".tif", ".tiff") else np.asarray(Image.open(p))

    first = read(files[0])
    if first.ndim != 2:
        raise ConvertError(f"{files[0]}: expected a 2D greyscale slice, got shape {first.shape}")
    out = np.empty((len(files), *first.shape), first.dtype)
    for i, p in enumerate(files):
        s = first if i == 0 else read(p)
        if s.shape != first.shape:
            raise ConvertError(f"{p}: slice shape {s.shape} differs from {files[0].name}'s {first.shape}")
        out[i] = s
    return Volume(out, None, f"{folder} ({len(files)} slices)")


def read_volume(spec: str) -> Volume:
    """Open ``PATH[:KEY]`` by its kind: HDF5, zarr, MRC, (multi-page) TIFF or a folder of slices."""
    path, key = split_spec(spec)
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return _read_hdf5(path, key)
    if suffix == ".zarr" or (path.is_dir() and any((path / m).exists() for m in (".zgroup", ".zarray",
                                                                                  "zarr.json"))):
        return _read_zarr(path, key)
    if key is not None:
        raise ConvertError(f"{spec}: only HDF5 and zarr inputs take a :KEY")
    if suffix in (".mrc", ".rec", ".st", ".map"):
        return _read_mrc(path)
    if path.is_dir():
        return _read_slices(path)
    if suffix in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            data = tif.asarray()
            spacing = _tiff_spacing(tif)
        return Volume(_squeeze3(data, str(path)), spacing, str(path))
    raise ConvertError(f"{path}: unknown kind of file; reisoseg convert reads HDF5 (.h5/.hdf5), zarr "
                       "(.zarr), MRC (.mrc/.rec), TIFF (.tif/.tiff) and folders of TIFF/PNG slices")


@dataclass
class LabelRules:
    """How label values become nnU-Net classes."""

    binary: bool = False
    label_map: dict[int, int] = field(default_factory=dict)
    background: tuple[int, ...] = (0, CREMI_BACKGROUND)
    ignore: tuple[int, ...] = ()

    def apply(self, raw: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
        """Class map (int64) and ignore mask of a label block; errors for non-integer or negative values."""
        if raw.dtype.kind == "f":
            if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
                raise ConvertError(f"{source}: labels are not integers (float values with fractions); "
                                   "pass an integer label volume")
            raw = raw.astype(np.int64)
        elif raw.dtype.kind == "b":
            raw = raw.astype(np.uint8)
        elif raw.dtype.kind not in "iu":
            raise ConvertError(f"{source}: label dtype {raw.dtype} is not an integer type")
        ignore = np.isin(raw, np.asarray(self.ignore, dtype=raw.dtype)) if self.ignore else np.zeros(raw.shape, bool)
        background = np.isin(raw, np.asarray([b for b in self.background if _fits(b, raw.dtype)], dtype=raw.dtype))
        if raw.dtype.kind == "i" and np.any((raw < 0) & ~ignore & ~background):
            raise ConvertError(f"{source}: negative label values {sorted(np.unique(raw[raw < 0]))[:5]}; map them "
                               "with --label-map, --background or --ignore-value")
        if raw.dtype == np.uint64 and raw.size and raw.max() > np.iinfo(np.int64).max:
            big = (raw > np.iinfo(np.int64).max) & ~background & ~ignore
            if big.any():
                raise ConvertError(f"{source}: label values above 2**63 other than CREMI's background "
                                   "0xffffffffffffffff; map them with --label-map or --ignore-value")
            raw = np.where(background | ignore, 0, raw)
        out = raw.astype(np.int64)
        out[background] = 0
        if self.label_map:
            mapped = np.zeros_like(out)
            known = np.zeros(out.shape, bool)
            for src, dst in self.label_map.items():
                m = out == src
                mapped[m] = dst
                known |= m
            stray = ~known & (out != 0) & ~ignore
            if stray.any():
                raise ConvertError(f"{source}: label values {sorted(np.unique(out[stray]))[:8]} are not in "
                                   "--label-map; add them (SRC:0 to make them background)")
            out = mapped
        if self.binary:
            out = (out != 0).astype(np.int64)
        out[ignore] = 0
        return out, ignore


def _fits(value: int, dtype: np.dtype) -> bool:
    info = np.iinfo(dtype)
    return info.min <= value <= info.max


@dataclass
class Pair:
    image: str
    labels: str | None


def _split_slices(shape: Sequence[int], n: int, axis: int) -> list[tuple[slice, ...]]:
    edges = np.linspace(0, shape[axis], n + 1).round().astype(int)
    out = []
    for a, b in itertools.pairwise(edges):
        s = [slice(None)] * 3
        s[axis] = slice(int(a), int(b))
        out.append(tuple(s))
    return out


def choose_split_axis(shape: Sequence[int], spacing: Sequence[float]) -> int:
    """The axis of largest physical extent; a lateral axis on ties, so every block keeps all sections."""
    extent = [n * s for n, s in zip(shape, spacing)]
    best = max(extent)
    lateral = [a for a in (1, 2) if extent[a] >= 0.99 * best]
    return lateral[0] if lateral else 0


def convert(
    raw_root: str | os.PathLike,
    dataset_id: int,
    name: str,
    train: Sequence[Pair],
    test: Sequence[Pair] = (),
    spacing_nm: Sequence[float] | None = None,
    split: int = 1,
    split_axis: str = "auto",
    rules: LabelRules | None = None,
    channel_name: str = "EM",
    class_names: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``DatasetXXX_NAME`` under ``raw_root`` from image/label volume pairs; returns its path."""
    rules = rules or LabelRules()
    if not train:
        raise ConvertError("no training volume: pass --image PATH[:KEY] --labels PATH[:KEY]")
    if any(p.labels is None for p in train):
        raise ConvertError("every --image needs its --labels (in the same order)")
    if split < 1:
        raise ConvertError(f"--split must be >= 1, got {split}")
    if spacing_nm is not None and (len(spacing_nm) != 3 or min(spacing_nm) <= 0):
        raise ConvertError(f"--spacing takes three positive numbers Z Y X in nm, got {list(spacing_nm)}")
    if split_axis not in ("auto", "z", "y", "x"):
        raise ConvertError(f"--split-axis must be auto, z, y or x, got {split_axis}")
    try:
        target, clashes = raw_dataset_target(raw_root, dataset_id, name, overwrite)
    except ValueError as e:
        raise ConvertError(str(e)) from None

    # open and check everything before writing anything
    jobs: list[tuple[str, Volume, Volume | None, tuple[float, float, float]]] = []
    opened: list[Volume] = []
    try:
        for kind, pairs in (("train", train), ("test", test)):
            for p in pairs:
                img = read_volume(p.image)
                opened.append(img)
                lab = read_volume(p.labels) if p.labels else None
                if lab is not None:
                    opened.append(lab)
                    if lab.shape != img.shape:
                        raise ConvertError(f"image {img.source} has shape {img.shape} but labels {lab.source} "
                                           f"have {lab.shape}; they must cover the same voxels")
                if img.array.dtype.kind not in "iufb":
                    raise ConvertError(f"{img.source}: image dtype {img.array.dtype} is not numeric")
                sp = tuple(float(s) for s in spacing_nm) if spacing_nm is not None else img.spacing_nm
                if sp is None and lab is not None:
                    sp = lab.spacing_nm
                if sp is None:
                    raise ConvertError(f"{img.source}: no voxel size in the file; pass --spacing Z Y X in nm "
                                       "(e.g. --spacing 40 4 4 for 40 nm sections of 4 nm pixels)")
                if spacing_nm is not None and img.spacing_nm and not np.allclose(img.spacing_nm, sp, rtol=1e-3):
                    print(f"convert: {img.source} says {img.spacing_nm} nm; using --spacing {sp}")
                jobs.append((kind, img, lab, sp))  # type: ignore[arg-type]

        blocks: list[tuple[str, Volume, Volume | None, tuple[float, float, float], tuple[slice, ...]]] = []
        for kind, img, lab, sp in jobs:
            n = split if kind == "train" else 1
            axis = choose_split_axis(img.shape, sp) if split_axis == "auto" else "zyx".index(split_axis)
            if n > 1 and img.shape[axis] // n < 8:
                raise ConvertError(f"{img.source}: --split {n} along {'zyx'[axis]} gives blocks of "
                                   f"{img.shape[axis] // n} voxels; use fewer blocks or another --split-axis")
            blocks += [(kind, img, lab, sp, s) for s in _split_slices(img.shape, n, axis)]

        with staged_folder(target, replaces=clashes) as tmp:
            max_class, n_train = 0, 0
            has_test_labels = any(lab is not None for kind, _, lab, _, _ in blocks if kind == "test")
            for sub in ("imagesTr", "labelsTr") + (("imagesTs",) if test else ()) + \
                    (("labelsTs",) if has_test_labels else ()):
                (tmp / sub).mkdir()
            label_files = []
            for i, (kind, img, lab, sp, sl) in enumerate(blocks):
                case_id = f"{name.lower()}_{i:03d}"
                tr = kind == "train"
                n_train += tr
                block = np.asarray(img.array[sl])
                write_image(block.astype(np.uint8) if block.dtype == bool else block, sp,
                            tmp / ("imagesTr" if tr else "imagesTs") / f"{case_id}_0000.nii.gz")
                if lab is not None:
                    classes, ignore = rules.apply(np.asarray(lab.array[sl]), lab.source)
                    max_class = max(max_class, int(classes.max(initial=0)))
                    if max_class > MAX_CLASSES:
                        raise ConvertError(f"{lab.source}: label values up to {max_class} look like instance "
                                           "ids, not classes; pass --binary to merge them into one class or "
                                           "--label-map to choose classes")
                    # labels are written once the class count is known: the ignore label must be the largest
                    label_files.append((tmp / ("labelsTr" if tr else "labelsTs") / f"{case_id}.nii.gz",
                                        classes.astype(np.uint8), ignore, sp))
                if progress:
                    print(f"\rconvert: block {i + 1}/{len(blocks)}", end="" if i + 1 < len(blocks) else "\n",
                          flush=True)
            ignore_label = max_class + 1 if rules.ignore else None
            for path, classes, ignore, spc in label_files:
                if ignore_label is not None:
                    classes[ignore] = ignore_label
                write_image(classes, spc, path)
            names = list(class_names) if class_names else []
            if names and len(names) != max_class:
                raise ConvertError(f"--class-names gives {len(names)} names but the labels have classes "
                                   f"1..{max_class}")
            labels = {"background": 0, **{(names[c - 1] if names else f"class_{c}"): c
                                          for c in range(1, max_class + 1)}}
            if max_class == 0:
                raise ConvertError("the training labels hold no foreground at all; check --labels, "
                                   "--label-map and --background")
            if ignore_label is not None:
                labels["ignore"] = ignore_label
            dataset_json = {
                "channel_names": {"0": channel_name},
                "labels": labels,
                "numTraining": n_train,
                "file_ending": ".nii.gz",
                "name": name,
                "description": "reisoseg convert: " + "; ".join(
                    f"{kind} {img.source} ({'x'.join(map(str, img.shape))}, {'x'.join(f'{v:g}' for v in sp)} nm)"
                    for kind, img, _, sp in jobs) + (f"; each training volume split into {split}" if split > 1 else ""),
                "spacing_nm_zyx": list(jobs[0][3]),
            }
            (tmp / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    finally:
        for v in opened:
            v.close()
    return target
