"""Data sets: the published formats read right, the downloader safe, the synthetic data usable.

No data set can be downloaded here, so each test writes tiny files in the real formats and
serves them from a local HTTP server where a download is under test.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from cnnprof.errors import UserError
from cnnprof.models import data
from cnnprof.models.data import default_data_dir, download_dataset, load_dataset, to_nhwc

IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx encoding of a uint8 array: 0, 0, type 0x08, ndim, big-endian dims, data."""
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def marked_images(count: int, side: int, channels: int) -> np.ndarray:
    """uint8 (count, channels, side, side) images whose pixel (0, 0, 0) is their index.

    Pixel (0, 3, 17) is 200 in every image, to check rows and columns are not swapped.
    """
    rng = np.random.default_rng(7)
    images = rng.integers(0, 150, (count, channels, side, side), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(count)
    images[:, 0, 3, 17] = 200
    return images


def raw_pixels(x: np.ndarray, splits: data.DatasetSplits) -> np.ndarray:
    """Undo the normalisation: back to the 0..255 bytes."""
    mean = np.asarray(splits.mean)[None, :, None, None]
    std = np.asarray(splits.std)[None, :, None, None]
    return np.rint((x * std + mean) * 255).astype(np.int64)


def write_mnist(folder: Path, n_train: int = 50, n_test: int = 10, gz: bool = True) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": marked_images(n_train, 28, 1)[:, 0],
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": marked_images(n_test, 28, 1)[:, 0],
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for stem, array in arrays.items():
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(array)))
        else:
            (folder / stem).write_bytes(idx_bytes(array))
    return arrays


def cifar_batch(images: np.ndarray, labels: np.ndarray, label_key: bytes) -> bytes:
    # Rows of 3072 bytes: the R plane, then G, then B, as published (protocol 2, as they were).
    return pickle.dumps({b"data": images.reshape(len(images), -1), label_key: labels.tolist()}, protocol=2)


def write_cifar10(folder: Path, per_batch: int = 6, n_test: int = 5) -> np.ndarray:
    """Five training batches and a test batch; returns all the training images in file order."""
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True, exist_ok=True)
    images = marked_images(5 * per_batch, 32, 3)
    images[:, 1, 7, 1] = 100  # a G-plane pixel, to check the planes are channels
    labels = np.arange(len(images)) % 10
    for b in range(5):
        part = slice(b * per_batch, (b + 1) * per_batch)
        (batches / f"data_batch_{b + 1}").write_bytes(cifar_batch(images[part], labels[part], b"labels"))
    test = marked_images(n_test, 32, 3)
    (batches / "test_batch").write_bytes(cifar_batch(test, np.arange(n_test) % 10, b"labels"))
    return images


# --- reading the published formats --------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_idx_files_load_with_labels_paired_and_layout_kept(tmp_path: Path, gz: bool) -> None:
    arrays = write_mnist(tmp_path / "mnist", gz=gz)
    splits = load_dataset("mnist", tmp_path, download=False)
    assert splits.x_train.shape == (45, 1, 28, 28) and splits.x_val.shape == (5, 1, 28, 28)
    assert splits.x_test.shape == (10, 1, 28, 28)
    assert splits.x_train.dtype == np.float32 and splits.y_train.dtype == np.int64
    assert (splits.channels, splits.height, splits.width, splits.num_classes) == (1, 28, 28, 10)
    # Every image keeps its label through the shuffle: the label is the image's index mod 10.
    ids = {}
    for part in ("train", "val", "test"):
        pixels = raw_pixels(getattr(splits, f"x_{part}"), splits)
        ids[part] = pixels[:, 0, 0, 0]
        assert np.array_equal(getattr(splits, f"y_{part}"), ids[part] % 10)
        assert (pixels[:, 0, 3, 17] == 200).all() and not (pixels[:, 0, 17, 3] == 200).all()
    assert sorted(ids["train"].tolist() + ids["val"].tolist()) == list(range(50))
    assert ids["test"].tolist() == list(range(10))  # the test set is not shuffled
    original = arrays["train-images-idx3-ubyte"]
    assert np.array_equal(raw_pixels(splits.x_train, splits)[:, 0], original[ids["train"]])


def test_cifar10_rows_are_rgb_planes_in_chw_order(tmp_path: Path) -> None:
    images = write_cifar10(tmp_path / "cifar10")
    splits = load_dataset("cifar10", tmp_path, download=False)
    assert splits.x_train.shape == (27, 3, 32, 32) and splits.x_val.shape == (3, 3, 32, 32)
    assert splits.x_test.shape == (5, 3, 32, 32)
    pixels = raw_pixels(splits.x_train, splits)
    ids = pixels[:, 0, 0, 0]
    assert np.array_equal(pixels, images[ids])
    assert (pixels[:, 0, 3, 17] == 200).all() and (pixels[:, 1, 7, 1] == 100).all()
    assert np.array_equal(splits.y_train, ids % 10)


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    images = marked_images(20, 32, 3)
    (folder / "train").write_bytes(cifar_batch(images, np.arange(20) * 5, b"fine_labels"))
    (folder / "test").write_bytes(cifar_batch(images[:4], np.array([99, 0, 1, 2]), b"fine_labels"))
    splits = load_dataset("cifar100", tmp_path, download=False)
    assert splits.num_classes == 100
    assert np.array_equal(splits.y_train, raw_pixels(splits.x_train, splits)[:, 0, 0, 0] * 5)
    assert splits.y_test.tolist() == [99, 0, 1, 2]


def test_nhwc_is_a_transpose(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar10")
    x = load_dataset("cifar10", tmp_path, download=False).x_train
    nhwc = to_nhwc(x)
    assert nhwc.shape == (27, 32, 32, 3) and nhwc.flags.c_contiguous
    assert nhwc[4, 7, 1, 1] == x[4, 1, 7, 1] and nhwc[4, 3, 17, 0] == x[4, 0, 3, 17]
    assert np.array_equal(nhwc, np.moveaxis(x, 1, -1))


def test_normalised_with_the_training_splits_statistics(tmp_path: Path) -> None:
    images = write_cifar10(tmp_path / "cifar10")
    splits = load_dataset("cifar10", tmp_path, download=False)
    train = images[raw_pixels(splits.x_train, splits)[:, 0, 0, 0]] / 255.0
    assert np.allclose(splits.mean, train.mean(axis=(0, 2, 3)), atol=1e-12)
    assert np.allclose(splits.std, train.std(axis=(0, 2, 3)), atol=1e-12)
    assert np.allclose(splits.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert np.allclose(splits.x_train.std(axis=(0, 2, 3)), 1, atol=1e-5)
    assert not np.allclose(splits.x_val.mean(axis=(0, 2, 3)), 0, atol=1e-5)  # not its own stats


def test_split_is_deterministic_in_the_seed_and_truncatable(tmp_path: Path) -> None:
    write_mnist(tmp_path / "mnist", n_train=100)
    first = load_dataset("mnist", tmp_path, download=False, seed=3)
    again = load_dataset("mnist", tmp_path, download=False, seed=3)
    other = load_dataset("mnist", tmp_path, download=False, seed=4)
    assert (len(first.x_train), len(first.x_val)) == (90, 10)
    assert np.array_equal(first.x_train, again.x_train) and np.array_equal(first.y_val, again.y_val)
    assert not np.array_equal(first.y_train, other.y_train)
    short = load_dataset("mnist", tmp_path, download=False, seed=3, train_images=7, test_images=4)
    assert np.array_equal(short.x_train, first.x_train[:7])
    assert np.array_equal(short.y_train, first.y_train[:7])
    assert np.array_equal(short.x_test, first.x_test[:4])
    # the validation split keeps the 90/10 proportion: ceil(7 / 9) = 1 image, the first one
    assert np.array_equal(short.x_val, first.x_val[:1]) and np.array_equal(short.y_val, first.y_val[:1])
    assert short.mean == first.mean


@pytest.mark.parametrize("count", [0, -5])
def test_image_counts_must_be_positive(count: int) -> None:
    with pytest.raises(UserError, match="train_images"):
        load_dataset("synthetic", train_images=count)


def test_unknown_dataset_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet", tmp_path)


def test_default_data_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CNNPROF_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("CNNPROF_DATA_DIR")
    assert default_data_dir() == Path.home() / ".cache" / "cnnprof"


# --- what a user can get wrong ------------------------------------------------------------------


def test_missing_files_offline_name_them_the_folder_and_the_way_out(tmp_path: Path) -> None:
    write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(UserError) as err:
        load_dataset("mnist", tmp_path, download=False)
    message = str(err.value)
    assert "t10k-labels-idx1-ubyte" in message and "train-images" not in message
    assert str(tmp_path / "mnist") in message and "--dataset synthetic" in message
    assert "\n" not in message

    with pytest.raises(UserError) as err:
        load_dataset("cifar10", tmp_path, download=False)
    message = str(err.value)
    assert all(f"cifar-10-batches-py/data_batch_{i}" in message for i in range(1, 6))
    assert "test_batch" in message and "cifar-10-python.tar.gz" in message
    assert "--dataset synthetic" in message and "\n" not in message


GOOD_IDX = idx_bytes(np.zeros((3, 28, 28), np.uint8))


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\x00\x00\x09\x03" + GOOD_IDX[4:], "not an idx file"),
        (idx_bytes(np.zeros(3, np.uint8)), "not an idx file"),  # a labels file
        (idx_bytes(np.zeros((3, 28, 27), np.uint8)), r"expected \(N, 28, 28\)"),
        (GOOD_IDX[:-10], "data bytes"),
        (b"", "magic missing"),
        (idx_bytes(np.zeros((0, 28, 28), np.uint8)), "no entries"),
    ],
    ids=["bad-magic", "labels-magic", "wrong-shape", "truncated", "empty-file", "no-images"],
)
def test_corrupt_idx_is_a_user_error(tmp_path: Path, content: bytes, why: str) -> None:
    write_mnist(tmp_path / "mnist", gz=False)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(UserError, match=why) as err:
        load_dataset("mnist", tmp_path, download=False)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_corrupt_gzip_and_mismatched_labels_are_user_errors(tmp_path: Path) -> None:
    write_mnist(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(UserError, match="corrupt dataset file"):
        load_dataset("mnist", tmp_path, download=False)
    write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(9, np.uint8))))
    with pytest.raises(UserError, match="9 labels for 10 images"):
        load_dataset("mnist", tmp_path, download=False)


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (os.getcwd, ())


@pytest.mark.parametrize(
    ("batch", "why"),
    [
        (pickle.dumps({b"data": _Exploit(), b"labels": []}), "posix.getcwd has no place"),
        (pickle.dumps({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}), r"\(N, 3072\)"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}), "labels outside 0..9"),
        (b"not a pickle", "not a CIFAR batch"),
    ],
    ids=["code", "row-size", "label-range", "garbage"],
)
def test_bad_cifar_batches_are_refused(tmp_path: Path, batch: bytes, why: str) -> None:
    write_cifar10(tmp_path / "cifar10")
    (tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_3").write_bytes(batch)
    with pytest.raises(UserError, match=why):
        load_dataset("cifar10", tmp_path, download=False)


# --- downloading --------------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass  # keep the test output clean


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on localhost: (folder, base URL)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a CI proxy must not swallow the local server
    root = tmp_path / "mirror"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    # A short poll interval makes shutdown() quick.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_verifies_and_places_the_files(
    tmp_path: Path, mirror: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, url = mirror
    write_mnist(served)
    checksums = {stem: md5_of(served / f"{stem}.gz") for stem in IDX_STEMS}
    monkeypatch.setitem(data._IDX_SOURCES, "mnist", data._IdxSource(url, checksums))
    store = tmp_path / "store"
    splits = load_dataset("mnist", store)  # with the progress bar, which goes to stderr
    assert len(splits.x_train) == 45
    assert sorted(p.name for p in (store / "mnist").iterdir()) == sorted(f"{s}.gz" for s in IDX_STEMS)


def test_checksum_mismatch_leaves_nothing_behind(tmp_path: Path, mirror: tuple[Path, str]) -> None:
    served, url = mirror
    write_mnist(served)  # not the published files, so the published checksums cannot match
    with pytest.raises(UserError, match="failed its checksum") as err:
        download_dataset("mnist", tmp_path, progress=False, base_url=url)
    assert "\n" not in str(err.value)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_failed_download_explains_how_to_get_the_files(
    tmp_path: Path, mirror: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = mirror  # serves nothing: every file is a 404
    monkeypatch.setitem(data._IDX_SOURCES, "mnist", data._IdxSource(url, data._IDX_SOURCES["mnist"].md5))
    with pytest.raises(UserError) as err:
        load_dataset("mnist", tmp_path, progress=False)
    message = str(err.value)
    assert "download failed" in message and "404" in message and "--dataset synthetic" in message
    assert all(stem in message for stem in IDX_STEMS) and "\n" not in message
    assert list((tmp_path / "mnist").iterdir()) == []


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, content in members:
            info.size = len(content) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(content) if info.isfile() else None)
    return buffer.getvalue()


def cifar_tar_gz(source: Path) -> bytes:
    """A CIFAR-10 archive of the small fixture batches (written under `source`)."""
    write_cifar10(source)
    members = [(tarfile.TarInfo("cifar-10-batches-py"), b"")]
    members[0][0].type = tarfile.DIRTYPE
    for path in sorted((source / "cifar-10-batches-py").iterdir()):
        members.append((tarfile.TarInfo(f"cifar-10-batches-py/{path.name}"), path.read_bytes()))
    return tar_gz(members)


def test_cifar_archive_is_fetched_unpacked_and_removed(
    tmp_path: Path, mirror: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, url = mirror
    (served / "cifar-10-python.tar.gz").write_bytes(cifar_tar_gz(tmp_path / "source"))
    fake = data._CIFAR_SOURCES["cifar10"]
    monkeypatch.setitem(
        data._CIFAR_SOURCES,
        "cifar10",
        data._CifarSource(**{**vars(fake), "archive_md5": md5_of(served / "cifar-10-python.tar.gz")}),
    )
    download_dataset("cifar10", tmp_path / "store", progress=False, base_url=url)
    assert sorted(p.name for p in (tmp_path / "store" / "cifar10").iterdir()) == ["cifar-10-batches-py"]
    assert len(load_dataset("cifar10", tmp_path / "store", download=False).x_train) == 27


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    "evil",
    [
        _member("../escaped.txt"),
        _member("cifar-10-batches-py/../../escaped.txt"),
        _member("/tmp/cnnprof-escaped.txt"),
        _member("cifar-10-batches-py/link", tarfile.SYMTYPE, "../../escaped.txt"),
        _member("cifar-10-batches-py/abs", tarfile.SYMTYPE, "/etc/passwd"),
        _member("cifar-10-batches-py/hard", tarfile.LNKTYPE, "/etc/passwd"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-out", "symlink-abs", "hardlink"],
)
def test_malicious_archive_is_refused_before_anything_is_written(tmp_path: Path, evil: tarfile.TarInfo) -> None:
    target = tmp_path / "data" / "cifar10"
    target.mkdir(parents=True)
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(tar_gz([(_member("cifar-10-batches-py/fine"), b"ok"), (evil, b"pwned")]))
    with pytest.raises(UserError, match="refusing"):
        data.extract_tar(archive, target)
    assert list(target.iterdir()) == []
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/cnnprof-escaped.txt").exists()


def test_archive_placed_by_hand_must_match_its_checksum(tmp_path: Path) -> None:
    folder = tmp_path / "cifar10"
    folder.mkdir()
    (folder / "cifar-10-python.tar.gz").write_bytes(tar_gz([(_member("x"), b"x")]))
    with pytest.raises(UserError, match="does not match its published checksum"):
        download_dataset("cifar10", tmp_path, progress=False)


def test_offline_with_the_archive_in_place_unpacks_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--offline never fetches, but an archive the user put there is theirs to use: it is verified
    and unpacked, not answered with "put the archive there"."""
    folder = tmp_path / "store" / "cifar10"
    folder.mkdir(parents=True)
    (folder / "cifar-10-python.tar.gz").write_bytes(cifar_tar_gz(tmp_path / "source"))
    fake = data._CIFAR_SOURCES["cifar10"]
    md5 = md5_of(folder / "cifar-10-python.tar.gz")
    monkeypatch.setitem(data._CIFAR_SOURCES, "cifar10", data._CifarSource(**{**vars(fake), "archive_md5": md5}))
    assert len(load_dataset("cifar10", tmp_path / "store", download=False).x_train) == 27
    assert (folder / "cifar-10-python.tar.gz").exists()  # the user's own copy stays


def test_offline_with_a_damaged_archive_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "cifar10"
    folder.mkdir()
    (folder / "cifar-10-python.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(UserError, match="does not match its published checksum") as raised:
        load_dataset("cifar10", tmp_path, download=False)
    assert "put " not in str(raised.value)


# --- synthetic data -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic() -> data.DatasetSplits:
    return load_dataset("synthetic", seed=0)


def test_synthetic_is_mnist_shaped(synthetic: data.DatasetSplits) -> None:
    assert synthetic.x_train.shape == (54_000, 1, 28, 28) and synthetic.x_val.shape == (6_000, 1, 28, 28)
    assert synthetic.x_test.shape == (10_000, 1, 28, 28) and synthetic.num_classes == 10
    assert np.bincount(synthetic.y_train).min() > 5000  # balanced classes
    assert synthetic.x_train.dtype == np.float32 and synthetic.y_train.dtype == np.int64


@pytest.fixture
def small_synthetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fewer synthetic images, for tests of everything but their number."""
    monkeypatch.setitem(data._SYNTHETIC_SHAPES, "synthetic", (1, 28, 3000, 500))
    monkeypatch.setitem(data._SYNTHETIC_SHAPES, "synthetic-cifar", (3, 32, 3000, 500))


@pytest.mark.usefixtures("small_synthetic")
def test_synthetic_is_deterministic() -> None:
    first = load_dataset("synthetic", seed=0)
    again = load_dataset("synthetic", seed=0, train_images=1000)
    assert again.x_train.tobytes() == first.x_train[:1000].tobytes()
    assert again.x_test.tobytes() == first.x_test.tobytes()
    assert np.array_equal(again.y_train, first.y_train[:1000])
    other = load_dataset("synthetic", seed=1)  # the same images, split (and so normalised) differently
    assert np.array_equal(raw_pixels(other.x_test, other), raw_pixels(first.x_test, first))
    assert not np.array_equal(other.y_train, first.y_train)


def test_synthetic_classes_are_separable_but_not_trivially(synthetic: data.DatasetSplits) -> None:
    x, y = synthetic.x_train[:3000].reshape(3000, -1), synthetic.y_train[:3000]
    means = np.stack([x[y == k].mean(axis=0) for k in range(10)])
    xv, yv = synthetic.x_val[:1000].reshape(1000, -1), synthetic.y_val[:1000]
    nearest = ((xv[:, None, :] - means[None]) ** 2).sum(axis=-1).argmin(axis=1)
    accuracy = (nearest == yv).mean()
    assert accuracy > 0.8
    # Noise and shifts: two images of one class are far from identical.
    same = x[y == 0]
    assert np.abs(same[0] - same[1]).mean() > 0.3


def test_synthetic_cifar_is_cifar_shaped() -> None:
    assert data._SYNTHETIC_SHAPES["synthetic-cifar"] == (3, 32, 50_000, 10_000)


@pytest.mark.usefixtures("small_synthetic")
def test_synthetic_cifar_has_three_distinct_channels() -> None:
    splits = load_dataset("synthetic-cifar", train_images=100, test_images=10)
    assert splits.x_train.shape == (100, 3, 32, 32) and splits.x_val.shape == (12, 3, 32, 32)
    assert splits.x_test.shape == (10, 3, 32, 32) and len(splits.mean) == 3
    assert not np.allclose(splits.x_train[:, 0], splits.x_train[:, 1], atol=0.5)
