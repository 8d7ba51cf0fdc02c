"""o365lib: long-tailed, large-vocabulary object detection (Objects365-style).

Reproduces and extends "Scaling Object Detection up to More Categories"
(ByteDance AI Lab, Objects365 challenge 2019). Sub-packages:

- ``o365lib.data``: COCO/Objects365 loading and validation, class ranking, tail statistics,
  the embedded synthetic long-tailed data set.
- ``o365lib.modeling``: Cascade R-CNN (FPN, optional DCN) on torchvision.
- ``o365lib.engine``: training (single process, DDP through torchrun), checkpoints, inference.
- ``o365lib.longtail``: repeat-factor, class-aware and head-downsampling samplers.
- ``o365lib.experts``: class-range expert training sets and merging.
- ``o365lib.tta``: soft-NMS, weighted boxes fusion, test-time augmentation, ensembles.
- ``o365lib.evaluation``: COCO AP overall, per class, per class-rank range, LVIS buckets.
- ``o365lib.viz``: plotly figures.
- ``o365lib.book``: chapter set-up and the book runner.
"""

__version__ = "0.1.0"
