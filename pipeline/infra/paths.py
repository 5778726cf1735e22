"""Where each stage reads and writes: the file half of dvc.yaml (tests check they agree)."""

from pathlib import Path

import numpy as np

from pipeline.infra.files import load_npz

RAW_DATA = Path("data/raw/dataset.npz")
RAW_MANIFEST = Path("data/raw/dataset.json")
PROCESSED_DIR = Path("data/processed")
SPLITS = ("train", "val", "test")
DATA_METRICS = Path("metrics/data.json")
CLASS_COUNTS = Path("reports/class_counts.csv")
CLASS_DISTRIBUTION_PLOT = Path("reports/class_distribution.png")

CNN_MODEL = Path("models/cnn.keras")
CNN_RUN = Path("reports/mlflow_runs/cnn.json")  # names the training run and model version for record
HISTORY = Path("reports/history.csv")
TRAIN_METRICS = Path("metrics/CNN/train.json")
TRAIN_SPEED = Path("metrics/speed/train.json")

CNN_METRICS = Path("metrics/CNN.json")  # test and validation accuracy and loss: the first of every comparison
PER_CLASS_METRICS = Path("metrics/CNN/per_class.json")
INFERENCE_SPEED = Path("metrics/speed/inference.json")
CNN_SCORES = Path("data/predictions/cnn.npz")  # the export's Keras probabilities (test, val) and mistakes' maps
CNN_PREDICTIONS = Path("reports/cnn_predictions.csv")
CLASSIFICATION_REPORT = Path("reports/classification_report.txt")
CONFUSION_PLOT = Path("reports/confusion_matrix.png")
MISCLASSIFIED_PLOT = Path("reports/misclassified.png")
SAMPLES_PLOT = Path("reports/sample_predictions.png")
CURVES_PLOT = Path("reports/training_curves.png")

BASELINE_MODEL = Path("models/baseline.joblib")
BASELINE_RUN = Path("reports/mlflow_runs/baseline.json")
BASELINE_METRICS = Path("metrics/baseline.json")
BASELINE_SPEED = Path("metrics/speed/baseline.json")
BASELINE_PREDICTIONS = Path("reports/baseline_predictions.csv")

ONNX_MODEL = Path("models/cnn.onnx")
INT8_MODEL = Path("models/cnn-int8.onnx")
EXPORT_METRICS = Path("metrics/export.json")
EXPORT_SPEED = Path("metrics/speed/export.json")

PHOTOS = Path("data/photos.npz")  # photographed test digits, read back and normalised
PHOTOS_PLOT = Path("reports/photos.png")
PHOTOS_METRICS = Path("metrics/photos.json")
TOUCHING_MODEL = Path("models/touching.onnx")  # the segmentation's touching-digits detector
SEGMENTER_METRICS = Path("metrics/segmenter.json")
NUMBER_PHOTOS = Path("data/numbers.npz")  # numbers composed of test digits, photographed (JPEG bytes)
OUTSIDE_PHOTOS = Path("data/outside.npz")  # numbers and digits written and photographed another way (JPEG bytes)
CUT_DIGITS = Path("data/cut.npz")  # both sets of photos cut into digits, where no digit model is needed
NUMBERS_METRICS = Path("metrics/numbers.json")  # numbers composed of test digits, photographed and read back
NUMBERS_PLOT = Path("reports/numbers.png")
NUMBERS_READ = Path("reports/numbers.csv")  # each composed number and what was read

EXPLAIN_METRICS = Path("metrics/CNN/explain.json")  # the saliency maps' deletion test
EXPLAINED_PLOT = Path("reports/misclassified_explained.png")
MODEL_CARD = Path("reports/model_card.md")
CONFUSED_PLOT = Path("reports/confused_pairs.png")

COMPARE_METRICS = Path("metrics/compare.json")
COMPARISON_REPORT = Path("reports/comparison.md")
COMPARISON_PLOT = Path("reports/comparison.png")

METRICS_DIR = Path("metrics")  # every metrics file: the pipeline run's metrics, named by their path in it
PIPELINE_RUN = Path("reports/mlflow_runs/pipeline.json")  # the record stage's run


def split_file(split: str) -> Path:
    """The preprocessed images and labels of one split (x uint8 (N, 28, 28), y uint8 (N,))."""
    return PROCESSED_DIR / f"{split}.npz"


def load_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one preprocessed split."""
    arrays = load_npz(split_file(split))
    return arrays["x"], arrays["y"]
