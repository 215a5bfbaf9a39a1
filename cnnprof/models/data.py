"""The data sets the seed CNN trains on: readers, a checked downloader, and built-in synthetic data.

Every data set comes back the same way (`DatasetSplits`): float32 NCHW images normalised per
channel with the statistics of the training split, int64 labels, and a 90/10 train/validation
split of the original training set that depends only on `seed`. The training loops of both
frameworks use these arrays as given, so both see the same images in the same order.

Files live in `<data_dir>/<dataset>/` in their published formats (idx for MNIST and
Fashion-MNIST, the pickled batches for CIFAR); anything a user can get wrong (missing files
offline, a corrupt or tampered file, a failed download) raises `UserError` with one line.
"""

from __future__ import annotations

import codecs
import gzip
import os
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnprof.errors import UserError

from .download import extract_tar, fetch, md5_of
from .synthetic import SYNTHETIC_CLASSES, rows_per_chunk, synthetic_arrays

DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "synthetic", "synthetic-cifar")



@dataclass
class DatasetSplits:
    """One data set ready to train on.

    `mean` and `std` are per channel, in [0, 1] pixel units (pixel / 255, as torchvision's
    `Normalize` takes them); every `x_*` array is `(pixel / 255 - mean) / std`.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def height(self) -> int:
        return int(self.x_train.shape[2])

    @property
    def width(self) -> int:
        return int(self.x_train.shape[3])


def to_nhwc(x: np.ndarray) -> np.ndarray:
    """NCHW -> NHWC for MLX: a transpose, never a reshape (a reshape scrambles the channels)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def default_data_dir() -> Path:
    """Where data sets are kept: `$CNNPROF_DATA_DIR`, else `~/.cache/cnnprof`."""
    configured = os.environ.get("CNNPROF_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "cnnprof"


# --- where the real data sets come from ----------------------------------------------------------

# The four idx files of MNIST and Fashion-MNIST, without the .gz they are published with.
_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class _IdxSource:
    base_url: str
    md5: dict[str, str]  # of each published .gz file (the checksums torchvision verifies too)


@dataclass(frozen=True)
class _CifarSource:
    base_url: str
    archive: str
    archive_md5: str
    folder: str  # the folder the archive unpacks to
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int


_IDX_SOURCES = {
    "mnist": _IdxSource(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion-mnist": _IdxSource(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
}

_CIFAR_SOURCES = {
    "cifar10": _CifarSource(
        "https://www.cs.toronto.edu/~kriz/",
        "cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        b"labels",
        10,
    ),
    "cifar100": _CifarSource(
        "https://www.cs.toronto.edu/~kriz/",
        "cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        "cifar-100-python",
        ("train",),
        ("test",),
        b"fine_labels",
        100,
    ),
}

# name -> (channels, side, train images, test images), shaped like MNIST and CIFAR-10.
_SYNTHETIC_SHAPES = {"synthetic": (1, 28, 60_000, 10_000), "synthetic-cifar": (3, 32, 50_000, 10_000)}


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def _missing_files(name: str, folder: Path) -> list[str]:
    """The files `name` needs that are not in `folder`, as paths relative to it."""
    if name in _IDX_SOURCES:
        return [
            f"{stem}[.gz]"
            for stem in _IDX_FILES
            if not (folder / stem).is_file() and not (folder / f"{stem}.gz").is_file()
        ]
    source = _CIFAR_SOURCES[name]
    return [
        f"{source.folder}/{file}"
        for file in source.train_files + source.test_files
        if not (folder / source.folder / file).is_file()
    ]


# --- downloading --------------------------------------------------------------------------------


def download_dataset(name: str, data_dir: Path, progress: bool = True, *, base_url: str | None = None) -> None:
    """Fetch the files `name` lacks into `<data_dir>/<name>/`, verifying each checksum.

    `base_url` replaces the canonical mirror (a local mirror, or a test server). A CIFAR archive
    already in the folder (copied there by hand, say) is verified and unpacked instead of fetched.
    Raises `UserError` when a file cannot be fetched or fails its checksum; nothing partial is left.
    """
    _check_name(name)
    if name in _SYNTHETIC_SHAPES:
        return  # generated on the fly, nothing to fetch
    folder = Path(data_dir) / name
    if not _missing_files(name, folder):
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {folder}: {exc}; choose another with --data-dir or CNNPROF_DATA_DIR") from exc
    if name in _IDX_SOURCES:
        idx = _IDX_SOURCES[name]
        for stem, md5 in idx.md5.items():
            if not (folder / stem).is_file() and not (folder / f"{stem}.gz").is_file():
                fetch(f"{base_url or idx.base_url}{stem}.gz", folder / f"{stem}.gz", md5, progress)
        return
    cifar = _CIFAR_SOURCES[name]
    archive = folder / cifar.archive
    fetched = not archive.is_file()
    if fetched:
        fetch(f"{base_url or cifar.base_url}{cifar.archive}", archive, cifar.archive_md5, progress)
    elif md5_of(archive) != cifar.archive_md5:
        raise UserError(f"{archive} does not match its published checksum; delete it and run again")
    extract_tar(archive, folder)
    if fetched:
        archive.unlink()  # the unpacked batches are what is read; keep only a user's own copy


# --- reading the published formats --------------------------------------------------------------


def _corrupt(path: Path, why: str) -> UserError:
    return UserError(f"corrupt dataset file {path}: {why}; delete it and run again to fetch it afresh")


def _read_idx(path: Path, ndim: int, tail: tuple[int, ...]) -> np.ndarray:
    """An idx file of unsigned bytes (`.gz` or raw) with `ndim` dimensions, the last ones `tail`."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as file:
                raw = file.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise _corrupt(path, str(exc)) from exc
    # Magic number: two zero bytes, the element type (0x08 = unsigned byte), the number of dims.
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise _corrupt(path, f"not an idx file of {ndim}-d unsigned bytes (magic {raw[:4].hex() or 'missing'})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _corrupt(path, "truncated header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if dims[1:] != tail:
        expected = "(N" + "".join(f", {d}" for d in tail) + ")"
        raise _corrupt(path, f"shape {dims}, expected {expected}")
    if dims[0] == 0:
        raise _corrupt(path, "no entries")
    if len(raw) - header != int(np.prod(dims)):
        raise _corrupt(path, f"{len(raw) - header} data bytes for shape {dims}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _idx_path(folder: Path, stem: str) -> Path:
    raw = folder / stem
    return raw if raw.is_file() else folder / f"{stem}.gz"


def _read_idx_split(folder: Path, prefix: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    images_path = _idx_path(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = _idx_path(folder, f"{prefix}-labels-idx1-ubyte")
    images = _read_idx(images_path, 3, (28, 28))
    labels = _read_idx(labels_path, 1, ())
    if len(labels) != len(images):
        raise _corrupt(labels_path, f"{len(labels)} labels for {len(images)} images in {images_path.name}")
    return images[:, None], _checked_labels(labels, num_classes, labels_path)


def _checked_labels(labels: object, num_classes: int, path: Path) -> np.ndarray:
    try:
        array = np.asarray(labels, dtype=np.int64)
    except (ValueError, TypeError) as exc:
        raise _corrupt(path, f"labels are not integers ({exc})") from exc
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise _corrupt(path, f"labels outside 0..{num_classes - 1}")
    return array


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches, rebuilding numpy arrays and nothing else.

    A pickle can name any callable; allowing only what the published batches use means a
    tampered file fails to load instead of running code.
    """

    _RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's own `_reconstruct`, whatever its module
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # the batches were pickled by numpy 1
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # and numpy 2 writes this
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how protocol 2 stores bytes from Python 3
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} has no place in a CIFAR batch") from None


def _read_cifar_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as file:
            batch = _ArrayUnpickler(file, encoding="bytes").load()
    except Exception as exc:  # damaged pickles fail in many ways, all of them meaning "corrupt"
        raise _corrupt(path, f"not a CIFAR batch ({exc})") from exc
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise _corrupt(path, f"no b'data' and {label_key!r} entries")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise _corrupt(path, "b'data' is not an (N, 3072) array of bytes")
    if len(data) == 0:
        raise _corrupt(path, "no images")
    labels = _checked_labels(batch[label_key], num_classes, path)
    if labels.shape != (len(data),):
        raise _corrupt(path, f"{labels.size} labels for {len(data)} images")
    # Each row is the R plane, then G, then B, each row-major: that is already C, H, W.
    return data.reshape(-1, 3, 32, 32), labels


def _read_real(name: str, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if name in _IDX_SOURCES:
        x_train, y_train = _read_idx_split(folder, "train", 10)
        x_test, y_test = _read_idx_split(folder, "t10k", 10)
        return x_train, y_train, x_test, y_test
    source = _CIFAR_SOURCES[name]

    def read(files: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_read_cifar_batch(folder / source.folder / f, source.label_key, source.num_classes) for f in files]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return *read(source.train_files), *read(source.test_files)


# --- splitting and normalising ------------------------------------------------------------------


def _channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std of uint8 NCHW images, in [0, 1] units.

    From a histogram of byte values, so it needs no float copy of the data set.
    """
    hist = np.zeros((x.shape[1], 256), np.int64)
    step = rows_per_chunk(x.shape)
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        for c in range(x.shape[1]):
            hist[c] += np.bincount(chunk[:, c].ravel(), minlength=256)
    values = np.arange(256) / 255.0
    count = hist.sum(axis=1)
    mean = (hist * values).sum(axis=1) / count
    std = np.sqrt((hist * (values - mean[:, None]) ** 2).sum(axis=1) / count)
    # A constant channel would divide by zero; leaving it merely centred is the useful answer.
    std = np.where(std > 0, std, 1.0)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def _normalise(x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    out = np.empty(x.shape, np.float32)
    shift = (np.asarray(mean) * 255.0).astype(np.float32)[None, :, None, None]
    scale = (np.asarray(std) * 255.0).astype(np.float32)[None, :, None, None]
    step = rows_per_chunk(x.shape)
    for start in range(0, len(x), step):
        block = out[start : start + step]
        block[...] = x[start : start + step]
        block -= shift
        block /= scale
    return out


def _check_count(value: int | None, option: str) -> None:
    if value is not None and value < 1:
        raise UserError(f"{option} must be at least 1, not {value}")


def _split(
    name: str,
    raw: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    num_classes: int,
    seed: int,
    train_images: int | None,
    test_images: int | None,
) -> DatasetSplits:
    x_all, y_all, x_test, y_test = raw
    order = np.random.default_rng(seed).permutation(len(x_all))
    n_val = len(order) // 10
    val, train = order[:n_val], order[n_val:]
    x_train = x_all[train]
    # Statistics of the whole training split, so they do not change with `train_images`.
    mean, std = _channel_stats(x_train)
    x_train, y_train = x_train[:train_images], y_all[train][:train_images]
    if train_images is not None:
        # A quick run validates on the same 90/10 proportion, not on all 6,000 images (which
        # would take a minute per epoch on MLX's CPU backend).
        val = val[: max(1, -(-train_images // 9))]
    x_test, y_test = x_test[:test_images], y_test[:test_images]
    return DatasetSplits(
        name=name,
        x_train=_normalise(x_train, mean, std),
        y_train=y_train,
        x_val=_normalise(x_all[val], mean, std),
        y_val=y_all[val],
        x_test=_normalise(x_test, mean, std),
        y_test=y_test,
        num_classes=num_classes,
        mean=mean,
        std=std,
    )


def load_dataset(
    name: str,
    data_dir: Path | None = None,
    *,
    download: bool = True,
    seed: int = 0,
    train_images: int | None = None,
    test_images: int | None = None,
    progress: bool = True,
) -> DatasetSplits:
    """Load (fetching if allowed and needed) data set `name`, split and normalised.

    `train_images` / `test_images` keep only the first N images of the shuffled training split /
    the test set, for quick runs; `train_images` also keeps the first N/9 validation images (the
    90/10 proportion). The normalisation statistics stay those of the full training split.
    """
    _check_name(name)
    _check_count(train_images, "train_images")
    _check_count(test_images, "test_images")
    if name in _SYNTHETIC_SHAPES:
        arrays = synthetic_arrays(*_SYNTHETIC_SHAPES[name])
        return _split(name, arrays, SYNTHETIC_CLASSES, seed, train_images, test_images)
    data_dir = default_data_dir() if data_dir is None else Path(data_dir)
    folder = data_dir / name
    if _missing_files(name, folder):
        reason = ""
        if download:
            try:
                download_dataset(name, data_dir, progress)
            except UserError as exc:
                reason = f" (download failed: {exc})"
        elif name in _CIFAR_SOURCES and (folder / _CIFAR_SOURCES[name].archive).is_file():
            download_dataset(name, data_dir, progress)  # offline: the archive is here, unpack it (no fetch)
        missing = _missing_files(name, folder)
        if missing:
            raise UserError(
                f"{name} not found: {', '.join(missing)} missing from {folder}{reason}; "
                f"put {_where_from(name)} there, or run with --dataset synthetic"
            )
    num_classes = _CIFAR_SOURCES[name].num_classes if name in _CIFAR_SOURCES else 10
    return _split(name, _read_real(name, folder), num_classes, seed, train_images, test_images)


def _where_from(name: str) -> str:
    if name in _IDX_SOURCES:
        return f"the files (from {_IDX_SOURCES[name].base_url})"
    source = _CIFAR_SOURCES[name]
    return f"{source.base_url}{source.archive} or its {source.folder}/ folder"
