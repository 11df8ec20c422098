"""Past one machine: bulk embedding to Parquet shards (this process or Ray actors), enrolling shards, and
indexes built from shards (IVF, IVF-PQ)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from soundtwin.bulk import iter_shards, read_inputs, shard_fingerprint, shard_table, write_shard
from soundtwin.cli import app
from soundtwin.gallery import Gallery
from soundtwin.index import IVFPQIndex
from soundtwin.shardindex import ShardIndex, build

from .conftest import snapshot

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def rows(folder):
    paths, labels, vecs = [], [], []
    for p, lab, v in iter_shards(folder):
        paths += p
        labels += lab
        vecs.append(v)
    return paths, labels, np.concatenate(vecs)


@pytest.fixture(scope="module")
def corpus(synth_data, tmp_path_factory):
    """The synthetic test clips as a CSV manifest, with one unreadable file among them."""
    root = tmp_path_factory.mktemp("corpus")
    bad = root / "broken.wav"
    bad.write_bytes(b"RIFF not audio")
    clips = sorted((synth_data / "test").rglob("*.wav"))
    csv = root / "corpus.csv"
    csv.write_text("path,label\n" + "".join(f"{c},{c.parent.name}\n" for c in clips) + f"{bad},hum\n")
    return csv, clips, bad


def test_ray_actors_write_exactly_the_vectors_of_one_process(trained, corpus, tmp_path):
    csv, clips, bad = corpus
    r1 = run("embed", trained[0], csv, "--out", tmp_path / "one", "--chunk", "5")
    r2 = run("embed", trained[0], csv, "--out", tmp_path / "ray", "--chunk", "5", "--engine", "ray", "--workers", 2)
    for r in (r1, r2):
        assert r.exit_code == 0, r.output
        assert f"wrote {len(clips)} embeddings in 5 shard(s)" in r.stdout and "broken.wav" in r.stderr
    p1, l1, v1 = rows(tmp_path / "one")
    p2, l2, v2 = rows(tmp_path / "ray")
    assert p1 == p2 == [str(c) for c in clips] and l1 == l2 == [c.parent.name for c in clips]
    assert np.array_equal(v1, v2)
    from soundtwin.runtime import load_verifier

    v = load_verifier(trained[0])
    # what the in-memory path gives, up to how clips are batched (padding to a batch's longest clip)
    assert np.min(np.sum(v1 * v.embed(clips), axis=1)) > 0.999
    assert shard_fingerprint(tmp_path / "ray") == v.fingerprint


def test_shards_go_only_into_a_new_folder_and_inputs_may_be_parquet(trained, corpus, tmp_path):
    csv, clips, _ = corpus
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    before = snapshot(out)
    r = run("embed", trained[0], csv, "--out", out)
    assert r.exit_code == 2 and "not an empty folder" in r.output and snapshot(out) == before
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "sub").mkdir()
    for c in clips[:3]:
        shutil.copyfile(c, tmp_path / "sub" / f"{c.parent.name}-{c.name}")
    names = sorted(p.name for p in (tmp_path / "sub").iterdir())
    pq.write_table(pa.table({"path": [f"sub/{n}" for n in names], "label": ["a", "b", "c"]}), tmp_path / "m.parquet")
    paths, labels = read_inputs(tmp_path / "m.parquet")  # relative paths: against the manifest's folder
    assert paths == [str(tmp_path / "sub" / n) for n in names] and labels == ["a", "b", "c"]
    r = run("embed", trained[0], tmp_path / "m.parquet", "--out", tmp_path / "fromparquet")
    assert r.exit_code == 0, r.output
    assert rows(tmp_path / "fromparquet")[:2] == (paths, labels)

def test_enroll_from_shards_adds_their_classes_and_refuses_another_models(trained, corpus, tmp_path):
    csv, clips, _ = corpus
    assert run("embed", trained[0], csv, "--out", tmp_path / "s", "--chunk", "7").exit_code == 0
    r = run("enroll", tmp_path / "g", "--model", trained[0], "--embeddings", tmp_path / "s")
    assert r.exit_code == 0, r.output
    g = Gallery.load(tmp_path / "g")
    assert g.classes == {c: 6 for c in ("hiss", "hum", "knock", "whistle")}
    assert g.identify([clips[0]])[0].label == clips[0].parent.name
    t = shard_table(["x.wav"], ["hum"], np.ones((1, g.verifier.cfg.model.embedding_dim), np.float32))
    (tmp_path / "other").mkdir()
    write_shard(tmp_path / "other" / "part-00000.parquet", t, fingerprint="another-model")
    before = snapshot(tmp_path / "g")
    r = run("enroll", tmp_path / "g", "--embeddings", tmp_path / "other")
    assert r.exit_code == 2 and "another model" in r.output and snapshot(tmp_path / "g") == before


@pytest.fixture(scope="module")
def big_shards(tmp_path_factory):
    """6,000 unit vectors (64-d) of 300 classes in 3 shards, as soundtwin embed writes them."""
    d = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((300, 64)).astype(np.float32)
    for k in range(3):
        lab = rng.integers(300, size=2000)
        x = centres[lab] + 0.3 * rng.standard_normal((2000, 64)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        write_shard(d / f"part-{k:05d}.parquet", shard_table([f"clip{k}-{i}.wav" for i in range(2000)],
                                                             [f"c{c}" for c in lab], x), fingerprint="fp")
    return d


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_an_index_built_from_shards_finds_each_stored_vector(big_shards, tmp_path, kind):
    info = build(big_shards, tmp_path / "ix", kind=kind, m=16)
    assert info["n"] == 6000 and info["fingerprint"] == "fp" and json.loads((tmp_path / "ix" / "index.json").read_text())
    ix = ShardIndex(tmp_path / "ix")
    paths, labels, vecs = rows(big_shards)
    sample = np.random.default_rng(1).choice(6000, 200, replace=False)
    hits = ix.search(vecs[sample], 5)
    top1 = np.mean([h[0]["path"] == paths[i] for h, i in zip(hits, sample)])
    assert top1 >= (0.99 if kind == "ivf" else 0.8), top1
    assert all(h[0]["label"] == labels[i] for h, i in zip(hits, sample) if h[0]["path"] == paths[i])
    # IVF-PQ keeps 16 bytes a vector instead of 256: the memory it reports shows it
    raw = 6000 * 64 * 4
    assert info["memory_bytes"] < raw / 3 if kind == "ivfpq" else info["memory_bytes"] >= raw
    r = run("index", "build", big_shards, "--out", tmp_path / "ix")
    assert r.exit_code == 2 and "exists" in r.output


def test_ivfpq_builds_from_chunks_without_the_whole_matrix():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ix = IVFPQIndex.build((x[i:i + 1000] for i in range(0, 4000, 1000)), sample=x[:2000], nlist=16, m=8, nprobe=16)
    assert len(ix) == 4000 and ix.memory_bytes() < x.nbytes / 2
    _, ids = ix.search(x[:100], 10)
    assert np.mean([i in row for i, row in enumerate(ids)]) >= 0.8


def test_too_few_vectors_for_ivfpq_is_a_clear_error_and_writes_nothing(tmp_path):
    from soundtwin.errors import SoundtwinError

    (tmp_path / "s").mkdir()
    x = np.eye(8, 64, dtype=np.float32)
    write_shard(tmp_path / "s" / "part-00000.parquet", shard_table([f"{i}.wav" for i in range(8)], ["a"] * 8, x),
                fingerprint="fp")
    with pytest.raises(SoundtwinError, match="use --kind ivf"):
        build(tmp_path / "s", tmp_path / "ix", kind="ivfpq", m=16)
    assert not (tmp_path / "ix").exists() and build(tmp_path / "s", tmp_path / "ix")["n"] == 8
