"""``python -m hrnet`` (what ``torchrun ... -m hrnet train`` runs)."""

from hrnet.cli import run

run()
