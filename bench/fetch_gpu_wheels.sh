#!/usr/bin/env bash
# Download, here (with network), the wheels bench/gpu_check.sh installs on the GPU machine (no
# network there) into .whl/gpu/ (git-ignored; the run tool carries it with carry=[".whl/gpu"]).
#
# Only what the GPU image lacks (its package list: bench/gpu_check.py PREINSTALLED, from the device
# notes): the library's plotly, pycocotools, faster-coco-eval; the tests' ensemble-boxes; papermill
# and a Jupyter kernel for the chapter. numpy, pandas, pillow, pyyaml, tqdm, numba + llvmlite,
# pytest, psutil, pygments, requests, aiohttp ... are preinstalled there and are not carried
# (llvmlite alone would be 57 MiB). Versions are the ones this project's venv uses. Each is fetched
# with --no-deps, then bench/gpu_check.py --verify-wheels checks that the carried wheels plus the
# preinstalled packages meet every requirement for CPython 3.12 on Linux, and the total size.
# jupytext is not carried: running a chapter .ipynb with papermill does not import it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEST=.whl/gpu
WHEELS=(
  # the library and the tests
  plotly==7.1.0 pycocotools==2.0.11 faster-coco-eval==1.8.0 ensemble-boxes==1.0.9
  # papermill and the notebook format
  papermill==2.7.0 nbclient==0.11.0 nbformat==5.11.1 fastjsonschema==2.22.3 jsonschema==4.26.0
  jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 entrypoints==0.4.2 tenacity==9.2.1
  # the kernel
  jupyter-client==8.10.0 jupyter-core==5.9.1 platformdirs==4.14.9 traitlets==5.16.1 pyzmq==27.3.0 tornado==6.6.1
  ipykernel==7.4.0 comm==0.2.3 debugpy==1.8.22 matplotlib-inline==0.2.2 nest-asyncio2==1.7.4
  ipython==9.18.1 ipython-pygments-lexers==1.1.1 jedi==0.20.1 parso==0.8.7 prompt-toolkit==3.0.53 wcwidth==0.9.4
  pexpect==4.9.0 ptyprocess==0.7.0 stack-data==0.6.3 asttokens==3.0.2 executing==2.3.0 pure-eval==0.2.4
)
rm -rf "$DEST"
mkdir -p "$DEST"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d "$DEST" "${WHEELS[@]}"
"$PY" bench/gpu_check.py --verify-wheels "$DEST"
du -sh "$DEST"
