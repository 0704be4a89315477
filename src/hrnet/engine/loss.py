"""Heatmap losses: the official MSE, its hard-keypoint-mining variant, and the TF port's sum of squares."""

from __future__ import annotations

from typing import get_args

import torch
from torch import nn

from hrnet.config import Loss


class HeatmapLoss(nn.Module):
    """Loss between predicted and target heatmaps, both (N, K, H, W), with target weights (N, K).

    - ``"mse"``: official ``JointsMSELoss``, the mean over keypoints of 0.5 × the mean squared error over batch
      and pixels, each keypoint's maps multiplied by its target weight first (so unlabelled keypoints add 0).
    - ``"ohkm"``: official ``JointsOHKMMSELoss`` (online hard keypoint mining): per sample, the ``topk`` largest
      keypoint losses (0.5 × mean over pixels) are averaged; then the mean over the batch.
    - ``"sum_squared"``: the TF port's loss, the sum of squared differences over everything (its heatmaps sum to
      1, so the values are small).

    ``use_target_weight=False`` ignores the weights, as the official ``LOSS.USE_TARGET_WEIGHT: false``.
    """

    def __init__(self, kind: str = "mse", use_target_weight: bool = True, topk: int = 8):
        super().__init__()
        if kind not in get_args(Loss):
            raise ValueError(f"loss must be one of {get_args(Loss)}, got {kind!r}")
        self.kind = kind
        self.use_target_weight = use_target_weight
        self.topk = topk

    def forward(self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        diff = output.float() - target.float()
        if self.use_target_weight:
            diff = diff * target_weight.float()[:, :, None, None]
        if self.kind == "sum_squared":
            return diff.square().sum()
        per_keypoint = 0.5 * diff.square().flatten(2).mean(dim=2)  # (N, K)
        if self.kind == "mse":
            return per_keypoint.mean()
        k = min(self.topk, per_keypoint.shape[1])
        return per_keypoint.topk(k, dim=1).values.sum(dim=1).div(k).mean()
