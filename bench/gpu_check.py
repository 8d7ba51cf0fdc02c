"""The GPU machine's one check: CUDA tests, detector and fusion benchmarks, one chapter on CUDA.

Called by ``bench/gpu_check.sh`` (which installs the carried wheels first); see that file for the
``run`` invocation. Parts, each in its own subprocess with its own timeout, in this order:

1. ``tests``: the CUDA-parametrised cases of tests/ops (soft-NMS, WBF; ``-k cuda``) and
   tests/modeling/test_cuda_*.py (Cascade R-CNN bf16 train step and inference, fp32 CUDA vs CPU, RoIAlign);
2. ``detector``: R-50-FPN Cascade R-CNN, 365 classes, 800x1333 inputs, batch 2, bf16 autocast
   (then fp32): train and inference images/s, peak GPU memory (``bench_detector.run_ours``);
3. ``fusion``: ``bench/bench_fusion.py --device cuda`` on a smaller workload;
4. ``chapter``: papermill of book/02_baseline.ipynb on a copy of the smoke profile whose results
   and data live in a temporary folder, ``-p device cuda``; wall time, metrics.json, the device
   recorded in parameters.json.

A failing or timed-out part is recorded in the JSON and the next part runs. The JSON is rewritten
after every part, so an outer kill still leaves the parts done so far. ``--device cpu`` is the dry
run: the same parts on CPU with tiny sizes (the tests part selects the torch-on-CPU twins of the
CUDA cases; tests/modeling/test_cuda_*.py are then collected and skipped).

``--verify-wheels DIR`` (used by ``bench/fetch_gpu_wheels.sh``) checks that the carried wheels plus
the GPU image's preinstalled packages satisfy every wheel's requirements for CPython 3.12 on Linux.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Per device: sizes, the pytest selection and each part's timeout (seconds).
SETTINGS = {
    "cuda": {
        "tests_k": "cuda",
        "detector": {"case": "r50", "height": 800, "width": 1333, "warmup": 3, "repeats": 10, "fp32": True},
        "fusion_args": ["--images", "250"],
        "timeouts": {"environment": 60, "tests": 120, "detector": 120, "fusion": 110, "chapter": 180},
    },
    "cpu": {  # dry run: same parts, tiny sizes
        "tests_k": "cuda or torch-cpu",  # the torch-on-CPU twins of the CUDA cases
        "detector": {"case": "tiny", "height": 128, "width": 213, "warmup": 1, "repeats": 1, "fp32": False},
        "fusion_args": ["--images", "8", "--boxes", "100", "--no-compile-check", "--threads", "1"],
        "timeouts": {"environment": 60, "tests": 150, "detector": 120, "fusion": 90, "chapter": 400},
    },
}
PARTS = ("environment", "tests", "detector", "fusion", "chapter")
TEST_FILES = ["tests/ops/test_ops_soft_nms.py", "tests/ops/test_ops_wbf.py"]
#: Modules the parts import beyond torch/torchvision; the environment part imports each one.
MODULES = [
    "numpy",
    "pandas",
    "PIL",
    "yaml",
    "tqdm",
    "plotly",
    "pycocotools",
    "faster_coco_eval",
    "numba",
    "ensemble_boxes",
    "pytest",
    "papermill",
    "nbformat",
    "nbclient",
    "jupyter_client",
    "ipykernel",
    "IPython",
    "zmq",
    "o365lib",
    "o365lib.book",
]
DISTRIBUTIONS = [
    "torch",
    "torchvision",
    "numpy",
    "pandas",
    "pillow",
    "pyyaml",
    "tqdm",
    "plotly",
    "pycocotools",
    "faster-coco-eval",
    "numba",
    "llvmlite",
    "ensemble-boxes",
    "pytest",
    "papermill",
    "nbformat",
    "nbclient",
    "jupyter-client",
    "ipykernel",
    "ipython",
    "pyzmq",
    "tornado",
    "psutil",
    "pygments",
]
#: The GPU image's preinstalled packages (device KINDS.md, read 2026-11-17): never carried, never replaced.
_PREINSTALLED_NAMES = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers
flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py
markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind
narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc
nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir
onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging
pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham
simplejson six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore
threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig
werkzeug wheel wrapt xarray xxhash yarl zipp"""
PREINSTALLED = frozenset(_PREINSTALLED_NAMES.split())
LOG_CAP = 60_000  # characters of each part's output kept in the log file
NOTEBOOK_CAP = 15 * 2**20  # bytes: larger executed notebooks are not copied back


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ----------------------------------------------------------------------------------------------
# wheels


def verify_wheels(folder: Path) -> int:
    """Every requirement of every wheel in ``folder`` (markers for CPython 3.12 / Linux) is met by
    another carried wheel (version checked) or by the GPU image's preinstalled packages."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import parse_wheel_filename
    from packaging.version import Version

    environment = {
        **default_environment(),
        "python_version": "3.12",
        "python_full_version": "3.12.3",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
        "extra": "",
    }
    wheels = sorted(folder.glob("*.whl"))
    carried: dict[str, Version] = {}
    problems = []
    for wheel in wheels:
        name, version, _, tags = parse_wheel_filename(wheel.name)
        if _normalise(name) in carried:
            problems.append(f"two versions of {name}")
        carried[_normalise(name)] = version
        if not any(t.interpreter in ("py3", "cp312") or t.abi == "abi3" for t in tags):
            problems.append(f"{wheel.name}: no tag for CPython 3.12")
        if _normalise(name) in PREINSTALLED:
            problems.append(f"{wheel.name}: preinstalled on the GPU image, do not carry it")
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            lines = archive.read(metadata).decode("utf8").splitlines()
        for line in lines:
            if not line.startswith("Requires-Dist:"):
                continue
            requirement = Requirement(line.split(":", 1)[1].strip())
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            name = _normalise(requirement.name)
            if name in carried:
                if not requirement.specifier.contains(carried[name], prereleases=True):
                    problems.append(f"{wheel.name} needs {requirement}, carried {carried[name]}")
            elif name not in PREINSTALLED:
                problems.append(f"{wheel.name} needs {requirement}: neither carried nor preinstalled")
    size = sum(w.stat().st_size for w in wheels)
    print(f"{len(wheels)} wheels, {size / 2**20:.1f} MiB in {folder}")
    for problem in problems:
        print("PROBLEM:", problem)
    if size > 40 * 2**20:
        print("PROBLEM: over 40 MiB (the run tool carries 64 MiB with the working tree)")
        return 1
    return 1 if problems else 0


# ----------------------------------------------------------------------------------------------
# child parts (run in their own process)


def child_detector(device: str) -> None:
    """Print one RESULT line per precision: bench_detector.run_ours on HxW inputs (bf16 autocast on
    CUDA first, then fp32 with the peak-memory counter reset)."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("bench_detector", ROOT / "bench" / "bench_detector.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cfg = SETTINGS[device]["detector"]

    def rect_inputs(size, batch, num_classes, device):
        """bench_detector's inputs at height x width instead of size x size (same generator)."""
        generator = torch.Generator().manual_seed(0)
        height, width = cfg["height"], cfg["width"]
        images = [torch.rand(3, height, width, generator=generator).to(device) for _ in range(batch)]
        targets = []
        for _ in range(batch):
            xy = torch.rand(6, 2, generator=generator) * torch.tensor([width, height]) * 0.6
            wh = 8 + torch.rand(6, 2, generator=generator) * torch.tensor([width, height]) * 0.35
            labels = torch.randint(1, num_classes + 1, (6,), generator=generator)
            targets.append({"boxes": torch.cat([xy, xy + wh], 1).to(device), "labels": labels.to(device)})
        return images, targets

    bench._inputs = rect_inputs
    for amp in [True, False] if device == "cuda" and cfg["fp32"] else [device == "cuda"]:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        result = bench.run_ours(
            cfg["case"], device=device, amp=amp, warmup=cfg["warmup"], repeats=cfg["repeats"], num_classes=365
        )
        result["image_hw"] = [cfg["height"], cfg["width"]]
        result.pop("image_size", None)  # bench_detector's square size; the inputs were image_hw
        if device == "cuda":
            result["peak_cuda_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
        print("RESULT " + json.dumps(result), flush=True)


def child_environment() -> None:
    """Versions and a real import of every module the parts use (one JSON line)."""
    out = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "distributions": {},
        "imports": {},
    }
    for name in DISTRIBUTIONS:
        try:
            out["distributions"][name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out["distributions"][name] = None
    for module in MODULES:
        try:
            __import__(module)
            out["imports"][module] = "ok"
        except Exception as error:  # noqa: BLE001 - recorded, the parts report their own failures
            out["imports"][module] = f"{type(error).__name__}: {error}"[:300]
    try:
        import torch
        import torchvision
    except Exception as error:  # noqa: BLE001 - recorded; every part will fail and say why
        out["torch"] = f"import failed: {type(error).__name__}: {error}"[:300]
        out["cuda_available"] = False
        print("RESULT " + json.dumps(out), flush=True)
        return

    out.update(
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        cuda_available=torch.cuda.is_available(),
        torch_threads=torch.get_num_threads(),
    )
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out.update(
            gpu=props.name,
            gpu_memory_gib=props.total_memory / 2**30,
            gpu_capability=f"{props.major}.{props.minor}",
            gpu_multiprocessors=props.multi_processor_count,
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        out["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()[:200]
    except (OSError, subprocess.TimeoutExpired) as error:
        out["nvidia_smi"] = f"unavailable: {error}"
    print("RESULT " + json.dumps(out), flush=True)


# ----------------------------------------------------------------------------------------------
# the orchestrator


def _source_digest() -> str:
    """sha256 of o365lib/, bench/ and tests/ sources: which code ran, without a .git folder."""
    digest = hashlib.sha256()
    for path in sorted(p for d in ("o365lib", "bench", "tests") for p in (ROOT / d).rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (from /proc): a Jupyter kernel runs in its own session, so killing
    papermill's process group alone would leave it computing on the GPU."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def run_command(command: list[str], *, timeout: float, log, env: dict) -> dict:
    """Run ``command`` in its own process group; kill the group at ``timeout``. Output goes to ``log``."""
    start = time.perf_counter()
    log.write(f"\n===== {' '.join(command)}  (timeout {timeout:.0f} s)\n")
    log.flush()
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        for pid in _descendants(process.pid):  # our own child's processes, the kernel included
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        timed_out = True
    seconds = time.perf_counter() - start
    text = output or ""
    log.write(
        text
        if len(text) <= LOG_CAP
        else f"[... {len(text) - LOG_CAP} characters cut ...]\n" + text[-LOG_CAP:]
    )
    log.flush()
    results = [json.loads(line[7:]) for line in text.splitlines() if line.startswith("RESULT ")]
    return {
        "returncode": None if timed_out else process.returncode,
        "timed_out": timed_out,
        "seconds": round(seconds, 2),
        "results": results,
        "tail": text[-1500:],
    }


def part_environment(ctx) -> dict:
    done = run_command(
        [ctx.python, __file__, "--child", "environment", "--device", ctx.device],
        timeout=ctx.timeout,
        log=ctx.log,
        env=ctx.env,
    )
    ok = done["returncode"] == 0 and done["results"]
    record = {"ok": bool(ok), **({"info": done["results"][-1]} if ok else {"error": done["tail"]})}
    if ok:
        missing = {m: e for m, e in done["results"][-1]["imports"].items() if e != "ok"}
        record["ok"] = not missing and (ctx.device != "cuda" or done["results"][-1]["cuda_available"])
        record["failed_imports"] = missing
    return {**record, "seconds": done["seconds"], "timed_out": done["timed_out"]}


def _junit_summary(path: Path) -> dict:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    totals = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = []
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            element = case.find(kind)
            if element is not None:
                failed.append(
                    {
                        "test": f"{case.get('classname')}::{case.get('name')}",
                        "kind": kind,
                        "message": (element.get("message") or "")[:400],
                    }
                )
    totals["passed"] = totals["tests"] - totals["failures"] - totals["errors"] - totals["skipped"]
    return {**totals, "failed": failed[:40]}


def part_tests(ctx) -> dict:
    junit = ctx.work / "junit.xml"
    files = TEST_FILES + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_cuda_*.py"))
    command = [
        ctx.python,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "-rfEs",
        f"--junitxml={junit}",
        "-k",
        SETTINGS[ctx.device]["tests_k"],
        *files,
    ]
    done = run_command(command, timeout=ctx.timeout, log=ctx.log, env=ctx.env)
    record = {
        "command": " ".join(command[1:]),
        "seconds": done["seconds"],
        "timed_out": done["timed_out"],
        "returncode": done["returncode"],
    }
    if junit.is_file():
        record.update(_junit_summary(junit))
    else:
        record["error"] = done["tail"]
    # pytest exit 0: all selected passed; on CUDA every test_cuda_* case must have run, not skipped
    record["ok"] = done["returncode"] == 0 and (ctx.device != "cuda" or record.get("skipped", 1) == 0)
    return record


def part_detector(ctx) -> dict:
    done = run_command(
        [ctx.python, __file__, "--child", "detector", "--device", ctx.device],
        timeout=ctx.timeout,
        log=ctx.log,
        env=ctx.env,
    )
    record = {
        "ok": done["returncode"] == 0 and bool(done["results"]),
        "seconds": done["seconds"],
        "timed_out": done["timed_out"],
        "returncode": done["returncode"],
    }
    for result in done["results"]:
        record["bf16" if result["amp"] else "fp32"] = result
    if not record["ok"]:
        record["error"] = done["tail"]
    return record


def part_fusion(ctx) -> dict:
    out = ctx.work / "fusion.json"
    command = [
        ctx.python,
        "bench/bench_fusion.py",
        "--device",
        ctx.device,
        "--out",
        str(out),
        *SETTINGS[ctx.device]["fusion_args"],
    ]
    done = run_command(command, timeout=ctx.timeout, log=ctx.log, env=ctx.env)
    record = {
        "ok": done["returncode"] == 0 and out.is_file(),
        "command": " ".join(command[1:]),
        "seconds": done["seconds"],
        "timed_out": done["timed_out"],
        "returncode": done["returncode"],
    }
    if out.is_file():  # written after each of soft-NMS, WBF, NMS: partial results survive a timeout
        record["report"] = json.loads(out.read_text())
        report = record["report"]
        record["outputs_equal_ensemble_boxes"] = all(
            report.get(k, {}).get(f, 0) == 0
            for k, f in (
                ("soft_nms", "images_with_different_kept_set"),
                ("wbf", "images_with_different_output"),
                ("nms", "images_with_different_kept_set"),
            )
        )
        record["ok"] = record["ok"] and record["outputs_equal_ensemble_boxes"]
    if not record["ok"]:
        record["error"] = done["tail"]
    return record


def part_chapter(ctx) -> dict:
    import yaml

    from o365lib.strict_yaml import read_yaml_mapping

    chapter = "02_baseline"
    profile = read_yaml_mapping(ROOT / "parameters" / "profiles" / "smoke.yaml")
    results_dir = ctx.work / "results" / "smoke"
    profile["results_dir"] = str(results_dir)
    profile["data"]["root"] = str(ctx.work / "data" / "synthetic" / "smoke")
    profile_file = ctx.work / "smoke_gpu_check.yaml"
    profile_file.write_text(yaml.safe_dump(profile, sort_keys=False))
    notebook = ctx.work / f"{chapter}_{ctx.device}.ipynb"
    command = [
        ctx.python,
        "-m",
        "papermill",
        f"book/{chapter}.ipynb",
        str(notebook),
        "-p",
        "profile",
        str(profile_file),
        "-p",
        "device",
        ctx.device,
        "-k",
        "python3",
        "--cwd",
        str(ROOT),
        "--no-progress-bar",
        "--log-output",
    ]
    done = run_command(command, timeout=ctx.timeout, log=ctx.log, env=ctx.env)
    metrics = results_dir / chapter / "metrics.json"
    parameters = results_dir / chapter / "parameters.json"
    record = {
        "command": " ".join(command[1:]),
        "seconds": done["seconds"],
        "timed_out": done["timed_out"],
        "returncode": done["returncode"],
        "metrics_json": str(metrics),
        "metrics_written": metrics.is_file(),
    }
    if parameters.is_file():
        record["device_recorded"] = json.loads(parameters.read_text()).get("device")
    if metrics.is_file():
        summary = json.loads(metrics.read_text()).get("summary", {})
        record["summary"] = {k: v for k, v in list(summary.items())[:12]}
    record["ok"] = (
        done["returncode"] == 0 and record["metrics_written"] and record.get("device_recorded") == ctx.device
    )
    if notebook.is_file():
        record["notebook"] = str(notebook)
        record["slow_cells"] = _cell_seconds(notebook)
        if ctx.out_dir and notebook.stat().st_size <= NOTEBOOK_CAP:
            shutil.copy(notebook, ctx.out_dir / notebook.name)
            record["notebook"] = notebook.name
    if not record["ok"]:
        record["error"] = done["tail"]
    return record


def _cell_seconds(notebook: Path) -> list:
    """[cell index, first source line, seconds] of the executed cells that took over a second."""
    try:
        cells = json.loads(notebook.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return []
    out = []
    for index, cell in enumerate(cells):
        seconds = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if cell.get("cell_type") == "code" and seconds and seconds > 1:
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            out.append(
                [index, source.strip().splitlines()[0][:80] if source.strip() else "", round(seconds, 2)]
            )
    return out


class Context:
    def __init__(self, args):
        self.device = args.device
        self.python = sys.executable
        self.work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check_"))
        self.work.mkdir(parents=True, exist_ok=True)
        out_env = os.environ.get("OUT")
        self.out_dir = Path(out_env) if out_env else None
        stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M")
        if args.out:
            self.out = Path(args.out)
        elif self.out_dir:
            self.out = self.out_dir / "gpu_check.json"
        else:
            suffix = "" if self.device == "cuda" else "_cpu_dryrun"
            self.out = ROOT / "bench" / "results" / f"gpu_{stamp}{suffix}.json"
        self.log_path = (self.out_dir or self.work) / "gpu_check_log.txt"
        self.log = open(self.log_path, "a", encoding="utf8")  # noqa: SIM115 - closed in main
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "O365BOOK_ROOT": str(ROOT),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        }
        self.timeout = 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {PARTS}")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=420.0,
        help="seconds for all parts together; a part gets min(its timeout, what is left)",
    )
    parser.add_argument(
        "--out", default=None, help="JSON path (default $OUT/gpu_check.json, else bench/results/)"
    )
    parser.add_argument("--work", default=None, help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--install", default=None, help="JSON of the wheel install step (from gpu_check.sh)")
    parser.add_argument("--child", choices=("detector", "environment"), help=argparse.SUPPRESS)
    parser.add_argument("--verify-wheels", type=Path, default=None, help="check a wheel folder and exit")
    args = parser.parse_args(argv)
    if args.verify_wheels:
        return verify_wheels(args.verify_wheels)
    if args.child == "detector":
        child_detector(args.device)
        return 0
    if args.child == "environment":
        child_environment()
        return 0

    ctx = Context(args)
    started = time.perf_counter()
    report = {
        "check": "bench/gpu_check.sh",
        "device": args.device,
        "dry_run": args.device == "cpu",
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "source_sha256_16": _source_digest(),
        "budget_s": args.budget_s,
        "install": json.loads(Path(args.install).read_text())
        if args.install and Path(args.install).is_file()
        else None,
        "work_dir": str(ctx.work),
        "log": ctx.log_path.name if ctx.out_dir else str(ctx.log_path),
        "parts": {},
    }
    ctx.out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        report["seconds"] = round(time.perf_counter() - started, 2)
        report["ok"] = bool(report["parts"]) and all(p.get("ok") for p in report["parts"].values())
        report["failed_parts"] = [name for name, p in report["parts"].items() if not p.get("ok")]
        ctx.out.write_text(json.dumps(report, indent=2, default=str))

    functions = {
        "environment": part_environment,
        "tests": part_tests,
        "detector": part_detector,
        "fusion": part_fusion,
        "chapter": part_chapter,
    }
    for name in [p for p in args.parts.split(",") if p]:
        if name not in functions:
            report["parts"][name] = {"ok": False, "error": f"unknown part (known: {PARTS})"}
            continue
        left = args.budget_s - (time.perf_counter() - started)
        ctx.timeout = min(SETTINGS[args.device]["timeouts"][name], left)
        if ctx.timeout < 15:
            report["parts"][name] = {"ok": False, "error": f"not run: {left:.0f} s of the budget left"}
            save()
            continue
        print(f"[gpu_check] {name} (timeout {ctx.timeout:.0f} s) ...", flush=True)
        try:
            record = functions[name](ctx)
        except Exception as error:  # noqa: BLE001 - one part's bug must not stop the others
            record = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        record["timeout_s"] = round(ctx.timeout)
        report["parts"][name] = record
        save()
        print(
            f"[gpu_check] {name}: {'ok' if record.get('ok') else 'FAILED'} in {record.get('seconds', 0)} s",
            flush=True,
        )
    if "environment" in report["parts"] and "info" in report["parts"]["environment"]:
        info = report["parts"]["environment"]["info"]
        report["versions"] = {
            k: info.get(k) for k in ("python", "torch", "torchvision", "cuda", "cudnn", "gpu", "nvidia_smi")
        }
    save()
    ctx.log.close()
    print(json.dumps({k: report[k] for k in ("ok", "failed_parts", "seconds")}))
    print(f"[gpu_check] wrote {ctx.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
