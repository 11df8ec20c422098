import numpy as np
import pytest

from soundtwin.data import class_from_folder, discover, sample_pairs, stratified_split, trial_pairs
from soundtwin.errors import DatasetError

from .conftest import tone


def test_tutorial_layout_merges_sub_dogs(tmp_path, wav):
    import soundfile as sf
    for folder, n in (("Dogs", 2), ("Sub_dogs", 3), ("Cats", 2)):
        (tmp_path / folder).mkdir()
        for k in range(n):
            sf.write(tmp_path / folder / f"{k}.wav", tone(), 16000)
    clips = discover(tmp_path)
    labels = sorted({c.label for c in clips})
    assert labels == ["cats", "dogs"]
    assert sum(c.label == "dogs" for c in clips) == 5
    assert class_from_folder("SUB-Birds") == "birds"


def test_csv_paths_resolve_against_csv_folder(tmp_path):
    sub = tmp_path / "lists"
    sub.mkdir()
    (sub / "m.csv").write_text("path,label\n../a.wav,x\n/abs/b.wav,y\n")
    clips = discover(sub / "m.csv")
    assert clips[0].path == sub / "../a.wav" and clips[1].path.as_posix() == "/abs/b.wav"


@pytest.mark.parametrize("text,msg", [("file,label\na,b\n", "needs 'path' and 'label'"), ("path,label\n", "lists no clips"),
                                      ("path,label\n,x\n", ":2: empty path or label")])
def test_bad_manifests(tmp_path, text, msg):
    p = tmp_path / "m.csv"
    p.write_text(text)
    with pytest.raises(DatasetError, match=msg):
        discover(p)


def test_missing_dataset(tmp_path):
    with pytest.raises(DatasetError, match="no such folder or manifest"):
        discover(tmp_path / "none")
    with pytest.raises(DatasetError, match="no class sub-folders"):
        discover(tmp_path)


def test_pairs_are_balanced_and_correct():
    labels = np.repeat(np.arange(3), [5, 7, 2])
    i, j, y = sample_pairs(labels, 200, np.random.default_rng(0))
    assert y.mean() == pytest.approx(0.5)
    assert np.all((labels[i] == labels[j]) == (y == 1)) and np.all(i != j)
    i2, j2, y2 = sample_pairs(labels, 200, np.random.default_rng(0))
    assert np.array_equal(i, i2) and np.array_equal(j, j2)  # seeded


def test_split_holds_out_every_class():
    labels = np.repeat(np.arange(4), 20)
    tr, ho = stratified_split(labels, 0.2, 0)
    assert len(np.intersect1d(tr, ho)) == 0 and len(tr) + len(ho) == 80
    assert np.all(np.bincount(labels[ho]) == 4)


def test_trial_pairs_balanced():
    labels = np.repeat(np.arange(5), 10)
    i, j, y = trial_pairs(labels, 100, np.random.default_rng(0))
    assert len(y) == 100 and y.sum() == 50 and np.all((labels[i] == labels[j]) == (y == 1))
