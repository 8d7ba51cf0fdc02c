"""Command line of the book: ``python -m o365lib.book {run,build,sync,check-pairs,train}``.

- ``run --profile P [--chapters 01 03]``: execute chapters with papermill, build the HTML.
- ``build [--profile P]``: only build the HTML from the executed notebooks of profile P.
- ``sync``: bring each ``book/NN_*.py`` and its ``.ipynb`` in line, strip outputs.
- ``check-pairs``: fail when a pair differs or a committed notebook has outputs (CI).
- ``train --profile P --what baseline [--seed S]``: train (or find) models outside the book, e.g. under
  ``torchrun --nproc_per_node N -m o365lib.book train ...`` on GPUs (``--what list`` names the choices;
  chapter 7's models: ``--what beyond --row Seesaw`` or ``--row all``).
- ``plan --profile P [--chapters 02 03]``: before anything trains, list every artefact the chapters
  need, which exist already, and how long the others took the last time they were made.
- ``check-data --profile P``: validate the profile's data files end to end before a multi-day run.
"""

from __future__ import annotations

import argparse
import sys

from o365lib.book import routes
from o365lib.book.artefacts import datasets
from o365lib.book.artefacts.plan import plan_artefacts, plan_text
from o365lib.book.config.profiles import chapter_parameters, load_profile, profile_path, project_root
from o365lib.book.run import notebooks, records, runner
from o365lib.book.run.chapter import setup_chapter
from o365lib.book.studies.accuracy_tricks import TINY_STARTS


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
    train.add_argument("--init", choices=TINY_STARTS, help="start of --what tiny: coco (the COCO detector or its "
                       "stand-in), full (the full-track baseline) or backbone")
    train.add_argument("--row", help="chapter 7's row for --what beyond, e.g. Seesaw, or all")
    train.add_argument("--epochs", type=float, help="fine-tuning budget of --what beyond in epochs (chapter 7's "
                       "budget curve; default: the shared budget, resampling.epochs)")
    train.add_argument("--seed", type=int, help="one random seed (default: every seed of the profile)")
    plan = sub.add_parser("plan", help="list the artefacts chapters need, which exist, and their last cost")
    plan.add_argument("--profile", default="default")
    plan.add_argument("--chapters", nargs="*", help="chapter numbers or names (default: all)")
    check = sub.add_parser("check-data", help="validate a profile's data files end to end before a long run")
    check.add_argument("--profile", default="default")
    check.add_argument("--sample", type=int, default=200,
                       help="images decoded per split, at random (every image's header is read: size, readable)")
    check.add_argument("--all-images", action="store_true", help="decode every image (about 1 h per 1.7M images)")
    return parser


def _train(args) -> int:
    if args.what == "list":
        for name, (text, _) in routes.TRAIN_COMMANDS.items():
            print(f"{name:12s} {text}")
        return 0
    if args.what not in routes.TRAIN_COMMANDS:
        raise SystemExit(f"unknown --what {args.what!r}; known: {sorted(routes.TRAIN_COMMANDS)} (or list)")
    if args.epochs is not None and args.what != "beyond":
        raise SystemExit("--epochs is the budget of --what beyond (chapter 7's budget curve) only")
    ctx = setup_chapter(f"train_{args.what}", profile=args.profile)
    options = {"seed": args.seed, "classes": args.classes, "sampler": args.sampler, "init": args.init, "row": args.row,
               "epochs": args.epochs}
    for run in routes.TRAIN_COMMANDS[args.what][1](ctx, **options):
        print(f"[o365book] {args.what}: {getattr(run, 'checkpoint', run)}")
    return 0


def _plan(args) -> int:
    root = project_root()
    selected = runner.select_chapters(notebooks.chapter_sources(root / "book"), args.chapters)
    walks = []
    for source in selected:
        chapter = source.stem
        ctx = setup_chapter(chapter, profile=args.profile, **dict.fromkeys(chapter_parameters(chapter, root=root)))
        walk = routes.CHAPTER_MODELS.get(chapter, datasets.ensure_dataset)
        walks.append((chapter, lambda ctx=ctx, walk=walk: (datasets.ensure_dataset(ctx), walk(ctx))))
    profile_dir = load_profile(args.profile, root=root).results_dir
    print(plan_text(plan_artefacts(profile_dir, walks), profile_dir=profile_dir))
    return 0


def _check_data(args) -> int:
    from o365lib.data.check import check_dataset

    ctx = setup_chapter("check_data", profile=args.profile)
    splits = datasets.ensure_dataset(ctx)
    report = check_dataset(dict(splits.files), dict(splits.image_roots), sample=args.sample,
                           all_images=args.all_images, box_policy=ctx.cfg.data.box_policy)
    print(report.text())
    return 1 if report.errors else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return runner.run_book(profile=args.profile, chapters=args.chapters, build=not args.no_build,
                               output_root=args.output_root, keep_going=args.keep_going,
                               log_output=args.log_output)
    if args.command == "build":
        root = project_root()
        executed = root / "_build" / "executed" / profile_path(args.profile, root=root).stem
        for chapter, record in records.failed_chapters(load_profile(args.profile, root=root).results_dir).items():
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
    if args.command == "plan":
        return _plan(args)
    if args.command == "check-data":
        return _check_data(args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
