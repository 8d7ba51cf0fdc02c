"""The book page "Evaluate your own detector" (book/08) runs its cells end to end.

The model steps it reuses from chapters 2 and 3 (baseline, expert, their predictions, the merge) are
replaced by a generated workload, so this checks the page's own code and its use of the
evaluation API without training anything; the smoke book (tests/book, slow) runs it for real.
"""

import types
from pathlib import Path

import numpy as np
import yaml

from o365lib.book.artefacts import datasets, models, predictions
from o365lib.book.studies import remedies
from tests.support.coco_workload import random_workload

ROOT = Path(__file__).resolve().parents[2]


def test_page_runs_and_writes_its_report(tmp_path, monkeypatch):
    gt, dets = random_workload(0, num_images=40, num_classes=30)
    rng = np.random.default_rng(1)
    other = [dict(d, score=float(np.clip(d["score"] + rng.normal(0, 0.1), 0, 1))) for d in dets]
    monkeypatch.setattr(models, "ensure_baseline", lambda ctx, seed: types.SimpleNamespace(key="base"))
    monkeypatch.setattr(remedies, "ensure_expert", lambda ctx, spec, seed, base: types.SimpleNamespace(key="e"))
    monkeypatch.setattr(predictions, "lazy_predictions",
                        lambda ctx, run, split="val": types.SimpleNamespace(load=lambda: dets))
    monkeypatch.setattr(remedies, "merged_results",
                        lambda ctx, general, experts, strategy: types.SimpleNamespace(load=lambda: other))
    monkeypatch.setattr(datasets, "range_category_ids", lambda ctx, spec: [])
    monkeypatch.setattr(datasets, "load_split", lambda ctx, split: types.SimpleNamespace(dataset=gt))
    raw = yaml.safe_load((ROOT / "parameters" / "profiles" / "smoke.yaml").read_text())
    raw["results_dir"] = str(tmp_path / "results")
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(raw))
    source = (ROOT / "book" / "08_evaluate_your_detector.py").read_text()
    assert 'profile = "default"' in source and 'classes = "301-365"' in source
    source = source.replace('profile = "default"', f'profile = "{tmp_path / "profile.yaml"}"')
    source = source.replace('classes = "301-365"', 'classes = "21-30"').replace("bootstrap = 200", "bootstrap = 20")
    namespace: dict = {}
    exec(compile(source, "08_evaluate_your_detector.py", "exec"), namespace)  # noqa: S102 - the page's own cells
    folder = Path(namespace["ctx"].results_dir)
    assert {"report.html", "evaluation.json", "metrics.json", "parameters.json"} <= {p.name for p in folder.iterdir()}
    report = namespace["evaluation_report"]
    assert report.labels == ("baseline", "+ expert 21-30") and report.comparison["samples"] == 20
