"""Training input: the local-folder TFDS builder, the grain pipeline (folder and TFDS sources), host slices,
small images, and iterator state."""
import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxlic.data.pipeline import train_dataset

SIZES = [(70, 90), (64, 64), (50, 80), (100, 70), (66, 66), (81, 65)]  # (50, 80) is smaller than a 64 crop


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, size in enumerate(SIZES):
        Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(d / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (72, 72), dtype=np.uint8), "L").save(d / "grey.png")
    return d


@pytest.fixture(scope="module")
def tfds_dir(images, tmp_path_factory):
    from jaxlic.data.tfds_images import build
    d = tmp_path_factory.mktemp("tfds")
    assert build("tiny", {"train": [str(images)]}, str(d)) == "local_images/tiny"
    return d


def cfg(images=None, tfds_dir=None, **over):
    d = ml_collections.ConfigDict(dict(source="folder", paths=(str(images),) if images else (), name="",
                                       split="train", data_dir="", manual_dir="", image_key="image",
                                       crop=64, flip=True, small="pad"))
    if tfds_dir:
        d.update(source="tfds", name="local_images/tiny", data_dir=str(tfds_dir))
    d.update(over)
    return d


def test_builder_stores_every_image_as_rgb(images, tfds_dir):
    import tensorflow_datasets as tfds
    src = tfds.data_source("local_images/tiny", split="train", data_dir=str(tfds_dir))
    assert len(src) == len(SIZES) + 1
    by_name = {bytes(r["name"]).decode() if isinstance(r["name"], bytes) else r["name"]: r["image"] for r in
               (src[i] for i in range(len(src)))}
    for name, img in by_name.items():
        want = np.asarray(Image.open(images / name).convert("RGB"))
        np.testing.assert_array_equal(img, want)  # lossless (PNG inside the records), grey -> RGB


@pytest.mark.parametrize("source", ["folder", "tfds"])
def test_crops_come_from_the_images(images, tfds_dir, source):
    d = cfg(images, tfds_dir if source == "tfds" else None, flip=False)
    it = iter(train_dataset(d, local_batch=3, seed=0))
    originals = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(images.iterdir())]
    for _ in range(4):
        batch = next(it)
        assert batch.shape == (3, 64, 64, 3) and batch.dtype == np.uint8
        for crop in batch:  # each crop is a window of one original (edge-padded when small)
            assert any(_contains(o, crop) for o in originals)


def _contains(img, crop):
    c = crop.shape[0]
    img = np.pad(img, ((0, max(c - img.shape[0], 0)), (0, max(c - img.shape[1], 0)), (0, 0)), mode="edge")
    h, w = img.shape[:2]
    return any(np.array_equal(img[y:y + c, x:x + c], crop) for y in range(h - c + 1) for x in range(w - c + 1))


@pytest.mark.parametrize("source", ["folder", "tfds"])
def test_iterator_state_resumes_the_stream(images, tfds_dir, source):
    d = cfg(images, tfds_dir if source == "tfds" else None)
    it = iter(train_dataset(d, 2, seed=3))
    for _ in range(5):
        next(it)
    state = it.get_state()
    want = [next(it) for _ in range(4)]
    it2 = iter(train_dataset(d, 2, seed=3))
    it2.set_state(state)
    for a in want:
        np.testing.assert_array_equal(next(it2), a)
    other = next(iter(train_dataset(d, 2, seed=4)))
    assert not np.array_equal(other, next(iter(train_dataset(d, 2, seed=3))))


def test_hosts_read_disjoint_slices(images):
    d = cfg(images, flip=False, crop=40)
    seen = []
    for host in range(2):
        ids = set()
        for batch in _take(train_dataset(d, 1, seed=0, process_index=host, process_count=2), 30):
            ids |= {_which(images, b) for b in batch}
        seen.append(ids)
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == len(SIZES) + 1


def _take(ds, n):
    it = iter(ds)
    return [next(it) for _ in range(n)]


def _which(images, crop):
    for p in sorted(images.iterdir()):
        if _contains(np.asarray(Image.open(p).convert("RGB")), crop):
            return p.name
    raise AssertionError("crop from no image")


@pytest.mark.parametrize("source", ["folder", "tfds"])
def test_small_images_skipped_or_padded(images, tfds_dir, source, caplog):
    d = cfg(images, tfds_dir if source == "tfds" else None, small="skip", flip=False)
    names = {_which(images, b) for batch in _take(train_dataset(d, 2, seed=0), 20) for b in batch}
    assert "2.png" not in names and len(names) >= 4  # 50x80 is skipped, the others appear
    assert "skip" in caplog.text
    with pytest.raises(ValueError, match="smaller than the 200 crop"):
        next(iter(train_dataset(cfg(images, small="skip", crop=200), 2, seed=0)))
    with pytest.raises(ValueError, match="data.small"):
        train_dataset(cfg(images, small="crash"), 2, seed=0)


def test_clear_errors_for_missing_data(tmp_path):
    with pytest.raises(ValueError, match="image folder not found"):
        train_dataset(cfg(tmp_path / "nope"), 2, seed=0)
    with pytest.raises(ValueError, match="not prepared in array_record form.*tfds build clic"):
        train_dataset(cfg(source="tfds", name="clic", data_dir=str(tmp_path)), 2, seed=0)
    with pytest.raises(ValueError, match="not prepared"):
        train_dataset(cfg(source="tfds", name="local_images/none", data_dir=str(tmp_path)), 2, seed=0)
