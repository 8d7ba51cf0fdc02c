#!/usr/bin/env bash
# Install mmdet 3.3.0 (the peer of bench_detector.py) next to the project's venv, without touching it.
#
# mmdet 3.3.0 asserts mmcv < 2.2.0, and mmcv 2.1.0 has no wheel for torch 2.14: it is built from
# source with its setup.py's -std=c++14/17 changed to -std=c++20 (about 10 minutes on 2 cores).
# The result is a second venv (default ../mmvenv) whose .pth file puts the project's venv on the
# path, so torch and torchvision are the very same install that our detector uses:
#
#   bash bench/install_mmdet.sh              # once
#   ../mmvenv/bin/python bench/bench_detector.py --cases r50,mmdet --rounds 3
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MMVENV="${MMVENV:-${ROOT}/../mmvenv}"
BUILD="${BUILD:-${MMVENV}/build}"
SITE="$("${ROOT}/.venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')"

python3 -m venv "${MMVENV}"
MMSITE="$("${MMVENV}/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
echo "${SITE}" > "${MMSITE}/project_venv.pth"
"${MMVENV}/bin/python" -c "import torch; print('torch', torch.__version__, 'from', torch.__file__)"

"${MMVENV}/bin/pip" install --quiet setuptools wheel ninja
"${MMVENV}/bin/pip" install --quiet addict mmengine==0.10.7 yapf opencv-python-headless \
    terminaltables shapely pycocotools scipy six
mkdir -p "${BUILD}"
cd "${BUILD}"
"${MMVENV}/bin/pip" download --quiet --no-deps --no-binary :all: mmcv==2.1.0 -d .
rm -rf mmcv-2.1.0 && tar xzf mmcv-2.1.0.tar.gz
sed -i 's/-std=c++1[47]/-std=c++20/g' mmcv-2.1.0/setup.py
(cd mmcv-2.1.0 && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" FORCE_CUDA=0 \
    "${MMVENV}/bin/pip" install --no-build-isolation --no-deps .)
"${MMVENV}/bin/pip" install --quiet --no-deps mmdet==3.3.0
"${MMVENV}/bin/python" -c "import mmcv, mmdet; from mmcv.ops import RoIAlign; print('mmcv', mmcv.__version__, 'mmdet', mmdet.__version__)"
