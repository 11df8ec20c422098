"""Never lose a user's data: which directories soundtwin writes into, atomic swaps, locks, bad files."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from soundtwin import store
from soundtwin.cli import app
from soundtwin.errors import DatasetError, GalleryError, ModelError
from soundtwin.gallery import Gallery
from soundtwin.store import StoreBusyError, StoreError, check_writable, locked, new_version, version_dir
from soundtwin.runtime.torch_runtime import Verifier

from .conftest import TINY, snapshot, tone

runner = CliRunner()


def clips_of(root: Path, name: str, n: int = 3) -> list[Path]:
    return sorted((root / name).glob("*.wav"))[:n]


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


# -- 1. existing directories are never deleted ------------------------------------------------------
def test_enroll_into_a_folder_of_the_users_files_is_refused_and_nothing_is_touched(trained, synth_data, tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    clip = d / "bark.wav"
    clip.write_bytes(clips_of(synth_data / "train", "hum", 1)[0].read_bytes())
    (d / "notes.txt").write_text("my notes")
    before = snapshot(d)
    r = cli("enroll", d, "--model", trained[0], "--label", "dog", clip)
    assert r.exit_code == 2 and "not empty and not a soundtwin gallery" in r.stderr and "notes.txt" in r.stderr
    assert snapshot(d) == before


def test_train_refuses_a_dataset_folder_or_a_folder_of_models_as_out(trained, synth_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth_data / "train", data)
    before = snapshot(data)
    r = cli("train", data, "--out", data, "--quiet", "--no-cache", *sum([["--set", o] for o in TINY], []))
    assert r.exit_code == 2 and "not empty and not a soundtwin model" in r.stderr
    assert snapshot(data) == before
    models = tmp_path / "models"
    for name in ("a", "b"):
        shutil.copytree(trained[0], models / name, symlinks=True)
    before = snapshot(models)
    r = cli("train", data, "--out", models, "--quiet", "--no-cache")
    assert r.exit_code == 2 and "not empty" in r.stderr and snapshot(models) == before


def test_retraining_needs_overwrite_and_keeps_the_users_other_files(trained, synth_data, tmp_path):
    import shutil

    from soundtwin.config import load_config
    from soundtwin.training import train

    d = tmp_path / "m"
    shutil.copytree(trained[0], d, symlinks=True)
    (d / "notes.txt").write_text("keep me")
    cfg = load_config("default", overrides=TINY + ["train.epochs=1"])
    with pytest.raises(ModelError, match="holds a complete model; pass --overwrite"):
        train(synth_data / "train", d, cfg, cache_dir=False)
    old_fp = Verifier.load(d).fingerprint
    res = train(synth_data / "train", d, cfg, cache_dir=False, overwrite=True)
    assert (d / "notes.txt").read_text() == "keep me"
    assert Verifier.load(d).fingerprint == res.verifier.fingerprint != old_fp
    assert json.loads((d / "meta.json").read_text())["epoch"] == 1  # the top-level name reads the new version


def test_a_model_in_the_old_flat_layout_is_read_and_converted_on_its_next_write(trained, tmp_path):
    import shutil

    d = tmp_path / "flat"
    shutil.copytree(trained[0], d)  # follows links: every file lands directly in d, as soundtwin 0.1 wrote
    (d / "notes.txt").write_text("mine")
    v = Verifier.load(d)
    v.threshold = 0.123
    v.save(d, carry=True)
    assert (d / "current").is_symlink() and Verifier.load(d).threshold == pytest.approx(0.123)
    assert (d / "meta.json").is_symlink() and (d / "notes.txt").read_text() == "mine"


# -- 5. the swap is atomic: a kill at any step leaves the old or the new version, and leftovers go -----
@pytest.mark.parametrize("step", ["built", "renamed", "swapped", "linked", "retired"])
def test_a_kill_at_any_step_of_a_write_leaves_an_openable_gallery(gallery, synth_data, monkeypatch, tmp_path, step):
    import shutil

    g_dir = tmp_path / "g"
    shutil.copytree(gallery.path, g_dir, symlinks=True)
    before = Gallery.load(g_dir).classes

    def die(name):
        if name == step:
            raise KeyboardInterrupt  # stands for SIGKILL: nothing after this point runs

    g = Gallery.load(g_dir)
    emb = g.verifier.embed(clips_of(synth_data / "test", "hiss", 2))
    monkeypatch.setattr(store, "fault_hook", die)
    with pytest.raises(KeyboardInterrupt):
        with g.transaction():
            g.add_embeddings("hiss", emb, ["a", "b"])
    monkeypatch.setattr(store, "fault_hook", None)
    after = Gallery.load(g_dir).classes  # opens, and is one whole version
    assert after in (before, {**before, "hiss": 2})
    assert after == (before if step in ("built", "renamed") else {**before, "hiss": 2})
    g2 = Gallery.load(g_dir)
    g2.enroll("knock2", clips_of(synth_data / "test", "knock", 2))  # the next write cleans up
    names = [e.name for e in g_dir.iterdir()]
    assert not [n for n in names if n.startswith(".build-") or n.startswith(".current-")]
    assert len([n for n in names if n.startswith("v-")]) <= 1 + store.KEEP_OLD


def test_readers_never_see_no_gallery_or_a_mix_while_a_writer_rewrites_it(gallery, synth_data, tmp_path):
    import shutil

    g_dir = tmp_path / "g"
    shutil.copytree(gallery.path, g_dir, symlinks=True)
    g = Gallery.load(g_dir)
    emb = g.verifier.embed(clips_of(synth_data / "test", "hiss", 1))
    errors, reads = [], [0]
    stop = threading.Event()

    def read():
        while not stop.is_set():
            try:
                meta, e = store.read_version(g_dir, lambda vd: Gallery.read_files(g_dir, vd))
                assert len(e) == len(meta["labels"])
                reads[0] += 1
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

    t = threading.Thread(target=read)
    t.start()
    try:
        for k in range(25):
            with g.transaction():
                g.add_embeddings(f"c{k}", emb, ["x"])
    finally:
        stop.set()
        t.join()
    assert errors == [] and reads[0] > 25


def test_a_swap_the_old_code_left_half_done_is_put_back(gallery, tmp_path):
    import shutil

    parent = tmp_path / "p"
    parent.mkdir()
    shutil.copytree(gallery.path, parent / ".gal.old-1234abcd", symlinks=True)  # 'gal' itself is gone
    g = Gallery.load(parent / "gal")
    assert g.classes == Gallery.load(gallery.path).classes


# -- 4. concurrent writers: nothing lost ------------------------------------------------------------
def test_two_processes_enrolling_into_one_gallery_lose_nothing(trained, synth_data, tmp_path):
    gal = tmp_path / "gal"
    clip = clips_of(synth_data / "test", "hum", 1)[0]
    r = cli("enroll", gal, "--model", trained[0], "--label", "seed", clip)
    assert r.exit_code == 0, r.output
    code = ("import sys\nfrom soundtwin.cli import app\n"
            "for k in range(4):\n"
            "    try:\n"
            "        app(['enroll', sys.argv[1], '--label', f'{sys.argv[2]}{k}', sys.argv[3]])\n"
            "    except SystemExit as e:\n"
            "        assert e.code in (0, None), e.code\n")
    env = {**os.environ, "SOUNDTWIN_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(gal), name, str(clip)], env=env,
                              stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    assert set(Gallery.load(gal).classes) == {"seed"} | {f"{n}{k}" for n in "ab" for k in range(4)}


def test_a_second_writer_waits_or_fails_naming_the_holder(tmp_path):
    d = tmp_path / "m"
    code = ("import sys, time\nfrom soundtwin.store import locked\n"
            "with locked(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(30)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(d)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(StoreBusyError, match=f"in use by pid {p.pid}"):
            with locked(d, timeout=0.3):
                pass
    finally:
        p.kill()  # the lock dies with its holder
        p.wait()
    with locked(d, timeout=5):
        pass


def test_two_trainings_into_one_out_the_second_fails_at_once(synth_data, tmp_path):
    d = tmp_path / "m"
    code = ("import sys, time\nfrom soundtwin.store import locked\n"
            "with locked(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(30)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(d)], stdout=subprocess.PIPE, text=True)
    try:  # as a training in progress holds it
        assert p.stdout.readline().strip() == "locked"
        r = cli("train", synth_data / "train", "--out", d, "--quiet", "--no-cache")
        assert r.exit_code == 2 and f"in use by pid {p.pid}" in r.stderr
    finally:
        p.kill()
        p.wait()


def test_store_refuses_a_file_and_another_kind(trained, tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        check_writable(f, "model")
    with pytest.raises(StoreError, match="holds a soundtwin model, not a gallery"):
        check_writable(trained[0], "gallery")
    with pytest.raises(StoreError, match="lacks"):
        with new_version(tmp_path / "new", "gallery") as tmp:
            (tmp / "gallery.json").write_text("{}")
    assert version_dir(tmp_path / "new") == tmp_path / "new"  # nothing became current


# -- 8. non-finite and absurd input ----------------------------------------------------------------
def test_a_float_wav_with_peak_1e30_gives_finite_scores_and_enrolls(trained, tmp_path):
    y = tone(440, seconds=0.6) * np.float32(2e30)
    hot = tmp_path / "hot.wav"
    sf.write(hot, y, 16000, subtype="FLOAT")
    ok = tmp_path / "ok.wav"
    sf.write(ok, tone(440, seconds=0.6), 16000)
    r = cli("compare", trained[0], hot, ok, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert np.isfinite(out["score"]) and out["score"] > 0.9  # the same tone, louder
    gal = tmp_path / "gal"
    assert cli("enroll", gal, "--model", trained[0], "--label", "t", hot).exit_code == 0
    assert cli("enroll", gal, "--label", "u", ok).exit_code == 0
    assert np.all(np.isfinite(np.load(version_dir(gal) / "embeddings.npy")))


def test_a_gallery_refuses_non_finite_embeddings(gallery):
    g = Gallery.load(gallery.path)
    with pytest.raises(GalleryError, match="non-finite embedding for bad.wav"):
        g.add_embeddings("x", np.full((1, g.embeddings.shape[1]), np.nan, np.float32), ["bad.wav"])


# -- 9. one-line errors instead of tracebacks -------------------------------------------------------
def test_bad_manifests_give_one_line_errors(synth_data, tmp_path):
    from soundtwin.data import read_manifest

    clip = clips_of(synth_data / "train", "hum", 1)[0]
    latin = tmp_path / "latin.csv"
    latin.write_bytes(f"path,label\n{clip},caf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        read_manifest(latin)
    bom = tmp_path / "bom.csv"
    bom.write_text(f"path,label\n{clip},hum\n", encoding="utf-8-sig")
    assert [c.label for c in read_manifest(bom)] == ["hum"]
    comma = tmp_path / "comma.csv"
    comma.write_text(f"path,label\n{clip},smith, john\n")
    with pytest.raises(DatasetError, match=r"comma.csv:2: 3 fields for 2 columns"):
        read_manifest(comma)
    dup = tmp_path / "dup.csv"
    dup.write_text(f"path,label\n{clip},hum\n{clip},hum\n")
    assert len(read_manifest(dup)) == 1  # a repeated row is one clip, not one in training and calibration
    two = tmp_path / "two.csv"
    two.write_text(f"path,label\n{clip},hum\n{clip},hiss\n")
    with pytest.raises(DatasetError, match="labelled 'hiss' here and 'hum' on line 2"):
        read_manifest(two)


@pytest.mark.parametrize("config,meta_change,msg", [
    ("[1,2,3]", None, "corrupt config.json"),
    ("null", None, "corrupt config.json"),
    (None, {"threshold": "high"}, "threshold is 'high'"),
    (None, {"threshold": [1]}, "threshold is [1]"),
    (None, {"fingerprint": None}, "no model fingerprint"),
])
def test_corrupt_model_files_give_one_line_errors(trained, tmp_path, config, meta_change, msg):
    import shutil

    from soundtwin.runtime.modeldir import seal_meta

    d = tmp_path / "m"
    shutil.copytree(trained[0], d)
    if config is not None:
        (d / "config.json").write_text(config)
    if meta_change is not None:
        meta = json.loads((d / "meta.json").read_text())
        meta.update(meta_change)
        (d / "meta.json").write_text(json.dumps(seal_meta(meta)))
    r = cli("compare", d, "a.wav", "b.wav")
    assert r.exit_code == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_an_edited_meta_json_is_refused(trained, tmp_path):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(trained[0], d)
    meta = json.loads((d / "meta.json").read_text())
    meta["threshold"] = -5.0  # every pair would become "same"
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="meta.json was edited"):
        Verifier.load(d)


def test_corrupt_galleries_give_one_line_errors(gallery, tmp_path):
    import shutil

    d = tmp_path / "g"
    shutil.copytree(gallery.path, d)
    emb = np.load(d / "embeddings.npy")
    np.save(d / "embeddings.npy", np.zeros((len(emb), emb.shape[1] + 3), np.float32))
    clip = tmp_path / "c.wav"
    sf.write(clip, tone(), 16000)
    r = cli("identify", d, clip)
    assert r.exit_code == 2 and "embeddings of dimension" in r.stderr
    np.save(d / "embeddings.npy", emb)
    meta = json.loads((d / "gallery.json").read_text())
    del meta["model_fingerprint"]
    (d / "gallery.json").write_text(json.dumps(meta))
    r = cli("gallery", d, "list")
    assert r.exit_code == 2 and "no model fingerprint" in r.stderr


def test_devices_and_fifos_are_refused_without_reading_them(trained, tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    ok = tmp_path / "ok.wav"
    sf.write(ok, tone(), 16000)
    for bad in (Path("/dev/zero"), fifo):
        r = cli("compare", trained[0], bad, ok)
        assert r.exit_code == 2 and f"{bad}: not a regular file" in r.stderr


def test_an_undecodable_file_is_named_with_the_formats_read(trained, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not audio at all" * 10)
    r = cli("compare", trained[0], bad, bad)
    assert r.exit_code == 2 and f"{bad}: cannot decode audio" in r.stderr and "FLAC" in r.stderr
    assert "BytesIO" not in r.stderr


def test_train_into_the_current_directory_works(synth_data, tmp_path, monkeypatch):
    d = tmp_path / "here"
    d.mkdir()
    monkeypatch.chdir(d)
    r = cli("train", synth_data / "train", "--out", ".", "--quiet", "--no-cache", "--set", "train.epochs=1",
            *sum([["--set", o] for o in TINY if not o.startswith("train.epochs")], []))
    assert r.exit_code == 0, r.output
    assert Verifier.load(d).meta["epoch"] == 1


def test_long_clips_are_embedded_in_bounded_windows(trained, monkeypatch):
    import soundtwin.runtime.base as smod

    v = Verifier.load(trained[0], cache_dir=False)
    seen = []
    enc = v.encoder
    real = enc.forward
    monkeypatch.setattr(enc, "forward", lambda x, lengths: (seen.append(x.shape[-1]), real(x, lengths))[1])
    monkeypatch.setattr(smod, "MAX_EMBED_FRAMES", 200)
    y = np.concatenate([tone(300, seconds=3.0), tone(900, seconds=3.0)])
    e = v.embed([(y, 16000)])
    assert max(seen) == 200 and len(seen) >= 5 and np.all(np.isfinite(e))
    assert np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)


# -- 10. silent surprises ---------------------------------------------------------------------------
def test_resume_on_a_different_dataset_is_refused(synth_data, tmp_path):
    import shutil

    from soundtwin.config import load_config
    from soundtwin.training import train

    cfg = load_config("default", overrides=TINY + ["train.epochs=1"])
    d = tmp_path / "m"
    train(synth_data / "train", d, cfg, cache_dir=False)
    other = tmp_path / "other"
    shutil.copytree(synth_data / "train", other)
    for p in sorted((other / "hum").glob("*.wav"))[:4]:
        p.unlink()
    with pytest.raises(DatasetError, match="not the dataset"):
        train(other, d, load_config("default", overrides=TINY + ["train.epochs=2"]), resume=True, cache_dir=False)
