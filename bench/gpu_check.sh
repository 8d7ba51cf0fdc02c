#!/usr/bin/env bash
# The GPU machine's one prepared check (NVIDIA H200, Python 3.12, torch 2.11 / torchvision 0.26
# preinstalled, no network). Writes ONE JSON: $OUT/gpu_check.json when $OUT is set (the run tool),
# else bench/results/gpu_<date>.json; plus $OUT/gpu_check_log.txt (every part's output) and the
# executed chapter notebook. Parts (bench/gpu_check.py; own timeout each, failures recorded, never
# abort): environment (versions, imports), tests (CUDA cases of tests/ops + tests/modeling/test_cuda_*.py),
# detector (R-50-FPN Cascade R-CNN 800x1333 bf16, then fp32: images/s, peak GPU memory), fusion
# (bench_fusion.py --device cuda, 250 images), chapter (papermill book/02_baseline.ipynb, smoke
# profile copy in a temp folder, -p device cuda). Expected: about 4-5 minutes; budget 420 s of parts
# plus the wheel install.
#
# Before the run, here (network): bash bench/fetch_gpu_wheels.sh   (-> .whl/gpu/, 37 wheels, 24.5 MiB)
# The run tool call (command, carry, timeout):
#   run(command="bash bench/gpu_check.sh", carry=[".whl/gpu"], timeout_s=500)
# Then read the JSON from files_at (gpu_check.json) and commit it as bench/results/gpu_<date>.json.
#
# Dry run on a CPU machine (same parts, tiny sizes):
#   bash bench/gpu_check.sh --dry-run        (or GPU_CHECK_DEVICE=cpu ...); measured 6.4 min wall, 2.4 min CPU
# Other settings: GPU_CHECK_PARTS=tests,detector (a subset), GPU_CHECK_BUDGET_S (default 420 on cuda, 720 on the dry run),
# GPU_CHECK_PYTHON (default: .venv/bin/python on the dry run when present, else python3),
# GPU_CHECK_INSTALL=0/1 (install the carried wheels; default 1 on cuda, 0 on the dry run).
set -u
cd "$(dirname "$0")/.." || exit 2
REPO=$(pwd)
DEVICE=${GPU_CHECK_DEVICE:-cuda}
for arg in "$@"; do
  case "$arg" in
    --dry-run) DEVICE=cpu ;;
    *) echo "gpu_check.sh: unknown argument $arg (only --dry-run)" >&2; exit 2 ;;
  esac
done
if [ -n "${GPU_CHECK_PYTHON:-}" ]; then PY=$GPU_CHECK_PYTHON
elif [ "$DEVICE" = cpu ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_XXXXXX")
WHEELS=${GPU_CHECK_WHEELS:-.whl/gpu}
SITE=$WORK/site
if [ "$DEVICE" = cuda ]; then INSTALL_DEFAULT=1 BUDGET_DEFAULT=420; else INSTALL_DEFAULT=0 BUDGET_DEFAULT=720; fi
INSTALL=${GPU_CHECK_INSTALL:-$INSTALL_DEFAULT}
export PYTHONUNBUFFERED=1

# 1. the carried wheels into a folder of their own (the preinstalled torch and numpy stay untouched)
status=skipped; seconds=0; count=0
if [ "$INSTALL" = 1 ]; then
  count=$(ls "$WHEELS"/*.whl 2>/dev/null | wc -l)
  if [ "$count" -gt 0 ]; then
    start=$(date +%s)
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
        --target "$SITE" "$WHEELS"/*.whl >"$WORK/install.log" 2>&1; then
      status=ok
      export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    else
      status=failed
    fi
    seconds=$(( $(date +%s) - start ))
  else
    status="no wheels in $WHEELS"
  fi
fi
"$PY" - "$WORK/install.json" "$status" "$seconds" "$count" "$WHEELS" "$WORK/install.log" <<'EOF'
import json, pathlib, sys
path, status, seconds, count, wheels, log = sys.argv[1:]
log = pathlib.Path(log)
tail = log.read_text(errors="replace")[-1500:] if log.is_file() else ""
pathlib.Path(path).write_text(json.dumps({"status": status, "seconds": int(seconds), "wheels": int(count),
                                          "folder": wheels, "log_tail": tail}))
EOF
echo "[gpu_check] device=$DEVICE python=$PY wheels: $status ($count in ${seconds} s) work=$WORK"

# 2. the parts; the exit code is 0 only when every part passed
"$PY" bench/gpu_check.py --device "$DEVICE" --work "$WORK" --install "$WORK/install.json" \
  --budget-s "${GPU_CHECK_BUDGET_S:-$BUDGET_DEFAULT}" ${GPU_CHECK_PARTS:+--parts "$GPU_CHECK_PARTS"}
