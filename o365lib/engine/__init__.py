"""Training (single process or DDP through torchrun), checkpoints and inference.

- ``DetectionDataset(coco, cache_images=True)``: re-exported from ``o365lib.data.dataset``.
- ``TrainConfig`` / ``train(model, dataset, config=..., out_dir=...)`` -> ``TrainResult``.
- ``predict(model, dataset, batch_size=..., device=...)`` -> COCO results; ``save_results``.
- ``load_checkpoint(path, model)``: training checkpoint or raw state dict.
- ``seed_everything(seed)``: Python, NumPy and torch generators (training and the book's chapters).
- ``o365lib.engine.inference``: the one inference loop (``inference_session``, ``image_batches``)
  that ``predict`` and ``o365lib.tta.predict_tta`` share.
"""

from o365lib.data.dataset import DetectionDataset, collate_detection
from o365lib.engine.checkpoint import load_checkpoint, save_atomic
from o365lib.engine.config import TrainConfig, TrainResult
from o365lib.engine.distributed import DistInfo, setup_distributed
from o365lib.engine.inference import detections_to_coco, predict, save_results
from o365lib.engine.seeding import seed_everything
from o365lib.engine.train import TrainingDivergedError, flip_horizontal, train

__all__ = [
    "DetectionDataset",
    "DistInfo",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "collate_detection",
    "detections_to_coco",
    "flip_horizontal",
    "load_checkpoint",
    "predict",
    "save_atomic",
    "save_results",
    "seed_everything",
    "setup_distributed",
    "train",
]
