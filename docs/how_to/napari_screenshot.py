"""The napari screenshot in predict_volume.md, reproducible: a predict-volume output opened with napari-ome-zarr,
the EM image under the semantic and instance labels, taken headless under Xvfb.

    # 1. stack 2 of the Drosophila VNC ssTEM stack (raw only, 20 TIFF sections of 1024x1024 at 4.6 nm), brought
    #    to the study's 47.5x9.2x9.2 nm by the same 2x2 block mean as `reisoseg convert --downsample 1 2 2`
    python docs/how_to/napari_screenshot.py stack VNC/stack2/raw stack2.zarr
    # 2. predict it with a model trained on stack 1 (docs/study_why/vnc)
    reisoseg predict-volume -i stack2.zarr:raw -o stack2_seg.zarr -m MODEL_FOLDER -f 0 --instances \\
        --disable_tta -device cpu
    # 3. the screenshot (napari and napari-ome-zarr installed; xvfb-run from Debian's xvfb)
    xvfb-run -a -s "-screen 0 1400x1000x24" python docs/how_to/napari_screenshot.py shot stack2_seg.zarr out.png

``shot`` prints the layers napari made, whether each is multiscale, and the pyramid level napari reads at the
screenshot's zoom and when zoomed out, the check that a viewer never needs full resolution to show the volume.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def stack(folder: str, out: str) -> None:
    """A folder of TIFF sections (4.6 nm) as a zarr array ``raw`` at 47.5x9.2x9.2 nm (2x2 block mean)."""
    import numpy as np
    import tifffile
    import zarr

    from nnunetv2_reisoseg.data.convert.downsample import downsample_image

    if Path(out).exists():
        raise SystemExit(f"{out} exists: remove it or name another output")
    files = sorted(Path(folder).glob("*.tif"))
    if not files:
        raise SystemExit(f"{folder}: no .tif sections")
    volume = np.stack([tifffile.imread(f) for f in files])
    if volume.ndim != 3 or volume.shape[1] % 2 or volume.shape[2] % 2:
        raise SystemExit(f"{folder}: sections of shape {volume.shape[1:]}; the 2x2 mean needs even 2D sections")
    small = downsample_image(volume, (1, 2, 2)).round().astype(np.uint8)
    group = zarr.open_group(out, mode="w-", zarr_format=2)
    arr = group.create_array("raw", shape=small.shape, chunks=(small.shape[0], 256, 256), dtype=np.uint8)
    arr[...] = small
    arr.attrs["resolution"] = [47.5, 9.2, 9.2]
    print(f"{out}:raw {small.shape} uint8 at 47.5x9.2x9.2 nm from {len(files)} sections")


def shot(output: str, png: str, section: int | None) -> None:
    """Open ``output`` as a user would, show every layer, save the window to ``png``."""
    import napari

    if Path(png).exists():
        raise SystemExit(f"{png} exists: remove it or name another file")
    viewer = napari.Viewer(show=True)
    layers = viewer.open(output, plugin="napari-ome-zarr")
    for layer in layers:
        layer.visible = True  # ome-zarr-py adds label layers hidden
        if layer.name.endswith("instances"):
            layer.opacity = 0.5
    if section is not None:
        viewer.dims.set_point(0, section)
    viewer.reset_view()
    napari.qt.get_qapp().processEvents()
    for layer in layers:
        levels = len(layer.data) if layer.multiscale else 1
        print(f"layer {layer.name!r}: {type(layer).__name__}, multiscale {layer.multiscale} ({levels} levels), "
              f"shape {layer.data[0].shape if layer.multiscale else layer.data.shape}, level read at this zoom "
              f"{layer.data_level if layer.multiscale else 0}")
    viewer.screenshot(png, canvas_only=False)
    print(f"screenshot {png}")
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari >= 0.9 / older
    camera.zoom = camera.zoom / 8  # zoomed out: napari should switch to a coarser level
    napari.qt.get_qapp().processEvents()
    for layer in layers:
        if layer.multiscale:
            print(f"zoomed out 8x: layer {layer.name!r} reads level {layer.data_level}")
    viewer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("stack")
    s.add_argument("folder")
    s.add_argument("out")
    t = sub.add_parser("shot")
    t.add_argument("output")
    t.add_argument("png")
    t.add_argument("--section", type=int, default=None, help="the section shown (default: napari's, the middle)")
    a = ap.parse_args()
    if a.what == "stack":
        stack(a.folder, a.out)
    else:
        shot(a.output, a.png, a.section)


if __name__ == "__main__":
    main()
