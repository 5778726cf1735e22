"""Which ensemble for `best`: a pool of one recipe's members, ensembled on the validation split only.

    python bench/ensembles.py --preset default --members 12 --out bench/ensembles-default.json
    python bench/ensembles.py --preset default --set train.epochs=12 --members 6 --out bench/ensembles-default-12-epochs.json
    python bench/ensembles.py --preset default --set model.arch=deotte --members 3 --pair-set model.arch=default --out x.json

Each member is a single model of the preset's recipe (with the `--set` overrides) on its own seed,
the seeds `model.ensemble_size` would draw (`training.member_seeds`), trained in a process of its
own; its validation probabilities (test-time shifts included) are kept in bench/members/, so a pool
grows or resumes without retraining.  For each ensemble size k, the pool is cut into disjoint groups
of k members in seed order, and each group's averaged probabilities are scored on validation: the
mean and sd over groups, the mean over every k-subset, and the median training seconds of k members.
With --pair-set, a second recipe's pool on the same seeds, and pairs mixing the two recipes: each
member with the second recipe's member of its seed (mean and sd), and every pairing's mean.
The test set is not read: the recipe chosen here is scored on it once, by `make bench`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).parent)]  # from anywhere in the checkout

from bench_presets import PRESETS_FILE, preset_params  # bench/bench_presets.py

from pipeline.infra import paths
from pipeline.infra.files import load_npz, save_json, save_npz
from pipeline.ml import training

POOL = Path("bench/members")


def pool_folder(preset: str, overrides: dict) -> Path:
    """bench/members/<preset>[,key=value...]: one folder per recipe."""
    return POOL / ",".join([preset, *(f"{key}={value}" for key, value in sorted(overrides.items()))])


def train_member(preset: str, overrides: dict, seed: int, folder: Path) -> None:
    """Train the member of `seed` (this process's one job) and save its validation probabilities and seconds."""
    params = preset_params(yaml.safe_load(PRESETS_FILE.read_text())["presets"][preset]["params"] | overrides, seed)
    validation = paths.load_split("val")
    trained = training.train(params, paths.load_split("train"), validation)
    probabilities = trained.model.predict(validation[0], batch_size=params.evaluate.batch_size, verbose=0)
    save_npz(folder / f"{seed}.npz", {"probabilities": probabilities, "seconds": np.float64(trained.seconds)})


def load_member(path: Path) -> dict:
    """A member's validation probabilities and training seconds, as train_member saved them."""
    saved = load_npz(path)
    return {"probabilities": saved["probabilities"], "seconds": saved["seconds"].item()}


def ensemble_accuracy(group: tuple[dict, ...], labels: np.ndarray) -> float:
    """Validation accuracy of the members of `group` averaged."""
    return float(np.mean(np.mean([m["probabilities"] for m in group], axis=0).argmax(1) == labels))


def scores(members: list[dict], labels: np.ndarray, sizes: range) -> dict:
    """For each size k: the validation accuracy of each disjoint group of k members (in pool order),
    their mean and sd (independent ensembles, as the bench's seeds are), the mean over every k-subset
    of the pool (the expected accuracy of k members, from all of them), and the median of the
    groups' summed training seconds."""

    def accuracy(group: tuple[dict, ...]) -> float:
        return ensemble_accuracy(group, labels)

    result = {}
    for k in sizes:
        groups = [tuple(members[i : i + k]) for i in range(0, len(members) - k + 1, k)]
        accuracies = [accuracy(group) for group in groups]
        result[k] = {
            "groups": len(groups),
            "val_accuracy": [round(a, 5) for a in accuracies],
            "val_accuracy_mean": round(statistics.mean(accuracies), 5),
            "val_accuracy_sd": round(statistics.stdev(accuracies), 5) if len(groups) > 1 else None,
            "val_accuracy_every_subset_mean": round(
                statistics.mean(map(accuracy, itertools.combinations(members, k))), 5
            ),
            "train_seconds_median": round(statistics.median(sum(m["seconds"] for m in g) for g in groups), 1),
        }
    return result


def pair_scores(members: list[dict], partners: list[dict], labels: np.ndarray) -> dict:
    """Pairs of two recipes: each member with the partner of its seed (independent pairs: mean and sd),
    the mean over every member-partner pairing, and the median of the same-seed pairs' training seconds."""
    same_seed = [ensemble_accuracy(pair, labels) for pair in zip(members, partners, strict=True)]
    return {
        "pairs": len(same_seed),
        "val_accuracy": [round(a, 5) for a in same_seed],
        "val_accuracy_mean": round(statistics.mean(same_seed), 5),
        "val_accuracy_sd": round(statistics.stdev(same_seed), 5) if len(same_seed) > 1 else None,
        "val_accuracy_every_pairing_mean": round(
            statistics.mean(ensemble_accuracy(pair, labels) for pair in itertools.product(members, partners)), 5
        ),
        "train_seconds_median": round(
            statistics.median(m["seconds"] + p["seconds"] for m, p in zip(members, partners, strict=True)), 1
        ),
    }


def pool(preset: str, sets: list[str], seeds: list[int]) -> list[dict]:
    """The members of the recipe (`preset` with the `sets` overrides) on `seeds`, each trained in a fresh
    process (its memory and threads its own) unless bench/members/ holds it already."""
    folder = pool_folder(preset, overrides_of(sets))
    for seed in seeds:
        if not (folder / f"{seed}.npz").exists():
            command = [sys.executable, __file__, "--preset", preset, *(f"--set={s}" for s in sets)]
            subprocess.run([*command, "--one", str(seed)], check=True)
            print(f"ensembles: {folder.name} seed {seed} trained", file=sys.stderr, flush=True)
    return [load_member(folder / f"{seed}.npz") for seed in seeds]


def overrides_of(sets: list[str]) -> dict:
    """--set KEY=VALUE items as overrides, each value read as YAML."""
    return {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in sets)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, help="a preset of bench/presets.yaml, its recipe the members'")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override (YAML value)")
    parser.add_argument(
        "--pair-set", action="append", default=[], metavar="KEY=VALUE", help="a second recipe's override: mixed pairs"
    )
    parser.add_argument("--members", type=int, help="the pool's size")
    parser.add_argument("--seed", type=int, default=42, help="the pool's seeds are member_seeds(seed, members)")
    parser.add_argument("--out", type=Path, help="the JSON report")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: train the member of this seed
    args = parser.parse_args()
    if args.one is not None:
        train_member(args.preset, overrides_of(args.set), args.one, pool_folder(args.preset, overrides_of(args.set)))
        return
    if not (args.members and args.out):
        parser.error("--members and --out are required")
    seeds = training.member_seeds(args.seed, args.members)
    members, labels = pool(args.preset, args.set, seeds), paths.load_split("val")[1]
    report = {
        "preset": args.preset,
        "overrides": overrides_of(args.set),
        "seeds": seeds,
        "member_seconds": [round(m["seconds"], 1) for m in members],
        "ensembles": scores(members, labels, range(1, args.members + 1)),
    }
    if args.pair_set:
        partners = pool(args.preset, args.pair_set, seeds)
        report |= {
            "pair_overrides": overrides_of(args.pair_set),
            "partner_seconds": [round(p["seconds"], 1) for p in partners],
            "pairs": pair_scores(members, partners, labels),
        }
    save_json(args.out, report)
    print(json.dumps({k: (v["val_accuracy_mean"], v["val_accuracy_sd"]) for k, v in report["ensembles"].items()}))
    if args.pair_set:
        print(json.dumps({"pairs": report["pairs"]}))


if __name__ == "__main__":
    main()
