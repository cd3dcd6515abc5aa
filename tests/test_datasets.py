"""The IDX reader (including broken files), MNIST loading, digits and the split."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from xpnet.datasets import IDXError, load_digits, load_mnist, parse_idx, read_idx, train_val_split
from xpnet.datasets.mnist import MNIST_FILES, embedded_mnist_dir


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def test_round_trip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "a.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(path), array)
    plain = tmp_path / "a.idx"
    plain.write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(read_idx(plain, expected_ndim=3), array)


def test_truncated_and_too_long(tmp_path):
    data = idx_bytes(np.zeros((2, 3, 4)))
    with pytest.raises(
        IDXError,
        match=r"x: truncated: the header's shape \(2, 3, 4\) needs 24 data bytes; the file has 23",
    ):
        parse_idx(data[:-1], "x")
    with pytest.raises(IDXError, match=r"x: too long: .* needs 24 data bytes; the file has 25"):
        parse_idx(data + b"\0", "x")
    with pytest.raises(IDXError, match=r"x: truncated header \(10 of 16 bytes\)"):
        parse_idx(data[:10], "x")
    with pytest.raises(IDXError, match="too short for an IDX header"):
        parse_idx(b"\0\0", "x")


def test_bad_magic_and_dimensions(tmp_path):
    data = bytearray(idx_bytes(np.zeros((2, 3))))
    with pytest.raises(IDXError, match=r"x: expected 3 dimensions; the header says 2"):
        parse_idx(bytes(data), "x", expected_ndim=3)
    data[2] = 0x0D  # float type code
    with pytest.raises(IDXError, match=r"x: bad magic number 0x00000d02"):
        parse_idx(bytes(data), "x")


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((5, 5))))[:20])
    with pytest.raises(IDXError, match=r"broken.gz: not a valid gzip file"):
        read_idx(path)
    with pytest.raises(FileNotFoundError, match=r"IDX file not found: .*missing.gz"):
        read_idx(tmp_path / "missing.gz")


def test_checksum_mismatch_names_the_file(tmp_path):
    data = idx_bytes(np.zeros((2, 2)))
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(data))
    with pytest.raises(
        IDXError, match=r"labels.gz: checksum mismatch: expected md5 0+, got [0-9a-f]{32}"
    ):
        read_idx(path, md5="0" * 32)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def test_embedded_mnist(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert float(x_train.min()) == 0.0 and float(x_train.max()) == 1.0
    counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    np.testing.assert_array_equal(np.bincount(y_train), counts)
    assert list(y_test[:5]) == [7, 2, 1, 0, 4]


def test_normalize_options(mnist):
    (x_std, _), _ = load_mnist(normalize=True)
    assert abs(float(x_std.mean())) < 0.01 and abs(float(x_std.std()) - 1) < 0.01
    (x_own, _), _ = load_mnist(normalize=(0.5, 0.5))
    np.testing.assert_allclose(x_own[:10], (mnist[0][0][:10] - 0.5) / 0.5, rtol=1e-6)


def test_data_dir_with_a_corrupt_file(tmp_path):
    for filename, _ in MNIST_FILES.values():
        shutil.copy(embedded_mnist_dir() / filename, tmp_path / filename)
    (x, _), _ = load_mnist(tmp_path)
    assert x.shape[0] == 60000
    labels = tmp_path / MNIST_FILES["test_labels"][0]
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(IDXError, match=r"t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        load_mnist(tmp_path)
    labels.write_bytes(gzip.compress(bytes(raw[:-3])))
    with pytest.raises(IDXError, match=r"t10k-labels-idx1-ubyte.gz: truncated"):
        load_mnist(tmp_path, verify=False)


def test_openml_source_uses_fetch_openml(monkeypatch):
    import sklearn.datasets

    calls = {}

    def fake_fetch(name, **kwargs):
        calls["name"] = name
        x = np.tile(np.arange(784) % 256, (70000, 1)).astype(np.float64)
        return x, np.array([str(i % 10) for i in range(70000)], dtype=object)

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", fake_fetch)
    (x_train, y_train), (x_test, y_test) = load_mnist(source="openml")
    assert calls["name"] == "mnist_784"
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert y_train.dtype == np.int64 and y_test[:3].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="source must be 'idx' or 'openml'; got 'web'"):
        load_mnist(source="web")


def test_digits_and_stratified_split():
    (x_train, y_train), (x_test, y_test) = load_digits(seed=1)
    assert x_train.shape[1:] == (1, 8, 8) and x_train.dtype == np.float32
    assert len(x_train) + len(x_test) == 1797
    assert float(x_train.max()) <= 1.0
    fractions = np.bincount(y_test) / len(y_test)
    np.testing.assert_allclose(fractions, np.bincount(y_train) / len(y_train), atol=0.01)
    (a, _), _ = train_val_split(x_train, y_train, seed=3)
    (b, _), _ = train_val_split(x_train, y_train, seed=3)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\); got 1.5"):
        train_val_split(x_train, y_train, val_fraction=1.5)
