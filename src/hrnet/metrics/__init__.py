"""COCO OKS AP through pycocotools, OKS-NMS, PCKh."""
