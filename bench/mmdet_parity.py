"""Parity of ``load_mmdet_checkpoint`` with mmdet 3.3.0's own Cascade R-CNN inference, as a record.

The comparison of tests/modeling/test_mmdet_parity.py (same builders, seeds, images and matching,
from tests/support/mmdet_reference.py), written to JSON instead of asserted:

- ``r50``: cascade-rcnn_r50_fpn, seed 0, images 320 x 480 and 256 x 416;
- ``x101-32x4d``: cascade-rcnn_x101-32x4d_fpn, seed 1, the same images;
- ``r50-dcn``: the R-50 config with ``dcn=dict(type='DCN', deform_groups=1,
  fallback_on_stride=False)``, ``stage_with_dcn=(False, True, True, True)`` (mmdet's
  configs/dcn/cascade-rcnn_r50-dconv-c3-c5_fpn_1x_coco.py), seed 3, non-zero offset weights
  (offsets of a few pixels), images 256 x 384 and 224 x 352.

mmdet's model gets random weights, is saved as an mmdet checkpoint, loaded with
``load_mmdet_checkpoint`` and both run on the two images (one padded batch each side). Recorded
per image: max |proposal diff| (RPN; as sets, plus row by row in score order and the rows swapped
among exactly equal scores, which mmcv's compiled nms orders with an unstable sort), detections on each side, pairs, unmatched,
max |box diff| and |score diff| over paired detections, whether labels agree (detections pair only
with the same label and a box within 1 px, so ``label_mismatches`` counts the detections left
without a partner, those within 1e-4 of a score cut-off apart: ``unpaired_at_cutoff``), per case the
DCN offsets' size (mean |offset| per layer, range; largest |offset|) and times. The tests' tolerances (0.01 px, 1e-4, exact labels) give
``within_tolerance``.

Which ``mmcv._ext`` runs mmdet's kernels (RoIAlign, NMS, deformable convolution) is recorded:

    .venv/bin/python bench/mmdet_parity.py --shim --out bench/results/mmdet_parity_shim.json
    PYTHONPATH=$PWD ../mmvenv/bin/python bench/mmdet_parity.py \\
        --out bench/results/mmdet_parity_real_mmcv.json          # after bash bench/install_mmdet.sh

``--shim`` installs the torchvision-backed test shim (tests/support/mmcv_ext_shim.py) even where the
compiled extension exists; without it the compiled ``mmcv._ext`` must import, or the script stops.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NUM_CLASSES = 365
TOLERANCE = {"proposal_px": 0.01, "box_px": 0.01, "score": 1e-4}
CASES = {  # name: (mmdet_reference variant, seed, dcn, image shapes)
    "r50": ("r50", 0, False, [(3, 320, 480), (3, 256, 416)]),
    "x101-32x4d": ("x101-32x4d", 1, False, [(3, 320, 480), (3, 256, 416)]),
    "r50-dcn": ("r50", 3, True, [(3, 256, 384), (3, 224, 352)]),
}


def images(shapes) -> list[torch.Tensor]:
    """The tests' images: uniform random RGB in [0, 1] from generator seed 7."""
    generator = torch.Generator().manual_seed(7)
    return [torch.randint(0, 256, shape, generator=generator).float() / 255 for shape in shapes]


def select_ext(shim: bool) -> dict:
    """Install the shim (``--shim``) or require the compiled ``mmcv._ext``; describe what runs."""
    import mmcv

    from tests.support.mmcv_ext_shim import install

    if shim:
        ext = install(force=True)
    else:
        try:
            import mmcv._ext as ext
        except ImportError as error:
            raise SystemExit(f"the compiled mmcv._ext does not import ({error}); use --shim or the mmcv venv")
    is_shim = bool(getattr(ext, "__test_shim__", False))
    if is_shim != shim:
        raise SystemExit(f"asked for {'the shim' if shim else 'the compiled mmcv._ext'}, got the other")
    import mmdet

    return {
        "mmcv": mmcv.__version__,
        "mmcv_ext": "shim (tests/support/mmcv_ext_shim.py, torchvision ops)" if is_shim else "compiled",
        "mmcv_ext_file": getattr(ext, "__file__", None),
        "mmcv_ext_functions": None if is_shim else sorted(n for n in dir(ext) if not n.startswith("_")),
        "mmcv_file": mmcv.__file__,
        "mmdet": mmdet.__version__,
        "mmdet_file": mmdet.__file__,
    }


def run_case(name: str, workdir: Path) -> dict:
    from o365lib.modeling import load_mmdet_checkpoint
    from tests.support.mmdet_reference import (
        build_mmdet_cascade,
        compare_proposals,
        match_detections,
        mmdet_predict,
        ours_predict,
    )

    variant, seed, dcn, shapes = CASES[name]
    batch = images(shapes)
    start = time.perf_counter()
    reference = build_mmdet_cascade(variant, num_classes=NUM_CLASSES, seed=seed, dcn=dcn)
    offsets = []
    hooks = [
        module.register_forward_hook(lambda module, args, output: offsets.append(output.abs()))
        for module_name, module in reference.named_modules()
        if module_name.endswith("conv_offset")
    ]
    built = time.perf_counter()
    ref_rpn, ref_det = mmdet_predict(reference, batch)
    for hook in hooks:
        hook.remove()
    reference_s = time.perf_counter() - built
    path = workdir / f"{name}.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    ours = load_mmdet_checkpoint(path, num_classes=NUM_CLASSES)
    ours.transform.resize_images = False  # mmdet's side gets the images unresized too
    loaded = time.perf_counter()
    our_rpn, our_det = ours_predict(ours, batch)
    ours_s = time.perf_counter() - loaded

    per_image = []
    for index, shape in enumerate(shapes):
        proposals = compare_proposals(ref_rpn[index], our_rpn[index])
        match = match_detections(ref_det[index], our_det[index])
        per_image.append(
            {
                "shape_hw": list(shape[1:]),
                "proposals": [len(ref_rpn[index]["boxes"]), len(our_rpn[index]["boxes"])],
                "max_proposal_diff": proposals["set_max_diff"],
                "max_proposal_diff_row_by_row": proposals["ordered_max_diff"],
                "proposal_rows_swapped_at_score_ties": proposals["rows_swapped_at_ties"],
                "proposal_rows_differing_untied": proposals["rows_differing_untied"],
                "detections_mmdet": match["reference"],
                "detections_ours": match["ours"],
                "paired": match["paired"],
                "unmatched": match["unmatched"],
                "label_mismatches": match["unmatched"],
                "unpaired_at_cutoff": match["reference"]
                + match["ours"]
                - 2 * match["paired"]
                - match["unmatched"],
                "labels_equal": match["labels_equal"],
                "max_box_diff": match["max_box_diff"],
                "max_score_diff": match["max_score_diff"],
                "max_score_mmdet": float(ref_det[index]["scores"].max())
                if len(ref_det[index]["scores"])
                else None,
            }
        )
    proposal_diffs = [e["max_proposal_diff"] for e in per_image]
    summary = {
        "max_proposal_diff": None if None in proposal_diffs else max(proposal_diffs),
        "proposal_rows_swapped_at_score_ties": sum(
            e["proposal_rows_swapped_at_score_ties"] or 0 for e in per_image
        ),
        "max_box_diff": max(e["max_box_diff"] for e in per_image),
        "max_score_diff": max(e["max_score_diff"] for e in per_image),
        "label_mismatches": sum(e["label_mismatches"] for e in per_image),
        "unmatched": sum(e["unmatched"] for e in per_image),
        "detections": sum(e["detections_mmdet"] for e in per_image),
    }
    summary["within_tolerance"] = bool(
        summary["max_proposal_diff"] is not None
        and summary["max_proposal_diff"] <= TOLERANCE["proposal_px"]
        and all(e["proposal_rows_differing_untied"] == 0 for e in per_image)
        and summary["max_box_diff"] <= TOLERANCE["box_px"]
        and summary["max_score_diff"] <= TOLERANCE["score"]
        and summary["unmatched"] == 0
        and all(e["labels_equal"] for e in per_image)
        and all(e["detections_mmdet"] > 10 for e in per_image)
    )
    record = {
        "mmdet_config": variant + ("_dconv-c3-c5" if dcn else ""),
        "ours_config": getattr(ours, "mmdet_config", None),
        "seed": seed,
        "summary": summary,
        "images": per_image,
        "seconds": {
            "build_mmdet": built - start,
            "mmdet_predict": reference_s,
            "ours_predict": ours_s,
            "total": time.perf_counter() - start,
        },
    }
    if dcn:
        means = [float(offset.mean()) for offset in offsets]
        record["dcn_offsets_px"] = {
            "layers": len(offsets),
            "mean_abs_per_layer": [min(means), max(means)],
            "max_abs": max(float(offset.max()) for offset in offsets),
        }
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON record to write")
    parser.add_argument("--shim", action="store_true", help="mmdet's kernels from the torchvision test shim")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {','.join(CASES)}")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--note", default="", help="free text stored in the record (how mmcv was built)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    environment = select_ext(args.shim)
    import torchvision

    environment.update(
        {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "torch_file": torch.__file__,
            "python": platform.python_version(),
            "python_executable": sys.executable,
            "torch_threads": torch.get_num_threads(),
            "load_average_start": list(os.getloadavg()),
        }
    )
    start = time.perf_counter()
    cases = {}
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.cases.split(","):
            cases[name] = run_case(name, Path(workdir))
            print(name, json.dumps(cases[name]["summary"]), flush=True)
    environment["load_average_end"] = list(os.getloadavg())
    record = {
        "what": "load_mmdet_checkpoint vs mmdet 3.3.0 Cascade R-CNN inference, random weights, 365 classes",
        "note": args.note,
        "tolerance": TOLERANCE,
        "environment": environment,
        "all_within_tolerance": all(case["summary"]["within_tolerance"] for case in cases.values()),
        "cases": cases,
        "wall_s": time.perf_counter() - start,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print("wrote", args.out, "all within tolerance:", record["all_within_tolerance"])


if __name__ == "__main__":
    main()
