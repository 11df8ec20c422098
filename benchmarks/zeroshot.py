"""Built-in models with no training, on every protocol: EER etc. on each trial list, beside the untrained
MFCC reference, and embedding speed (decode + features apart from the network).

    python benchmarks/zeroshot.py            # writes benchmarks/zeroshot_results.json; run.py --render shows it
    python benchmarks/zeroshot.py sound      # only these built-ins (the others' rows are kept)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import PUBLIC, own_protocols, protocol_dir  # noqa: E402

from soundtwin.data import read_trials  # noqa: E402
from soundtwin.evaluate import evaluate  # noqa: E402
from soundtwin.io import atomic_write_text  # noqa: E402
from soundtwin.pretrained import BUILTINS, load_builtin  # noqa: E402


def main() -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    base = {}
    f = HERE / "baseline_results.json"
    if f.is_file():
        base = {r["protocol"]: r["eer"] for r in json.loads(f.read_text())}
    names = sys.argv[1:] or list(BUILTINS)
    out = HERE / "zeroshot_results.json"
    rows = [r for r in json.loads(out.read_text()) if r["model"] not in names] if out.is_file() else []
    for name in names:
        for protocol in PUBLIC + own_protocols():
            v = load_builtin(name, cache_dir=False)
            trials = read_trials(protocol_dir(protocol) / "trials.txt")
            uniq = sorted(set(trials.a) | set(trials.b))
            t0 = time.perf_counter()
            feats = v.features_of(uniq)  # decode, resample, features
            t1 = time.perf_counter()
            v.embed_features(feats)  # the network alone
            t2 = time.perf_counter()
            m = evaluate(v, trials).metrics
            seconds = [f.shape[-1] / v.cfg.features.frames_per_second for f in feats]
            rows.append({"model": name, "protocol": protocol, "eer": round(m.eer, 4), "roc_auc": round(m.roc_auc, 4),
                         "min_dcf": round(m.min_dcf, 4), "accuracy": round(m.accuracy, 4),
                         "mfcc_reference_eer": base.get(protocol), "clips": len(uniq),
                         "median_clip_s": round(sorted(seconds)[len(seconds) // 2], 2),
                         "features_clips_per_s": round(len(uniq) / (t1 - t0), 1),
                         "network_clips_per_s": round(len(uniq) / (t2 - t1), 1),
                         "clips_per_s": round(len(uniq) / (t2 - t0), 1)})
            print(json.dumps(rows[-1]))
    atomic_write_text(out, json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
