"""Where each stage reads and writes: the file half of dvc.yaml (tests check they agree)."""

from pathlib import Path

RAW_DATA = Path("data/raw/mnist.npz")
RAW_MANIFEST = Path("data/raw/mnist.json")
PROCESSED_DIR = Path("data/processed")
SPLITS = ("train", "val", "test")
DATA_METRICS = Path("metrics/data.json")
CLASS_DISTRIBUTION_PLOT = Path("reports/class_distribution.png")


def split_file(split: str) -> Path:
    """The preprocessed images and labels of one split (x uint8 (N, 28, 28), y uint8 (N,))."""
    return PROCESSED_DIR / f"{split}.npz"
