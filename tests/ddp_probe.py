"""Run under torchrun by tests/test_distributed.py: train, recording which clips this rank featurised."""

import json
import os
import sys

from soundtwin.config import load_config
from soundtwin.training import dataset, train

out, data, log = sys.argv[1], sys.argv[2], sys.argv[3]
seen: list[str] = []
original = dataset._load_subset


def recording(data_, clips, extractor, only, classes, progress, on_total):  # type: ignore[no-untyped-def]
    lf = original(data_, clips, extractor, only, classes, progress, on_total)
    seen.extend(lf.paths)
    return lf


dataset._load_subset = recording
cfg = load_config("default", overrides=sys.argv[4:])
res = train(data, out, cfg, cache_dir=False)
with open(f"{log}.{os.environ['RANK']}.json", "w") as fh:
    json.dump({"paths": seen, "losses": [h.loss for h in res.history]}, fh)
