from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="nnunetv2-reisoseg",
    version="0.2.0",
    description="ReIsoSeg (Guo et al., IEEE TMI 2024) for nnU-Net v2: PI module and re-isotropic loss",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",  # zarr 3 needs it
    # the trainer classes nnU-Net discovers ship inside the package; `reisoseg trainer-path` prints where
    packages=[*find_packages(include=["nnunetv2_reisoseg", "nnunetv2_reisoseg.*"]), "nnunetv2_reisoseg.trainers"],
    package_dir={"nnunetv2_reisoseg.trainers": "trainers"},
    install_requires=[
        # 2.8.1: nnUNet_extTrainer and the new build_network_architecture signature. Bounded to the minor version
        # tested because of nnU-Net's private APIs used here (tests/test_nnunet_apis.py fails when one goes):
        # nnUNetPredictor._internal_maybe_mirror_and_predict (predict-volume's tiles), MetaLogger's
        # my_fantastic_logging (the trainer's extra curves), the trainer hooks _build_loss,
        # _get_deep_supervision_scales and configure_rotation_dummyDA_mirroring_and_inital_patch_size
        "nnunetv2>=2.8.1,<2.9",
        "torch>=2.4",  # torch.is_autocast_enabled(device_type) in the PI module's CPU fast path
        "matplotlib",
        "SimpleITK",
        "scipy",
        "numpy",
        "h5py",  # reisoseg convert: HDF5 (CREMI), zarr / OME-Zarr, MRC, TIFF
        "zarr>=3",  # create_array, zarr_format
        "mrcfile",
        "tifffile",
        "connected-components-3d",  # reisoseg evaluate: objects are 3D connected components
        "fastremap",
        "edt",  # anisotropic distance transform for HD95 / ASSD
        "scikit-image",  # VOI and adapted Rand error as reference values (tests, perf/evaluate.py)
        "dask[distributed]",  # reisoseg predict-volume --workers / --scheduler
        "tqdm",
        "ome-zarr>=0.12",  # zarr 3; predict-volume's NGFF metadata (tested with 0.18)
    ],
    # MONAI: the reference HD95 / ASSD; ome-zarr-models: validates predict-volume's NGFF metadata
    extras_require={"test": ["pytest", "pytest-xdist", "ruff", "monai", "ome-zarr-models"]},
    entry_points={"console_scripts": ["reisoseg=nnunetv2_reisoseg.cli:main"]},
)
