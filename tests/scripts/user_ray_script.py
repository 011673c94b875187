"""An ad hoc user script: connect to an existing cluster and use curate stages on it."""

import json
import sys

import ray

import curate

address, in_glob, spec_path, out_json = sys.argv[1:5]
ray.init(address=address, log_to_driver=False)
ds = curate.read_corpus(in_glob)
n_in = ds.count()
ds = curate.stages.LengthFilter(min_words=5).apply(ds)
ds = curate.stages.ExactDedup().apply(ds)
ids = sorted(r["id"] for r in ds.select_columns(["id"]).take_all())
res = curate.run(spec_path, ray_address=address)
json.dump({"n_in": n_in, "ids": ids, "ledger": res.ledger}, open(out_json, "w"))
# A user script does not own the cluster; curate never shut it down either.
assert ray.is_initialized()
