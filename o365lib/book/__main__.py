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
                       help="what to train: baseline, expert (with --classes), resampled (with --sampler), "
                            "pretrained, multiscale, ... (an ensure_<what> step; unknown names list them)")
    train.add_argument("--classes", help="class-rank range for --what expert, e.g. 301-365")
    train.add_argument("--sampler", help="sampler for --what resampled, e.g. head_downsample")
    return parser


#: Modules whose ``ensure_<what>(ctx[, value])`` functions ``train --what`` can call.
TRAIN_MODULES = ("o365lib.book.steps", "o365lib.book.remedies", "o365lib.book.tricks")
#: ensure_* functions that are building blocks, not things to train from the command line.
NOT_TRAINABLE = {"model", "predictions"}


def trainable_steps() -> dict:
    """``{what: function}`` for every ``ensure_<what>(ctx)`` or ``ensure_<what>(ctx, value)`` step."""
    import importlib
    import inspect

    found = {}
    for module_name in TRAIN_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name, function in inspect.getmembers(module, inspect.isfunction):
            what = name.removeprefix("ensure_")
            if not name.startswith("ensure_") or what in NOT_TRAINABLE or what in found:
                continue
            required = [p for p in inspect.signature(function).parameters.values()
                        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            if 1 <= len(required) <= 2:
                found[what] = function
    return found


def _train(args) -> int:
    from o365lib.book import setup_chapter

    steps = trainable_steps()
    if args.what == "list":
        print("\n".join(sorted(steps)))
        return 0
    ensure = steps.get(args.what.replace("-", "_"))
    if ensure is None:
        raise SystemExit(f"unknown --what {args.what!r}; known: {sorted(steps)}")
    value = args.classes or args.sampler
    ctx = setup_chapter(f"train_{args.what}", profile=args.profile)
    run = ensure(ctx, value) if value else ensure(ctx)
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
