"""TEST SCAFFOLDING: a stand-in for mmcv's compiled ``mmcv._ext`` built on torchvision's ops.

``mmcv-lite`` (the pure-Python mmcv that satisfies mmdet 3.3.0's version check) ships without the
compiled extension. mmdet's Cascade R-CNN inference needs only three of its kernels, each of which
has a one-to-one torchvision counterpart:

- ``roi_align_forward`` in average mode (``pool_mode=1``) -> ``torchvision.ops.roi_align``, same
  ``spatial_scale``, ``sampling_ratio`` (0 = adaptive) and ``aligned`` flag;
- ``nms`` with ``offset=0`` -> ``torchvision.ops.nms`` (both return kept indices by descending
  score);
- ``deform_conv_forward`` (DCN v1) -> ``torchvision.ops.deform_conv2d``; both read the offsets as
  (dy, dx) pairs per kernel position and deformable group.

Every other kernel raises ``NotImplementedError`` when called (mmcv checks at import time only that
the names exist). ``install()`` puts the module into ``sys.modules["mmcv._ext"]``; it is used by the
parity tests only, never by ``o365lib``. With the real compiled mmcv 2.1.0 the same mmdet code gives
the same numbers (bench/mmdet_parity.py; records in bench/results/mmdet_parity_*.json).
"""

from __future__ import annotations

import sys
import types

from torchvision import ops


def roi_align_forward(input, rois, output, argmax_y, argmax_x, *, aligned_height, aligned_width,
                      spatial_scale, sampling_ratio, pool_mode, aligned):
    """mmcv's in-place RoIAlign forward (average mode only)."""
    if pool_mode != 1:
        raise NotImplementedError("the mmcv._ext shim implements RoIAlign average pooling only")
    output.copy_(
        ops.roi_align(input, rois, (aligned_height, aligned_width), spatial_scale=spatial_scale,
                      sampling_ratio=sampling_ratio, aligned=bool(aligned))
    )


def nms(boxes, scores, *, iou_threshold, offset):
    """Indices kept by NMS (mmcv's ``offset=0`` convention: areas without +1)."""
    if offset != 0:
        raise NotImplementedError("the mmcv._ext shim implements nms with offset=0 only")
    return ops.nms(boxes, scores, float(iou_threshold))


def deform_conv_forward(input, weight, offset, output, columns, ones, *, kW, kH, dW, dH, padW, padH,
                        dilationW, dilationH, group, deformable_group, im2col_step):
    """mmcv's in-place deformable convolution forward (no bias, no mask)."""
    del columns, ones, im2col_step, kW, kH, group, deformable_group  # implied by the tensor shapes
    output.copy_(
        ops.deform_conv2d(input, offset, weight, stride=(dH, dW), padding=(padH, padW),
                          dilation=(dilationH, dilationW))
    )


def _missing(name: str):
    def kernel(*args, **kwargs):
        raise NotImplementedError(f"mmcv._ext.{name} is not provided by the test shim")

    kernel.__name__ = name
    return kernel


def build_module() -> types.ModuleType:
    """A module object named ``mmcv._ext`` with the kernels above and stubs for every other name."""
    module = types.ModuleType("mmcv._ext", __doc__)
    module.roi_align_forward = roi_align_forward
    module.nms = nms
    module.deform_conv_forward = deform_conv_forward
    module.__getattr__ = lambda name: _missing(name) if not name.startswith("__") else _raise(name)
    return module


def _raise(name: str):
    raise AttributeError(name)


def install(*, force: bool = False) -> types.ModuleType:
    """Register the shim as ``mmcv._ext`` (unless a real compiled one imports) and return it.

    ``force=True`` installs the shim even where the compiled extension exists; call it before
    anything imports ``mmcv.ops`` (bench/mmdet_parity.py --shim does).
    """
    if not force:
        try:
            import mmcv._ext as real

            if not getattr(real, "__test_shim__", False):
                return real
        except ImportError:
            pass
    module = build_module()
    module.__test_shim__ = True
    sys.modules["mmcv._ext"] = module
    import mmcv

    mmcv._ext = module
    return module


__all__ = ["build_module", "install"]
