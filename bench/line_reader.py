"""Issue 36's first measurement: a CTC line reader (CRNN) for whole numbers, decided on validation only.

Trains a small CRNN (convolutions, a bidirectional LSTM over the columns, CTC; keras.ops.ctc_loss,
greedy decoding in NumPy) on numbers composed of *training* digits as the compose stage composes and
photographs them, and reads numbers of *validation* digits.  The test split is not read.

    python bench/line_reader.py --train 20000 --val 1000 --epochs 8 --out bench/line_reader-20k.json

A measurement to choose the reader's size and training length on validation numbers, before it
becomes a stage; the committed result is bench/line_reader-20k.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import time

import numpy as np
from PIL import Image

from pipeline.images.digits import bounds, grey_levels, ink_levels, otsu_threshold, working_size
from pipeline.infra import paths
from pipeline.infra.cpus import usable_cpus
from pipeline.infra.params import load_params
from pipeline.stages.compose import compose_all

HEIGHT, WIDTH, BLANK = 32, 192, 0  # a line's size; CTC's blank is class 0, digit d is class d + 1


def line(grey: np.ndarray) -> np.ndarray:
    """A photographed number as a (HEIGHT, WIDTH) float32 line, ink bright: cropped to its ink, scaled
    to HEIGHT rows (narrowed to WIDTH when longer), left-aligned."""
    ink = ink_levels(working_size(grey))
    top, bottom, left, right = bounds(ink > otsu_threshold(ink))
    ink = ink[top : bottom + 1, left : right + 1]
    width = min(WIDTH, max(1, round(ink.shape[1] * (HEIGHT - 4) / ink.shape[0])))
    scaled = np.asarray(
        Image.fromarray(ink / max(ink.max(), 1e-6)).resize((width, HEIGHT - 4), Image.Resampling.BILINEAR)
    )
    out = np.zeros((HEIGHT, WIDTH), np.float32)
    out[2 : HEIGHT - 2, :width] = np.clip(scaled, 0, 1)
    return out


def jpeg_line(jpeg: bytes) -> np.ndarray:
    """A number's JPEG file, as a line."""
    return line(grey_levels(Image.open(io.BytesIO(jpeg))))


def numbers(images: np.ndarray, labels: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` numbers of `images`, composed and photographed by the compose stage's own code (its lengths
    and touching share), as lines and CTC targets (digit + 1, padded with the blank)."""
    settings = load_params().numbers.model_copy(update={"count": count, "seed": seed})
    composed = compose_all(images, labels, settings)
    starts = np.concatenate([[0], composed["ends"][:-1]])
    files = [composed["jpeg"][start:end].tobytes() for start, end in zip(starts, composed["ends"], strict=True)]
    with concurrent.futures.ProcessPoolExecutor(usable_cpus()) as pool:
        lines = list(pool.map(jpeg_line, files, chunksize=64))
    targets = np.zeros((count, settings.max_digits), np.int32)
    for row, digits in enumerate(composed["truth"]):
        targets[row, : len(digits)] = [int(digit) + 1 for digit in digits]
    return np.stack(lines)[..., None], targets


def build(classes: int = 11):
    import keras

    inputs = keras.Input((HEIGHT, WIDTH, 1))
    x = inputs
    for filters, pool in ((32, (2, 2)), (64, (2, 2)), (128, (2, 1)), (128, (2, 1))):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(pool)(x)
    x = keras.layers.Permute((2, 1, 3))(x)  # (columns, rows, channels)
    x = keras.layers.Reshape((WIDTH // 4, -1))(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(96, return_sequences=True))(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))  # logits, a column's each


def ctc(targets, logits):
    import keras

    lengths = keras.ops.sum(keras.ops.cast(targets != BLANK, "int32"), axis=1)
    steps = keras.ops.full((keras.ops.shape(logits)[0],), keras.ops.shape(logits)[1], dtype="int32")
    return keras.ops.mean(keras.ops.ctc_loss(targets, logits, lengths, steps, mask_index=BLANK))


def greedy(logits: np.ndarray) -> list[str]:
    """Best path: each column's class, repeats merged, blanks dropped."""
    best = logits.argmax(-1)
    keep = np.concatenate([np.ones((len(best), 1), bool), best[:, 1:] != best[:, :-1]], axis=1) & (best != BLANK)
    return ["".join(str(c - 1) for c in row[mask]) for row, mask in zip(best, keep, strict=True)]


def truth(targets: np.ndarray) -> list[str]:
    return ["".join(str(c - 1) for c in row if c != BLANK) for row in targets]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default="bench/line_reader.json")
    args = parser.parse_args()
    import keras

    keras.utils.set_random_seed(0)
    started = time.perf_counter()
    x_train, y_train = numbers(*paths.load_split("train"), args.train, seed=1)
    x_val, y_val = numbers(*paths.load_split("val"), args.val, seed=2)
    made = time.perf_counter() - started
    model = build()
    steps = args.epochs * int(np.ceil(args.train / 64))
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=3e-3, warmup_steps=steps // 20)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=ctc)
    started = time.perf_counter()
    history = []
    for epoch in range(args.epochs):
        model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=2)
        read = greedy(model.predict(x_val, batch_size=256, verbose=0))
        accuracy = float(np.mean([r == t for r, t in zip(read, truth(y_val), strict=True)]))
        history.append(accuracy)
        print(f"epoch {epoch + 1}: val sequence accuracy {accuracy:.4f}", flush=True)
    trained = time.perf_counter() - started
    started = time.perf_counter()
    read = greedy(model.predict(x_val, batch_size=256, verbose=0))
    reading = time.perf_counter() - started
    result = {
        "train_numbers": args.train,
        "val_numbers": args.val,
        "epochs": args.epochs,
        "params": model.count_params(),
        "val_sequence_accuracy": history[-1],
        "val_sequence_accuracy_by_epoch": history,
        "seconds_making_numbers": round(made, 1),
        "seconds_training": round(trained, 1),
        "seconds_reading_val": round(reading, 2),
    }
    print(json.dumps(result))
    with open(args.out, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
