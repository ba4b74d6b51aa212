"""Readers of EM volumes: HDF5, TIFF or a folder of slices, zarr / OME-Zarr, MRC, for every command that
reads volumes (convert, predict-volume, evaluate).

Each returns a ``Volume``: an array-like read lazily where the format allows (h5py and zarr
datasets, MRC memory maps), with its voxel size in nm from the file's own metadata (HDF5
``resolution`` / ``element_size_um``, OME-Zarr ``multiscales``, MRC header, ImageJ TIFF tags).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnunetv2_reisoseg.errors import ReisosegError
from nnunetv2_reisoseg.io.checks import spacing_problem

SLICE_SUFFIXES = (".tif", ".tiff", ".png")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".n5h5")
_UNIT_TO_NM = {"nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "um": 1e3, "µm": 1e3, "\\u00b5m": 1e3,
               "micron": 1e3, "microns": 1e3, "micrometer": 1e3, "micrometers": 1e3, "mm": 1e6,
               "millimeter": 1e6, "angstrom": 0.1, "å": 0.1}


# the root attributes of a reisoseg predict-volume output: its settings, and the mark of a finished run
OUTPUT_ATTR = "reisoseg"
RUN_STATE_SUFFIX = ".reisoseg-run"  # the run state beside a predict-volume output: its scratch arrays are ours
COMPLETE_ATTR = "reisoseg_complete"


class VolumeReadError(ReisosegError, ValueError):
    """A volume that cannot be read as given; the message names the problem and the fix. Each command that
    reads volumes (convert, predict-volume, evaluate) turns it into its own error."""


@dataclass
class Volume:
    """A 3D (Z, Y, X) array-like read lazily where the format allows, with its voxel size in nm."""

    array: Any  # numpy array, h5py/zarr dataset or memmap: anything with shape, dtype and slicing
    spacing_nm: tuple[float, float, float] | None
    source: str
    close: Callable[[], None] = field(default=lambda: None)
    # why the volume is not to be trusted as a result: an unfinished predict-volume output (None: it is)
    unfinished: str | None = None
    # a voxel size the file states that is not one (NaN, zero, two values, text): said, never silently replaced
    spacing_problem: str | None = None

    def stated_spacing(self, given: Sequence[float] | None, option: str = "--spacing") -> tuple[float, ...] | None:
        """``given`` (an option, checked by the caller) or the file's voxel size; a voxel size the file states
        badly is refused unless ``given`` replaces it."""
        if given is not None:
            return tuple(float(v) for v in given)
        if self.spacing_problem is not None:
            raise VolumeReadError(f"{self.source}: {self.spacing_problem}; pass {option} Z Y X in nm")
        return self.spacing_nm

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
    raise VolumeReadError(f"{spec}: no such file or folder" + (f" ({head} not found either)" if sep and head else ""))


def input_path(spec: str) -> Path:
    """The file or folder of ``PATH[:KEY]``, whether or not it exists (for the outputs' protected paths)."""
    try:
        return split_spec(spec)[0]
    except VolumeReadError:
        return Path(spec)


def _to_nm(value: float, unit: str | None) -> float:
    if unit is None:
        return float(value)
    factor = _UNIT_TO_NM.get(str(unit).strip().lower())
    if factor is None:
        raise VolumeReadError(f"unknown length unit {unit!r} in the file's metadata; pass --spacing Z Y X (nm)")
    return float(value) * factor


def _spacing3(values: Any, what: str) -> tuple[tuple[float, float, float] | None, str | None]:
    """(voxel size in nm, None) from a file's metadata ``what`` says, or (None, why it is not one)."""
    problem = spacing_problem(values)
    if problem is not None:
        return None, f"its voxel size ({what}) {problem}"
    z, y, x = (float(v) for v in values)
    return (z, y, x), None


class LazyArray:
    """A (Z, Y, X) view that reads only what is indexed: leading singleton axes of a stored array dropped
    without reading it (``zarr_array[0]`` would read everything), or a stack of 2D slice files."""

    def __init__(self, shape: tuple[int, ...], dtype: Any, read: Callable[[tuple[slice, ...]], np.ndarray]) -> None:
        self.shape, self.dtype, self._read = tuple(int(s) for s in shape), np.dtype(dtype), read
        self.ndim = 3

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (3 - len(key))
        drop = [a for a, k in enumerate(key) if not isinstance(k, slice)]
        sl = tuple(k if isinstance(k, slice) else slice(int(k) % n, int(k) % n + 1) for k, n in zip(key, self.shape))
        out = self._read(sl)
        return out.reshape([n for a, n in enumerate(out.shape) if a not in drop]) if drop else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:, :, :]
        return out if dtype is None else out.astype(dtype)


class CheckedArray:
    """An array-like whose reads fail with a ``VolumeReadError`` naming the file and the region (a truncated file,
    a corrupt chunk) instead of the reader library's traceback."""

    def __init__(self, array: Any, source: str) -> None:
        self._array, self._source = array, source
        self.shape, self.dtype, self.ndim = tuple(array.shape), array.dtype, len(array.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self._array[key])
        except VolumeReadError:
            raise
        except Exception as e:  # h5py, zarr, numcodecs and tifffile raise many types for damaged data
            raise VolumeReadError(f"{self._source}: cannot read voxels {_key_text(key)} ({type(e).__name__}: "
                                  f"{str(e)[:200]}); the file is damaged or incomplete: copy it again, or "
                                  "repair it") from None

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)


def _key_text(key: Any) -> str:
    key = key if isinstance(key, tuple) else (key,)
    return "[" + ", ".join(f"{k.start or 0}:{'' if k.stop is None else k.stop}" if isinstance(k, slice)
                           else "..." if k is Ellipsis else str(k) for k in key) + "]"


def _squeeze3(array: Any, source: str) -> Any:
    shape = tuple(array.shape)
    if len(shape) == 3:
        return array
    if len(shape) > 3 and all(s == 1 for s in shape[:-3]):
        lead = (0,) * (len(shape) - 3)
        return LazyArray(shape[-3:], array.dtype, lambda sl: np.asarray(array[lead + sl]))
    raise VolumeReadError(f"{source}: expected a 3D volume (Z, Y, X), got shape {shape}. Multi-channel or "
                       "time series data is not supported; select one 3D dataset with PATH:KEY.")


def _read_hdf5(path: Path, key: str | None) -> Volume:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:  # truncated, or not HDF5 at all
        raise VolumeReadError(f"{path}: not a readable HDF5 file ({e}); it may be truncated: copy it again") from None
    datasets: list[str] = []
    f.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
    if key is None:
        if len(datasets) != 1:
            f.close()
            raise VolumeReadError(f"{path} holds {len(datasets)} datasets; name one as {path}:KEY "
                               f"(available: {', '.join(datasets) or 'none'})")
        key = datasets[0]
    if key not in f or not isinstance(f[key], h5py.Dataset):
        f.close()
        raise VolumeReadError(f"{path} has no dataset {key!r}; available: {', '.join(datasets) or 'none'}")
    ds = f[key]
    spacing, problem = None, None
    if "resolution" in ds.attrs:  # CREMI: (z, y, x) in nm
        spacing, problem = _spacing3(np.ravel(ds.attrs["resolution"]), "attribute resolution, nm")
    elif "element_size_um" in ds.attrs:  # ilastik / Fiji HDF5: (z, y, x) in micrometres
        values = np.ravel(ds.attrs["element_size_um"])
        if values.dtype.kind in "iuf":
            values = values * 1e3
        spacing, problem = _spacing3(values, "attribute element_size_um, x 1000 nm")
    return Volume(_squeeze3(ds, f"{path}:{key}"), spacing, f"{path}:{key}", f.close, spacing_problem=problem)


def _ome_multiscales(attrs: dict) -> list | None:
    ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")  # OME-Zarr 0.4 / 0.5
    return ms if isinstance(ms, list) and ms else None


def _ome_scale(multiscales: list, dataset_path: str) -> tuple[tuple[float, float, float] | None, str | None]:
    """(voxel size in nm, None) of an OME-Zarr level, (None, None) when it states none, (None, why) when what it
    states is not a voxel size."""
    try:
        scale, units = _ome_scale_units(multiscales, dataset_path)
    except (VolumeReadError, ValueError, TypeError, KeyError, AttributeError) as e:
        return None, f"its OME-Zarr scale cannot be read ({str(e)[:200]})"
    if scale is None:
        return None, None
    try:
        return _spacing3([_to_nm(v, u) for v, u in zip(scale, units)], "OME-Zarr scale")
    except VolumeReadError as e:
        return None, str(e).split(";")[0]


def _ome_scale_units(multiscales: list, dataset_path: str) -> tuple[list | None, list]:
    """The spatial scale values of an OME-Zarr level and their units (None: no scale)."""
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
            return None, []
        spatial = [i for i, a in enumerate(axes) if isinstance(a, dict) and a.get("type") == "space"]
        idx = spatial[-3:] if len(spatial) >= 3 else list(range(len(scale)))[-3:]
        units = [axes[i].get("unit") if i < len(axes) and isinstance(axes[i], dict) else None for i in idx]
        return [scale[i] for i in idx], units
    return None, []


def _read_zarr(path: Path, key: str | None) -> Volume:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
        return _zarr_volume(path, key, node)
    except VolumeReadError:
        raise
    except Exception as e:  # zarr raises several types for "not a zarr store" and broken metadata
        raise VolumeReadError(f"{path}" + (f":{key}" if key else "") + f": not a readable zarr store or array "
                              f"({type(e).__name__}: {str(e)[:200]}); check its .zarray / zarr.json") from None


def _zarr_volume(path: Path, key: str | None, node: Any) -> Volume:
    import zarr

    multiscales = None
    if isinstance(node, zarr.Group):
        multiscales = _ome_multiscales(dict(node.attrs))
        if key is None and OUTPUT_ATTR in node.attrs and "labels" in node:
            key = "labels/semantic"  # predict-volume's output reads as its result; PATH:0 is the image under it
        if key is None:
            if multiscales:
                key = str(multiscales[0]["datasets"][0]["path"]).strip("/")  # full resolution
            else:
                arrays = [name for name, _ in node.arrays()]
                if len(arrays) != 1:
                    raise VolumeReadError(f"{path} holds {len(arrays)} arrays at its top level; name one as "
                                       f"{path}:KEY (available: {', '.join(arrays) or 'none'})")
                key = arrays[0]
        try:
            arr = node[key]
        except KeyError:
            raise VolumeReadError(f"{path} has no array {key!r}; top level: "
                               f"{', '.join(sorted(node.keys())) or 'empty'}") from None
        if not isinstance(arr, zarr.Array):
            sub = _ome_multiscales(dict(arr.attrs))
            if not sub:
                raise VolumeReadError(f"{path}:{key} is a group, not an array; name an array inside it")
            multiscales, inner = sub, str(sub[0]["datasets"][0]["path"]).strip("/")
            arr, key = arr[inner], inner
    else:
        arr = node
    spacing, problem = _ome_scale(multiscales, key) if multiscales and key else (None, None)
    if spacing is None and problem is None and "resolution" in arr.attrs:  # CREMI-style, on a plain zarr array
        spacing, problem = _spacing3(np.ravel(arr.attrs["resolution"]), "attribute resolution, nm")
    source = f"{path}" + (f":{key}" if key else "")
    state = _output_state(path)
    scratch = any(part.endswith(RUN_STATE_SUFFIX) for part in path.absolute().parts)
    if state is None and not scratch:  # predict-volume's outputs and scratch legitimately skip empty chunks
        _say_missing_chunks(arr, source)
    return Volume(_squeeze3(arr, source), spacing, source, unfinished=state or None, spacing_problem=problem)


def _output_state(path: Path) -> str | None:
    """For a predict-volume output (``path`` or the store it lies in): "" when finished, else why it is not;
    None for any other store."""
    import json

    for folder in (path, *list(path.absolute().parents)[:3]):
        try:
            attrs = json.loads((folder / ".zattrs").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(attrs, dict) and OUTPUT_ATTR in attrs:
            return "" if COMPLETE_ATTR in attrs else \
                f"{folder} is an unfinished reisoseg predict-volume output (its run was stopped or is still running)"
    return None


def _say_missing_chunks(arr: Any, source: str) -> None:
    """zarr reads a chunk that is not stored as the fill value; say so when any is missing, since that may be an
    unfinished copy rather than empty space."""
    import sys

    try:
        stored, total = int(arr.nchunks_initialized), int(arr.nchunks)
    except Exception:  # stores that cannot list their chunks: nothing to say
        return
    if stored < total:
        print(f"note: {source}: {total - stored} of {total} chunks are not stored; zarr reads them as the fill value "
              f"{arr.fill_value}", file=sys.stderr)


def _read_mrc(path: Path) -> Volume:
    import mrcfile

    mrc = mrcfile.mmap(str(path), mode="r", permissive=True)
    if mrc.data is None:
        mrc.close()
        raise VolumeReadError(f"{path}: not a readable MRC file")
    vs = mrc.voxel_size  # Angstrom, (x, y, z); all 0 in a header that states none
    zyx = [float(vs.z) / 10.0, float(vs.y) / 10.0, float(vs.x) / 10.0]
    spacing, problem = (None, None) if not any(zyx) else _spacing3(zyx, "MRC header, Angstrom / 10")
    data = mrc.data if mrc.data.ndim == 3 else _squeeze3(mrc.data, str(path))
    return Volume(data, spacing, str(path), mrc.close, spacing_problem=problem)


def _tiff_spacing(tif: Any) -> tuple[tuple[float, float, float] | None, str | None]:
    """Voxel size from ImageJ TIFF metadata: 'spacing' (z) and 'unit', XResolution/YResolution; as
    ``_spacing3``, (None, None) when the file states none."""
    ij = tif.imagej_metadata or {}
    page = tif.pages[0]
    if "spacing" not in ij or "XResolution" not in page.tags:
        return None, None
    unit = ij.get("unit", "um")  # ImageJ writes 'micron' or an escaped 'µm'; _to_nm knows both

    def res(tag: str) -> float:
        num, den = page.tags[tag].value
        return den / num  # pixels per unit -> unit per pixel

    try:
        values = [_to_nm(float(ij["spacing"]), unit), _to_nm(res("YResolution"), unit),
                  _to_nm(res("XResolution"), unit)]
    except (VolumeReadError, KeyError, ValueError, TypeError, ZeroDivisionError) as e:
        return None, f"its ImageJ voxel size cannot be read ({str(e)[:200]})"
    return _spacing3(values, "ImageJ spacing and resolution")


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _read_slices(folder: Path) -> Volume:
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in SLICE_SUFFIXES), key=_natural_key)
    if not files:
        raise VolumeReadError(f"{folder}: no 2D slices ({', '.join(SLICE_SUFFIXES)}) in this folder")
    import tifffile
    from PIL import Image

    def read(p: Path) -> np.ndarray:
        return tifffile.imread(p) if p.suffix.lower() in (".tif", ".tiff") else np.asarray(Image.open(p))

    first = read(files[0])
    if first.ndim != 2:
        raise VolumeReadError(f"{files[0]}: expected a 2D greyscale slice, got shape {first.shape}")
    for p in files[1:]:  # from the files' headers: a slice of another size is found before any work
        shape = _slice_shape(p)
        if shape != first.shape:
            raise VolumeReadError(f"{p}: slice shape {shape} differs from {files[0].name}'s {first.shape}; every "
                                  "slice of a stack must have the same size (crop or pad it, or remove it)")

    def read_sections(sl: tuple[slice, ...]) -> np.ndarray:  # only the slice files the request covers
        picked = files[sl[0]]
        out = np.empty((len(picked), *first[sl[1:]].shape), first.dtype)
        for i, p in enumerate(picked):
            s = read(p)
            if s.shape != first.shape:
                raise VolumeReadError(f"{p}: slice shape {s.shape} differs from {files[0].name}'s {first.shape}")
            out[i] = s[sl[1:]]
        return out

    return Volume(LazyArray((len(files), *first.shape), first.dtype, read_sections), None,
                  f"{folder} ({len(files)} slices)")


def _slice_shape(path: Path) -> tuple[int, ...]:
    """The (rows, columns) of a slice file from its header, without decoding its pixels."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return tuple(tif.pages[0].shape)
        from PIL import Image

        with Image.open(path) as im:
            bands = len(im.getbands())
            return (im.height, im.width) if bands == 1 else (im.height, im.width, bands)
    except Exception as e:  # PIL and tifffile raise their own types for damaged files
        raise VolumeReadError(f"{path}: not a readable image ({type(e).__name__}: {str(e)[:200]})") from None


def _check_pages(tif: Any, path: Path) -> None:
    """A multi-page TIFF is a stack only if every page has the first page's shape."""
    first = tuple(tif.pages[0].shape)
    for i, page in enumerate(tif.pages):
        if tuple(page.shape) != first:
            raise VolumeReadError(f"{path}: page {i} has shape {tuple(page.shape)} but page 0 has {first}; every "
                                  "page of a stack must have the same size")


ITK_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd")  # read whole, by SimpleITK


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, ...]]:
    """A NIfTI / MHA / NRRD image (as nnU-Net writes its cases) read whole by SimpleITK: its array (z, y, x) and its
    header's spacing in the same order (nm for EM datasets, as nnU-Net stores them)."""
    path = str(path)
    if not os.path.isfile(path):
        raise VolumeReadError(f"{path}: no such file")
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(path)
    except RuntimeError as e:
        raise VolumeReadError(f"{path}: not a readable image ({str(e).strip().splitlines()[-1][:200]})") from None
    return sitk.GetArrayFromImage(img), tuple(float(v) for v in img.GetSpacing()[::-1])


def read_array(path: Path, key: str | None) -> np.ndarray:
    """A whole array of any dimension (probabilities: C, Z, Y, X) from nnU-Net's ``.npz`` (``key`` default
    ``probabilities``), zarr (a group: its level 0, as an OME-Zarr image holds it) or HDF5 (``key`` names the
    dataset)."""
    if path.suffix == ".npz":
        with np.load(path) as z:
            k = key or "probabilities"
            if k not in z:
                raise VolumeReadError(f"{path} has no array {k!r} (it has {list(z)}); give PATH.npz:KEY")
            return z[k]
    if path.suffix == ".zarr":
        import zarr

        node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Group):
            node = node[key] if key else node
            while isinstance(node, zarr.Group):  # an OME-Zarr image: its full-resolution level
                if "0" not in node:
                    raise VolumeReadError(f"{path}:{key or ''} is a group without level 0; give PATH.zarr:ARRAY")
                node = node["0"]
        return np.asarray(node[...])
    import h5py

    with h5py.File(path, "r") as f:
        if key is None or key not in f:
            raise VolumeReadError(f"{path}: give the array's dataset as {path}:KEY (keys: {list(f)})")
        return np.asarray(f[key][...])


def read_volume(spec: str) -> Volume:
    """Open ``PATH[:KEY]`` by its kind: HDF5, zarr, MRC, (multi-page) TIFF or a folder of slices; its reads fail
    with a ``VolumeReadError`` that names the file (``CheckedArray``)."""
    vol = _open_volume(spec)
    vol.array = CheckedArray(vol.array, vol.source)
    return vol


def _open_volume(spec: str) -> Volume:
    path, key = split_spec(spec)
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return _read_hdf5(path, key)
    if suffix == ".zarr" or (path.is_dir() and any((path / m).exists() for m in (".zgroup", ".zarray",
                                                                                  "zarr.json"))):
        return _read_zarr(path, key)
    if key is not None:
        raise VolumeReadError(f"{spec}: only HDF5 and zarr inputs take a :KEY")
    if suffix in (".mrc", ".rec", ".st", ".map"):
        return _read_mrc(path)
    if path.is_dir():
        return _read_slices(path)
    if suffix in (".tif", ".tiff"):
        import tifffile
        import zarr

        try:
            tif = tifffile.TiffFile(path)
        except Exception as e:  # tifffile raises its own types for damaged files
            raise VolumeReadError(f"{path}: not a readable TIFF file ({type(e).__name__}: {str(e)[:200]})") from None
        try:
            _check_pages(tif, path)
        except VolumeReadError:
            tif.close()
            raise
        spacing, problem = _tiff_spacing(tif)
        data = zarr.open(tif.aszarr(), mode="r")  # pages read as they are indexed
        if isinstance(data, zarr.Group):  # pyramidal TIFF: its full-resolution level
            data = data["0"]
        return Volume(_squeeze3(data, str(path)), spacing, str(path), tif.close, spacing_problem=problem)
    raise VolumeReadError(f"{path}: unknown kind of file; reisoseg reads HDF5 (.h5/.hdf5), zarr "
                       "(.zarr), MRC (.mrc/.rec), TIFF (.tif/.tiff) and folders of TIFF/PNG slices")
