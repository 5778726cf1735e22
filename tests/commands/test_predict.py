"""`python -m pipeline predict`: real images in, digits out, for every model form and output format."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline import PipelineError
from pipeline.commands import predict
from pipeline.commands.predict import image_files
from pipeline.images.camera import photograph
from pipeline.images.composition import compose
from pipeline.reading.models import load_predictor
from pipeline.reading.numbers import predict_files
from tests.digits import font_mnist
from tests.mnist_files import REPO

E2E = pytest.mark.e2e  # a process, or the digit model trained once per session (about 20 s)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[list, np.ndarray]:
    """40 typeset digits the model never saw, photographed as the photograph stage does (JPEG, any size and place)."""
    folder = tmp_path_factory.mktemp("photos")
    digits, labels = font_mnist(40, seed=7)
    rng = np.random.default_rng(7)
    files = []
    for i, digit in enumerate(digits):
        files.append(folder / f"{i:02d}.jpg")
        photograph(digit, rng).save(files[-1], quality=80)
    return files, labels


def _models(digit_model) -> tuple[str, ...]:
    """The options naming the test's digit model and touching-digits detector (never the repo's own)."""
    return "--model", str(digit_model.onnx_path), "--touching", str(digit_model.touching_path)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "predict", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@E2E
def test_photos_are_read_right(digit_model, photos):
    files, labels = photos
    rows = predict_files(files, load_predictor(digit_model.onnx_path))
    assert np.mean([row["number"] for row in rows] == labels.astype(str)) >= 0.9
    for row in rows:
        (digit,) = row["digits"]  # one digit a photo
        assert str(digit["digit"]) == row["number"] and digit["confidence"] == pytest.approx(row["confidence"])
        assert digit["top3"][0] == [digit["digit"], pytest.approx(digit["confidence"], abs=1e-6)]
        assert digit["confidence"] >= digit["top3"][1][1] >= digit["top3"][2][1]


@E2E
def test_keras_and_onnx_models_give_the_same_answers(digit_model, photos):
    files, _ = photos
    by_keras = predict_files(files, load_predictor(digit_model.keras_path))
    by_onnx = predict_files(files, load_predictor(digit_model.onnx_path))
    assert [row["number"] for row in by_keras] == [row["number"] for row in by_onnx]
    assert np.allclose([row["confidence"] for row in by_keras], [row["confidence"] for row in by_onnx], atol=1e-4)


@E2E
def test_the_int8_model_reads_the_photos_nearly_as_the_float_model(digit_model, photos):
    files, labels = photos
    result = _cli(
        str(files[0].parent),
        "--json",
        "--model",
        str(digit_model.int8_path),
        "--touching",
        str(digit_model.touching_path),
    )
    assert result.returncode == 0, result.stderr
    by_int8 = [row["number"] for row in json.loads(result.stdout)]
    by_float = [row["number"] for row in predict_files(files, load_predictor(digit_model.onnx_path))]
    assert np.mean(np.equal(by_int8, by_float)) >= 0.95 and np.mean(np.equal(by_int8, labels.astype(str))) >= 0.9


@E2E
def test_cli_predicts_the_readable_files_and_fails_for_the_others(digit_model, photos, tmp_path):
    files, labels = photos
    (tmp_path / "notes.png").write_text("not an image")
    folder = files[0].parent
    result = _cli(str(folder), str(tmp_path / "notes.png"), "--json", *_models(digit_model))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'notes.png'}: not a readable image (cannot identify image file '{tmp_path / 'notes.png'}')"
    ]
    rows = json.loads(result.stdout)
    assert [row["file"] for row in rows] == [*map(str, files), str(tmp_path / "notes.png")]
    assert np.mean([row["number"] for row in rows[:-1]] == labels.astype(str)) >= 0.9
    assert set(rows[-1]) == {"file", "error"}


@E2E
def test_cli_table_and_csv(digit_model, photos):
    files, _ = photos
    table = _cli(*map(str, files[:3]), *_models(digit_model))
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["file", "number", "confidence", "digits", "(top", "3", "each)"] and len(lines) == 3
    assert all(
        line.startswith(str(f)) and line.rstrip().endswith("%") for line, f in zip(lines, files[:3], strict=True)
    )
    quoted_glob = str(files[0].parent / "0*.jpg")  # the shell would expand it; predict does when quoted
    rows = list(csv.DictReader(io.StringIO(_cli(quoted_glob, "--csv", *_models(digit_model)).stdout)))
    assert [row["file"] for row in rows] == [str(f) for f in files if f.name.startswith("0")]
    assert all(row["number"] == row["digits"].split(":")[0] and row["error"] == "" for row in rows)


@E2E
def test_an_mlflow_registry_uri_loads_the_registered_model(digit_model, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("digits")
    with mlflow.start_run():
        info = mlflow.keras.log_model(digit_model.model, name="model", registered_model_name="digits")
    mlflow.MlflowClient().set_registered_model_alias("digits", "champion", info.registered_model_version)
    files, _ = photos
    by_uri = predict_files(files[:10], load_predictor("models:/digits@champion"))
    by_file = predict_files(files[:10], load_predictor(digit_model.keras_path))
    assert [row["number"] for row in by_uri] == [row["number"] for row in by_file]
    with pytest.raises(PipelineError, match="models:/digits@nobody: cannot load from sqlite"):
        load_predictor("models:/digits@nobody")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("missing.keras", "missing.keras: no such model file"),
        ("params.yaml", "params.yaml: expected a .keras or .onnx"),
    ],
)
@E2E
def test_bad_model_is_one_line_and_exit_1(model, expected, photos):
    files, _ = photos
    result = _cli(str(files[0]), "--model", model)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {expected}")
    assert len(result.stderr.strip().splitlines()) == 1


@E2E
def test_no_images_found_is_an_error(tmp_path):
    result = _cli(str(tmp_path))
    assert result.returncode == 1 and f"error: no image files in {tmp_path}" in result.stderr


def test_image_files_expands_folders_recursively_and_keeps_files_as_given(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/2.PNG", "a/b/1.jpg", "a/readme.txt"):
        (tmp_path / name).write_bytes(b"")
    assert image_files([str(tmp_path / "a"), "given.txt"]) == [
        tmp_path / "a/2.PNG",
        tmp_path / "a/b/1.jpg",
        Path("given.txt"),
    ]


@pytest.fixture(scope="module")
def number_photos(tmp_path_factory) -> list:
    """Three photographed numbers of typeset digits: 2026 (the 0 and the 2 touching), 845 and 64323."""
    folder = tmp_path_factory.mktemp("numbers")
    images, labels = font_mnist(60, seed=11)
    rng = np.random.default_rng(11)
    files = []
    for text, touching in (("2026", [False, True, False]), ("845", [False, False]), ("64323", [False] * 4)):
        digits = np.stack([images[np.flatnonzero(labels == int(d))[i]] for i, d in enumerate(text)])
        files.append(folder / f"{text}.jpg")
        photograph(compose(digits, np.array(touching), rng), rng).save(files[-1], quality=85)
    return files


@E2E
def test_a_photographed_number_is_read_whole_with_a_box_per_digit(digit_model, number_photos, tmp_path):
    models = _models(digit_model)
    result = _cli(*map(str, number_photos), "--json", *models)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["number"] for row in rows] == [f.stem for f in number_photos]
    for row in rows:
        assert "".join(str(d["digit"]) for d in row["digits"]) == row["number"]
        assert row["confidence"] == pytest.approx(np.prod([d["confidence"] for d in row["digits"]]))
        lefts = [d["box"][0] for d in row["digits"]]
        assert lefts == sorted(lefts) and all(
            d["box"][2] > d["box"][0] and d["box"][3] > d["box"][1] for d in row["digits"]
        )
    (row,) = csv.DictReader(io.StringIO(_cli(str(number_photos[0]), "--csv", *models).stdout))
    assert row["number"] == "2026" and len(row["digits"].split("|")) == len(row["boxes"].split("|")) == 4


@E2E
def test_explain_writes_an_overlay_per_image(digit_model, number_photos, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    result = _cli(str(number_photos[1]), str(blank), "--explain", str(tmp_path / "maps"), *_models(digit_model))
    assert result.returncode == 1 and "blank" in result.stderr  # the blank image: one error line, the other read
    assert result.stdout.splitlines()[1].split()[1] == "845"
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["845.png"]
    assert Image.open(tmp_path / "maps" / "845.png").size[0] > 400


def test_overlays_of_images_of_the_same_name_do_not_overwrite_each_other(tmp_path):
    from pipeline.commands.predict import overlay_names

    files = [tmp_path / "a" / "1.png", tmp_path / "b" / "1.png", tmp_path / "a" / "2.jpg"]
    assert overlay_names(files) == {files[0]: "a__1", files[1]: "b__1", files[2]: "2"}


def test_on_another_dataset_each_image_is_one_item_read_by_class_name(
    digit_model, photos, tmp_path, monkeypatch, capsys
):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["dataset"] = "fashion_mnist"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "notes.png").write_text("not an image")
    monkeypatch.chdir(tmp_path)
    files = [str(f) for f in photos[0][:3]]
    assert predict.main([*files, "notes.png"], model=str(digit_model.onnx_path), output="json") == 1
    rows = json.loads(capsys.readouterr().out)
    classes = raw["data"]["datasets"]["fashion_mnist"]["classes"]
    assert [row["file"] for row in rows] == [*files, "notes.png"] and set(rows[-1]) == {"file", "error"}
    for row in rows[:3]:
        assert row["class"] == classes[row["index"]] == row["top3"][0][0] and 0 < row["confidence"] <= 1
        names, probabilities = zip(*row["top3"], strict=True)
        assert (
            set(names) <= set(classes) and len(set(names)) == 3 and list(probabilities) == sorted(probabilities)[::-1]
        )
    assert predict.main(files[:1], model=str(digit_model.onnx_path), output="table") == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.split() == ["file", "class", "confidence", "top", "3"]
    with pytest.raises(
        PipelineError, match="--explain draws a number's digits; Fashion-MNIST's classes are not digits"
    ):
        predict.main(files[:1], model=str(digit_model.onnx_path), explain=tmp_path / "maps")
