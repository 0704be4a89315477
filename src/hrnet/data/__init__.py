"""Annotation readers, the top-down crop, augmentation and the training Dataset."""
