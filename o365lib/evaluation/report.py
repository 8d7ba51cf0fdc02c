"""The command's plain-text summary: standard numbers, rank ranges, frequency buckets, fixed AP,
zero-AP classes, and with a second detector the paired differences with their intervals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from o365lib.evaluation.lvis import LVIS_STAT_NAMES

HEADLINE = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")


def _num(value, width: int = 6) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(f"{c!s:>{w}}" if i else f"{c!s:<{w}}"
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def default_ranges(num_classes: int) -> list[str]:
    """The talk's 1-150, 151-300, 301-365 for 365 classes; otherwise thirds of the ranking."""
    if num_classes == 365:
        return ["1-150", "151-300", "301-365"]
    if num_classes < 3:
        return [f"1-{num_classes}"] if num_classes else []
    a, b = round(num_classes / 3), round(2 * num_classes / 3)
    return [f"1-{a}", f"{a + 1}-{b}", f"{b + 1}-{num_classes}"]


def zero_ap_classes(metrics: Mapping, ranking: Mapping[int, int]) -> list[int]:
    """Category ids with ground truth and AP exactly 0, by rank."""
    zero = [int(c) for c, v in metrics["per_class"].items() if v == 0]
    return sorted(zero, key=lambda c: (ranking.get(c, 10 ** 9), c))


def summary_text(metrics: Mapping, *, ranking: Mapping[int, int], names: Mapping[int, str] | None = None,
                 label: str = "", other: Mapping | None = None, other_label: str = "",
                 comparison: Mapping | None = None, max_listed: int = 25) -> str:
    """A readable multi-table summary of one ``evaluate`` output (and a comparison, if given)."""
    names = names or {}
    out = [f"protocol {metrics['protocol']}  |  {metrics['num_images']:,} images  |  "
           f"{metrics['num_detections']:,} detections  |  max_dets {metrics['max_dets']}"
           + (f"  |  frequencies from {metrics['frequency_source']}" if metrics.get("frequency_source") else ""), ""]
    keys = [k for k in HEADLINE if k in metrics]
    rows = [[label or "A", *(_num(metrics[k]) for k in keys)]]
    if other is not None:
        rows.append([other_label or "B", *(_num(other.get(k)) for k in keys)])
        rows.append(["B - A", *(_num(None if other.get(k) is None or metrics[k] is None else other[k] - metrics[k])
                                for k in keys)])
    out += _table(["", *keys], rows)
    ar = [k for k in ("AR1", "AR10", "AR100", "ARs", "ARm", "ARl", *LVIS_STAT_NAMES[9:]) if k in metrics]
    out += ["", "  ".join(f"{k} {_num(metrics[k], 0)}" for k in ar)]

    if metrics.get("ranges"):
        rows = []
        for spec, r in metrics["ranges"].items():
            row = [spec, r["num_classes"], r["num_evaluated"], _num(r["mAP"]), r["zero_ap"]]
            if "fixed_ap" in metrics:
                row.append(_num(metrics["fixed_ap"]["ranges"][spec]["mAP"]))
            if comparison is not None:
                c = comparison["ranges"][spec]
                row += [_num(c["b"]), _delta(c)]
            rows.append(row)
        header = ["rank range", "classes", "with gt", "AP", "zero AP"]
        header += ["fixed AP"] if "fixed_ap" in metrics else []
        header += ["AP (B)", f"B - A [{_level(comparison)}]"] if comparison is not None else []
        out += ["", *_table(header, rows)]
    if "lvis" in metrics:
        rows = [[name, metrics["lvis"][name]["num_classes"], metrics["lvis"][name]["num_evaluated"],
                 _num(metrics["lvis"][name]["mAP"])] for name in ("rare", "common", "frequent")]
        rows.append(["no train images", metrics["lvis"]["no_train_images"]["num_classes"],
                     metrics["lvis"]["no_train_images"]["num_evaluated"], "-"])
        out += ["", *_table(["train-image bucket", "classes", "with gt", "AP"], rows)]
    if "fixed_ap" in metrics:
        f = metrics["fixed_ap"]
        out += ["", (f"fixed AP (per-class top {f['k']:,} over the split, no per-image cap): {_num(f['mAP'], 0)}"
                f"  (AP50 {_num(f['AP50'], 0)}, AP75 {_num(f['AP75'], 0)}; standard AP {_num(metrics['AP'], 0)})")]
    zero = zero_ap_classes(metrics, ranking)
    evaluated = sum(v is not None for v in metrics["per_class"].values())
    listed = ", ".join(f"{names.get(c, c)} (#{ranking.get(c, '?')})" for c in zero[:max_listed])
    out += ["", f"zero-AP classes: {len(zero)} of {evaluated} with ground truth"
            + (f": {listed}" + (f", ... {len(zero) - max_listed} more" if len(zero) > max_listed else "") if zero else "")]
    if comparison is not None:
        o = comparison["overall"]
        out += ["", (f"B - A overall AP {_delta(o)} (paired bootstrap over images, {comparison['samples']} samples); "
                f"classes improved {comparison['improved']} ({comparison['significant_improved']} with the interval "
                f"above 0), worse {comparison['worse']} ({comparison['significant_worse']} below 0)")]
        rows = [[names.get(m["category_id"], m["category_id"]), m["rank"], _num(m["a"]), _num(m["b"]), _delta(m)]
                for m in comparison["most_changed"]]
        out += ["", "classes that changed most", *_table(["class", "rank", "AP (A)", "AP (B)", "B - A"], rows)]
    return "\n".join(out)


def _level(comparison: Mapping) -> str:
    return f"{100 * comparison['level']:.0f}% interval"


def _delta(entry: Mapping) -> str:
    if entry.get("delta") is None:
        return "-"
    lo, hi = entry["interval"]
    interval = "" if lo is None else f" [{lo:+.2f}, {hi:+.2f}]"
    return f"{entry['delta']:+.2f}{interval}"
