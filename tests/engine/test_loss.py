"""Losses against straightforward re-statements of the official per-keypoint loops."""

import pytest
import torch

from hrnet.engine.loss import HeatmapLoss


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    output = torch.rand(3, 5, 8, 6, generator=g)
    target = torch.rand(3, 5, 8, 6, generator=g)
    weight = torch.tensor([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]], dtype=torch.float32)
    return output, target, weight


def official_mse(output, target, weight, use_target_weight=True):
    """The official JointsMSELoss loop: per keypoint, 0.5 × MSELoss(mean) of the weighted maps, averaged."""
    n, k = output.shape[:2]
    loss = 0.0
    for j in range(k):
        pred, gt = output[:, j].reshape(n, -1), target[:, j].reshape(n, -1)
        if use_target_weight:
            w = weight[:, j : j + 1]
            loss += 0.5 * torch.nn.functional.mse_loss(pred * w, gt * w)
        else:
            loss += 0.5 * torch.nn.functional.mse_loss(pred, gt)
    return loss / k


def official_ohkm(output, target, weight, topk):
    n, k = output.shape[:2]
    per = torch.stack(
        [0.5 * ((output[:, j] - target[:, j]) * weight[:, j, None, None]).square().mean(dim=(1, 2)) for j in range(k)],
        dim=1,
    )
    return torch.stack([per[i].topk(topk).values.sum() / topk for i in range(n)]).mean()


def test_mse_equals_the_official_loop(batch):
    out, tgt, w = batch
    torch.testing.assert_close(HeatmapLoss("mse")(out, tgt, w), official_mse(out, tgt, w))
    torch.testing.assert_close(
        HeatmapLoss("mse", use_target_weight=False)(out, tgt, w), official_mse(out, tgt, w, False)
    )


def test_unlabelled_keypoints_add_nothing(batch):
    out, tgt, w = batch
    changed = out.clone()
    changed[0, 1] += 10.0  # weight 0 there
    torch.testing.assert_close(HeatmapLoss("mse")(changed, tgt, w), HeatmapLoss("mse")(out, tgt, w))


def test_ohkm_keeps_the_hardest_keypoints(batch):
    out, tgt, w = batch
    torch.testing.assert_close(HeatmapLoss("ohkm", topk=2)(out, tgt, w), official_ohkm(out, tgt, w, 2))
    # with topk = K it is the plain mean over keypoints
    torch.testing.assert_close(HeatmapLoss("ohkm", topk=5)(out, tgt, w), HeatmapLoss("mse")(out, tgt, w))


def test_sum_squared_is_the_ports(batch):
    out, tgt, w = batch
    torch.testing.assert_close(
        HeatmapLoss("sum_squared", use_target_weight=False)(out, tgt, w), ((out - tgt) ** 2).sum()
    )


def test_unknown_loss():
    with pytest.raises(ValueError, match="loss must be one of"):
        HeatmapLoss("l1")
