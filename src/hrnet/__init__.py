"""hrnet: HRNet 2D human pose estimation (Sun et al., CVPR 2019), exact to the official checkpoints."""

__version__ = "0.1.0"
