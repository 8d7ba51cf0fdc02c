"""Command line of the book: ``python -m o365lib.book {run,build,sync,check-pairs,train}``.

- ``run --profile P [--chapters 01 03]``: execute chapters with papermill, build the HTML.
- ``build [--profile P]``: only build the HTML from the executed notebooks of profile P.
- ``sync``: bring each ``book/NN_*.py`` and its ``.ipynb`` in line, strip outputs.
- ``check-pairs``: fail when a pair differs or a committed notebook has outputs (CI).
- ``train --profile P --what baseline [--seed S]``: train (or find) models outside the book, e.g. under
  ``torchrun --nproc_per_node N -m o365lib.book train ...`` on GPUs (``--what list`` names the choices).
- ``check-data --profile P``: validate the profile's data files end to end before a multi-day run.
"""

from __future__ import annotations

import argparse
import sys

from o365lib.book import models, remedies, tricks


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m o365lib.book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute chapters with papermill, then build the book")
    run.add_argument("--profile", default="default", help="profile name or YAML path (default: default)")
    run.add_argument("--chapters", nargs="*", help="chapter numbers or names (default: all)")
    run.add_argument("--no-build", action="store_true", help="execute only, do not build the HTML")
    run.add_argument("--keep-going", action="store_true", help="run the other chapters after a failure")
    run.add_argument("--output-root", help="folder receiving _build/ (default: the project root)")
    run.add_argument("--log-output", action="store_true", help="stream the notebooks' output")
    build = sub.add_parser("build", help="build the HTML from already executed notebooks")
    build.add_argument("--profile", default="default")
    build.add_argument("--no-strict", action="store_true", help="do not turn warnings into errors")
    sub.add_parser("sync", help="jupytext --sync every book/NN_*.py with its .ipynb, strip outputs")
    sub.add_parser("check-pairs", help="fail when a .py/.ipynb pair differs or a notebook has outputs")
    train = sub.add_parser("train", help="train (or reuse) a model of a profile, outside the book")
    train.add_argument("--profile", default="default")
    train.add_argument("--what", default="baseline",
                       help="what to train or find: list prints the choices")
    train.add_argument("--classes", help="class-rank range for --what expert, e.g. 301-365")
    train.add_argument("--sampler", help="sampler for --what resampled, e.g. head_downsample")
    train.add_argument("--init", choices=("backbone", "full"), help="initialisation for --what tiny")
    train.add_argument("--seed", type=int, help="one random seed (default: every seed of the profile)")
    check = sub.add_parser("check-data", help="validate a profile's data files end to end before a long run")
    check.add_argument("--profile", default="default")
    check.add_argument("--sample", type=int, default=200,
                       help="images decoded per split, at random (every image's header is read: size, readable)")
    check.add_argument("--all-images", action="store_true", help="decode every image (about 1 h per 1.7M images)")
    return parser


def _seeds(ctx, args) -> list[int]:
    return [args.seed] if args.seed is not None else ctx.seeds


def _need(args, name: str) -> str:
    value = getattr(args, name)
    if not value:
        raise SystemExit(f"train --what {args.what} needs --{name}")
    return value


#: What ``train --what`` can train or find: name -> (description, function(ctx, args) -> list of runs).
TRAIN_COMMANDS = {
    "backbone": ("the baseline's pretrained backbone (generated classes disjoint from the detection classes)",
                 lambda ctx, args: [models.baseline_backbone(ctx)]),
    "baseline": ("the chapter 2 baseline, every seed (or --seed)",
                 lambda ctx, args: [models.ensure_baseline(ctx, s) for s in _seeds(ctx, args)]),
    "expert": ("an expert fine-tuned on --classes (e.g. 301-365) from the baseline",
               lambda ctx, args: [remedies.ensure_expert(ctx, _need(args, "classes"), seed=s,
                                                         base=models.ensure_baseline(ctx, s)) for s in _seeds(ctx, args)]),
    "resampled": ("the baseline fine-tuned with --sampler (uniform, repeat_factor, class_aware, head_downsample)",
                  lambda ctx, args: [remedies.ensure_resampled(ctx, _need(args, "sampler"), seed=s,
                                                               base=models.ensure_baseline(ctx, s)) for s in _seeds(ctx, args)]),
    "pretrained": ("the baseline recipe from the better pretrained backbone",
                   lambda ctx, args: [tricks.ensure_pretrained(ctx, s) for s in _seeds(ctx, args)]),
    "multiscale": ("the pretrained recipe with multi-scale training",
                   lambda ctx, args: [tricks.ensure_multiscale(ctx, s) for s in _seeds(ctx, args)]),
    "tiny": ("a tiny-track model, --init backbone or full",
             lambda ctx, args: [tricks.ensure_tiny(ctx, seed=s, init=args.init or "full") for s in _seeds(ctx, args)]),
}


def _train(args) -> int:
    from o365lib.book import setup_chapter

    if args.what == "list":
        for name, (text, _) in TRAIN_COMMANDS.items():
            print(f"{name:12s} {text}")
        return 0
    if args.what not in TRAIN_COMMANDS:
        raise SystemExit(f"unknown --what {args.what!r}; known: {sorted(TRAIN_COMMANDS)} (or list)")
    ctx = setup_chapter(f"train_{args.what}", profile=args.profile)
    for run in TRAIN_COMMANDS[args.what][1](ctx, args):
        print(f"[o365book] {args.what}: {getattr(run, 'checkpoint', run)}")
    return 0


def _check_data(args) -> int:
    from o365lib.book import datasets, setup_chapter
    from o365lib.data.check import check_dataset

    ctx = setup_chapter("check_data", profile=args.profile)
    splits = datasets.ensure_dataset(ctx)
    report = check_dataset(dict(splits.files), dict(splits.image_roots), sample=args.sample,
                           all_images=args.all_images, box_policy=ctx.cfg.data.box_policy)
    print(report.text())
    return 1 if report.errors else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from o365lib.book import notebooks, runner
    from o365lib.book.profiles import project_root

    if args.command == "run":
        return runner.run_book(profile=args.profile, chapters=args.chapters, build=not args.no_build,
                               output_root=args.output_root, keep_going=args.keep_going,
                               log_output=args.log_output)
    if args.command == "build":
        from o365lib.book.profiles import profile_path

        root = project_root()
        executed = root / "_build" / "executed" / profile_path(args.profile, root=root).stem
        from o365lib.book.profiles import load_profile
        from o365lib.book.records import failed_chapters

        for chapter, record in failed_chapters(load_profile(args.profile, root=root).results_dir).items():
            print(f"[o365book] the latest run of chapter {chapter} FAILED ({record.get('when', '?')}): "
                  f"{record.get('error', '')[:300]}\n  its page shows the last good run", file=sys.stderr)
        result = runner.build_html(root=root, executed_dir=executed, strict=not args.no_strict)
        print(result.stdout[-3000:], result.stderr[-6000:], sep="\n")
        return result.returncode
    if args.command == "sync":
        for path in notebooks.sync_pairs(project_root() / "book"):
            print(f"synced {path}")
        return 0
    if args.command == "check-pairs":
        problems = notebooks.check_pairs(project_root() / "book")
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"check-pairs: {len(problems)} problem(s)")
        return 1 if problems else 0
    if args.command == "train":
        return _train(args)
    if args.command == "check-data":
        return _check_data(args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
