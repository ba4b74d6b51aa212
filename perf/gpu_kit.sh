#!/usr/bin/env bash
# Here (with PyPI): build .gpu_kit/site.tar.xz, the Python packages the lent GPU machines' image lacks
# (it has torch, numpy, scipy, scikit-image, pandas, matplotlib, h5py, tifffile, ...; see the device tool's
# KINDS.md), as Python 3.12 x86-64 wheels unpacked and xz-compressed (SimpleITK alone is a 53 MB wheel;
# the carried tree is limited to 64 MiB). perf/gpu_run.sh unpacks it there.
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.gpu_kit
rm -rf "$KIT" && mkdir -p "$KIT/wheels" "$KIT/site"
grep -qx '/.gpu_kit/' .git/info/exclude 2>/dev/null || echo '/.gpu_kit/' >> .git/info/exclude
plat=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
pv() { python -c "from importlib.metadata import version; print(version('$1'))"; }
# compiled packages: binary wheels for CPython 3.12
pip download -q --no-deps --only-binary=:all: "${plat[@]}" -d "$KIT/wheels" \
  "SimpleITK==$(pv SimpleITK)" \
  "blosc2==$(pv blosc2)" \
  connected-components-3d numexpr ndindex
# pure-Python packages: the versions installed here
pip wheel -q --no-deps -w "$KIT/wheels" "nnunetv2==$(pv nnunetv2)" \
  "dynamic-network-architectures==$(pv dynamic-network-architectures)" "batchgenerators==$(pv batchgenerators)" \
  "batchgeneratorsv2==$(pv batchgeneratorsv2)" "acvl-utils==$(pv acvl-utils)" "nibabel==$(pv nibabel)" \
  "monai==$(pv monai)" "mrcfile==$(pv mrcfile)" yacs graphviz
for w in "$KIT"/wheels/*.whl; do python -m zipfile -e "$w" "$KIT/site"; done
tar -C "$KIT/site" -cf - . | xz -9 -T0 > "$KIT/site.tar.xz"
echo 3.12 > "$KIT/python_version"  # gpu_run.sh uses the kit only under this Python
rm -rf "$KIT/wheels" "$KIT/site"
ls -la "$KIT"
echo "carry .gpu_kit in the device run: bash perf/gpu_run.sh OUT"
