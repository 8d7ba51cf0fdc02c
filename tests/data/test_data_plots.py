"""Plotly figures of the data chapter: structure, not looks."""

from __future__ import annotations

import base64
import io

import pandas as pd
import plotly.graph_objects as go
import pytest
from PIL import Image

from o365lib.data import CocoData, tail_stats
from o365lib.viz.data_plots import plot_image_examples, plot_instance_distribution, plot_tiny_distribution


def _coco(tmp_path) -> CocoData:
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    images = []
    for i, colour in enumerate(colours, start=1):
        Image.new("RGB", (64, 48), colour).save(tmp_path / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": 64, "height": 48})
    anns = [(1, 5, [2, 2, 10, 10]), (1, 5, [20, 2, 10, 10]), (2, 9, [0, 0, 64, 48]), (3, 5, [5, 5, 5, 5]),
            (3, 2, [30, 10, 8, 8])]
    dataset = {
        "images": images,
        "annotations": [{"id": k + 1, "image_id": i, "category_id": c, "bbox": b} for k, (i, c, b) in enumerate(anns)],
        "categories": [{"id": 2, "name": "okra", "style": "small_clustered"}, {"id": 5, "name": "person"},
                       {"id": 9, "name": "donkey", "style": "large_plain"}],
    }
    return CocoData.from_dataset(dataset, image_root=tmp_path)


def test_instance_distribution(tmp_path):
    stats = tail_stats(_coco(tmp_path))
    fig = plot_instance_distribution(stats, ranges=((1, 1), "2-3", (4, 10)), title="T")
    assert isinstance(fig, go.Figure) and fig.layout.title.text == "T"
    bar = fig.data[0]
    assert list(bar.x) == [1, 2, 3] and list(bar.y) == [3, 1, 1]
    assert fig.layout.yaxis.type == "log"
    assert len(fig.layout.shapes) == 2  # the range (4, 10) starts after the last class: dropped
    texts = [a.text for a in fig.layout.annotations]
    assert texts == ["ranks 1-1<br>1 classes, 60.0% of instances", "ranks 2-3<br>2 classes, 40.0% of instances"]
    assert plot_instance_distribution(stats, log_y=False).layout.yaxis.type == "linear"


def test_instance_distribution_needs_tail_stats():
    with pytest.raises(ValueError, match="tail_stats"):
        plot_instance_distribution(pd.DataFrame({"rank": [1]}))


def test_tiny_distribution_colours_styles(tmp_path):
    fig = plot_tiny_distribution(tail_stats(_coco(tmp_path)))
    bar = fig.data[0]
    assert list(bar.x) == ["person", "okra", "donkey"]
    assert list(bar.marker.color) == ["#4c72b0", "#d62728", "#2ca02c"]


def test_image_examples_embed_images_and_boxes(tmp_path):
    coco = _coco(tmp_path)
    fig = plot_image_examples(coco, [1, 3], highlight_category_ids=[2], cols=4)
    images = [t for t in fig.data if isinstance(t, go.Image)]
    assert len(images) == 2
    assert images[0].source.startswith("data:image/png;base64,")
    pixels = Image.open(io.BytesIO(base64.b64decode(images[0].source.split(",", 1)[1]))).convert("RGB")
    assert pixels.size == (64, 48) and pixels.getpixel((0, 0)) == (200, 30, 30)
    shapes = fig.layout.shapes
    assert len(shapes) == 4  # 2 boxes in image 1, 2 in image 3
    assert (shapes[0].x0, shapes[0].y0, shapes[0].x1, shapes[0].y1) == (2, 2, 12, 12)
    assert shapes[0].xref == "x" and shapes[2].xref == "x2"
    highlighted = [s for s in shapes if s.line.width == 2]
    assert len(highlighted) == 1 and highlighted[0].x0 == 30
    texts = [t for t in fig.data if isinstance(t, go.Scatter)]
    assert list(texts[1].text) == ["", "okra"] and "person (id 5)" in texts[1].hovertext
    assert [a.text for a in fig.layout.annotations] == ["image 1", "okra"]


def test_image_examples_errors(tmp_path):
    coco = _coco(tmp_path)
    with pytest.raises(ValueError, match="no image ids"):
        plot_image_examples(coco, [])
    (tmp_path / "2.png").unlink()
    with pytest.raises(ValueError, match="image id=2"):
        plot_image_examples(coco, [2])


def test_image_examples_draw_detections_of_highlighted_classes(tmp_path):
    coco = _coco(tmp_path)
    dets = [
        {"image_id": 3, "category_id": 2, "bbox": [31.0, 5.0, 10.0, 8.0], "score": 0.9},  # drawn
        {"image_id": 3, "category_id": 2, "bbox": [1.0, 1.0, 4.0, 4.0], "score": 0.1},  # below threshold
        {"image_id": 3, "category_id": 5, "bbox": [1.0, 1.0, 4.0, 4.0], "score": 0.9},  # not highlighted
        {"image_id": 2, "category_id": 2, "bbox": [1.0, 1.0, 4.0, 4.0], "score": 0.9},  # image not shown
    ]
    fig = plot_image_examples(coco, [1, 3], highlight_category_ids=[2], detections=dets, score_threshold=0.3)
    dotted = [s for s in fig.layout.shapes if s.line.dash == "dot"]
    assert len(dotted) == 1 and (dotted[0].x0, dotted[0].x1, dotted[0].xref) == (31.0, 41.0, "x2")
