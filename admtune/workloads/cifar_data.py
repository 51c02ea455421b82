"""The CIFAR data files: locating, downloading (on request), checksumming, extracting and safely
unpickling the official python-pickle releases of CIFAR-10 and CIFAR-100."""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/"
HOME = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class Release:
    """One CIFAR release: its archive, the folder it extracts to, and its file layout."""

    name: str
    classes: int
    archive: str
    md5: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: bytes


CIFAR10 = Release(
    "CIFAR-10", 10, "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
    "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
    "batches.meta", b"labels",
)
CIFAR100 = Release(
    "CIFAR-100", 100, "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
    "cifar-100-python", ("train",), "test", "meta", b"fine_labels",
)
RELEASES = {10: CIFAR10, 100: CIFAR100}

# -- files -----------------------------------------------------------------------------------
def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _how_to(rel: Release, root: Path) -> str:
    return (
        f"download {rel.archive} from {HOME} and extract it into {root} "
        f"(or put the archive there, or set workload.download = true on a machine that is online)"
    )


def _extract(rel: Release, archive: Path, root: Path) -> None:
    digest = md5sum(archive)
    if digest != rel.md5:
        raise DataError(
            f"{archive} is corrupt: its MD5 is {digest}, not the published {rel.md5}; delete it "
            f"and {_how_to(rel, root)}"
        )
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                if m.name.startswith(("/", "\\")) or ".." in Path(m.name).parts:
                    raise DataError(f"{archive} contains an unsafe path {m.name!r}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(root, filter="data")
            else:  # pragma: no cover (Python < 3.10.12)
                tar.extractall(root)  # noqa: S202 (paths checked above)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot extract {archive} ({exc}); delete it and {_how_to(rel, root)}") from exc


def _download(rel: Release, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    dest = root / rel.archive
    tmp = root / (rel.archive + ".part")
    try:
        with urllib.request.urlopen(URL + rel.archive, timeout=60) as resp, open(tmp, "wb") as f:
            while chunk := resp.read(1 << 20):
                f.write(chunk)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"could not download {URL + rel.archive} ({exc}); {_how_to(rel, root)}"
        ) from exc
    os.replace(tmp, dest)
    return dest


def find(rel: Release, data_dir: str | os.PathLike) -> Path:
    """The release's folder or its archive under ``data_dir``, touching nothing; a DataError
    saying where to put it when neither is there."""
    root = Path(data_dir).expanduser()
    for path in (root / rel.folder / rel.test_file, root / rel.test_file, root / rel.archive):
        if path.is_file():
            return path
    raise DataError(f"{rel.name} not found: looked for {root / rel.folder}/ and "
                    f"{root / rel.archive}; {_how_to(rel, root)}")


def locate(rel: Release, data_dir: str | os.PathLike, download: bool = False) -> Path:
    """The folder holding ``rel``'s pickle files, extracting or downloading the archive if needed."""
    root = Path(data_dir).expanduser()
    for folder in (root / rel.folder, root):
        if (folder / rel.test_file).is_file():
            return folder
    archive = root / rel.archive
    if not archive.is_file() and download:
        archive = _download(rel, root)
    if archive.is_file():
        _extract(rel, archive, root)
        if (root / rel.folder / rel.test_file).is_file():
            return root / rel.folder
        raise DataError(f"{archive} did not contain {rel.folder}/; delete it and {_how_to(rel, root)}")
    raise DataError(
        f"{rel.name} not found: looked for {root / rel.folder}/ and {archive}; {_how_to(rel, root)}"
    )


class _DataUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts of bytes, lists and NumPy arrays) and nothing else: a
    pickle naming any other global (code to run) is refused rather than executed."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _read_batch(rel: Release, path: Path) -> tuple[np.ndarray, np.ndarray]:
    def corrupt(why: str) -> DataError:
        return DataError(
            f"{path} is corrupt or not a {rel.name} python-pickle batch ({why}); replace it: "
            f"{_how_to(rel, path.parent.parent)}"
        )

    if not path.is_file():
        raise corrupt("file missing")
    try:
        with open(path, "rb") as f:
            d = _DataUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 (any unpickling failure means a bad file)
        raise corrupt(f"{type(exc).__name__}: {exc}") from None
    if not isinstance(d, dict) or b"data" not in d or rel.label_key not in d:
        raise corrupt(f"no b'data' and {rel.label_key!r} entries")
    x = np.asarray(d[b"data"])
    y = np.asarray(d[rel.label_key])
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise corrupt(f"b'data' is {x.dtype} {x.shape}, expected uint8 N×3072")
    if y.ndim != 1 or len(y) != len(x):
        raise corrupt(f"{len(y)} labels for {len(x)} images")
    if len(y) and (y.min() < 0 or y.max() >= rel.classes):
        raise corrupt(f"labels outside 0…{rel.classes - 1}")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


def load_arrays(rel: Release, folder: Path) -> dict[str, np.ndarray]:
    """Train and test images (uint8 N×3×32×32) and labels (int64) from the pickle folder."""
    parts = [_read_batch(rel, folder / name) for name in rel.train_files]
    test_x, test_y = _read_batch(rel, folder / rel.test_file)
    return {
        "train_x": np.concatenate([p[0] for p in parts]),
        "train_y": np.concatenate([p[1] for p in parts]),
        "test_x": test_x,
        "test_y": test_y,
    }
