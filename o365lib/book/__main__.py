"""Command line of the book: ``python -m o365lib.book {run,build,sync,check-pairs,train}``.

- ``run --profile P [--chapters 01 03]``: execute chapters with papermill, build the HTML.
- ``build [--profile P]``: only build the HTML from the executed notebooks of profile P.
- ``sync``: bring each ``book/NN_*.py`` and its ``.ipynb`` in line, strip outputs.
- ``check-pairs``: fail when a pair differs or a committed notebook has outputs (CI).
- ``train --profile P --what baseline``: train (or find) a model outside the book, e.g. under
  ``torchrun --nproc_per_node N -m o365lib.book train ...`` on GPUs.
"""

from __future__ import annotations

import argparse
import sys


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
                       help="which model: baseline, expert (with --classes), ... (steps.ensure_<what>)")
    train.add_argument("--classes", help="class-rank range for experts, e.g. 301-365")
    return parser


def _train(args) -> int:
    from o365lib.book import setup_chapter, steps

    ensure = getattr(steps, f"ensure_{args.what.replace('-', '_')}", None)
    if ensure is None:
        known = sorted(n.removeprefix("ensure_") for n in dir(steps) if n.startswith("ensure_"))
        raise SystemExit(f"unknown --what {args.what!r}; known: {known}")
    ctx = setup_chapter(f"train_{args.what}", profile=args.profile)
    run = ensure(ctx, args.classes) if args.classes else ensure(ctx)
    print(f"[o365book] {args.what}: {getattr(run, 'checkpoint', run)}")
    return 0


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
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
