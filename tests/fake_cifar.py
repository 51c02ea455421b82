"""A small synthetic CIFAR in the real python-pickle layout, for tests and GPU smoke runs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from admtune.workloads.cifar_data import RELEASES


def write_fake_cifar(
    dir: str | os.PathLike, n_train: int = 500, n_test: int = 200, classes: int = 10,
    seed: int = 0,
) -> Path:
    """Write a small synthetic dataset in the real python-pickle layout under ``dir``; returns
    ``dir`` (pass it as ``workload.data_dir``). Each class has its own colour and stripe pattern plus
    noise, so a net learns it in an epoch or two."""
    if classes not in RELEASES:
        raise ValueError("classes must be 10 or 100")
    rel = RELEASES[classes]
    rng = np.random.default_rng(seed)
    protos = rng.uniform(30, 225, size=(classes, 3, 1, 1))   # a colour per class
    freq = 1 + np.arange(classes) % 7                        # a stripe frequency per class
    vertical = (np.arange(classes) // 7) % 2 == 0            # and an orientation
    grid = np.arange(32)

    def make(n: int) -> tuple[np.ndarray, list[int]]:
        y = rng.integers(0, classes, size=n)
        x = np.empty((n, 3072), dtype=np.uint8)
        for a in range(0, n, 5000):  # in chunks: a full-size fake set stays light on memory
            yc = y[a:a + 5000]
            wave = 50 * np.sin(2 * np.pi * freq[yc, None] * grid[None, :] / 32)   # len(yc) × 32
            stripes = np.where(vertical[yc, None, None], wave[:, None, :], wave[:, :, None])
            img = protos[yc] + stripes[:, None] + rng.normal(0, 20, (len(yc), 3, 32, 32))
            x[a:a + 5000] = np.clip(img, 0, 255).astype(np.uint8).reshape(len(yc), 3072)
        return x, [int(v) for v in y]

    folder = Path(dir) / rel.folder
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, obj: dict) -> None:
        with open(folder / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    def batch(label: str, n: int) -> dict:
        x, y = make(n)
        d = {b"batch_label": label.encode(), b"data": x,
             b"filenames": [f"fake_{i:06d}.png".encode() for i in range(n)]}
        if classes == 10:
            d[b"labels"] = y
        else:
            d[b"fine_labels"] = y
            d[b"coarse_labels"] = [v // 5 for v in y]
        return d

    if classes == 10:
        sizes = [len(a) for a in np.array_split(np.arange(n_train), len(rel.train_files))]
        for i, (name, n) in enumerate(zip(rel.train_files, sizes, strict=True)):
            dump(name, batch(f"training batch {i + 1} of 5", n))
        dump(rel.test_file, batch("testing batch 1 of 1", n_test))
        dump(rel.meta_file, {b"label_names": [f"class{i}".encode() for i in range(10)],
                             b"num_cases_per_batch": max(sizes), b"num_vis": 3072})
    else:
        dump("train", batch("training batch 1 of 1", n_train))
        dump("test", batch("testing batch 1 of 1", n_test))
        dump("meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                      b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    return Path(dir)
