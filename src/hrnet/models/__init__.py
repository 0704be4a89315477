"""HRNet pose networks, their building blocks and checkpoint I/O."""
