"""An ad hoc user script: connect to an existing cluster and use curate stages on it."""

import json
import sys

import ray

import workers
from curate.stages import ExactDedup, LengthFilter

address, in_glob, spec_path, out_json = sys.argv[1:5]
ray.init(address=address, log_to_driver=False)
ds = workers.read_corpus(in_glob)
n_in = ds.count()
ds = workers.apply(LengthFilter(min_words=5), ds)
ds = workers.apply(ExactDedup(), ds)
ids = sorted(r["id"] for r in ds.select_columns(["id"]).take_all())
res = workers.run_pipeline(spec_path, executor="ray", ray_address=address)
json.dump({"n_in": n_in, "ids": ids, "ledger": res.ledger}, open(out_json, "w"))
# A user script does not own the cluster; curate never shut it down either.
assert ray.is_initialized()
