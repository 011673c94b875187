"""Run a job on a 3-node ray.cluster_utils.Cluster and kill a worker node mid-job."""

import json
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from workers import read_output, run_pipeline

spec_path, job_dir, out_json = sys.argv[1:4]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                        "object_store_memory": 100 * 1024 * 1024})
workers = [cluster.add_node(num_cpus=1, object_store_memory=100 * 1024 * 1024) for _ in range(2)]
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False)

killed = {}


def killer():
    done = Path(job_dir) / "_done"
    while True:
        n = sum(1 for _ in done.rglob("*.json")) if done.exists() else 0
        if n >= 3:
            cluster.remove_node(workers[0], allow_graceful=False)
            killed["after"] = n
            return
        time.sleep(0.05)


t = threading.Thread(target=killer, daemon=True)
t.start()
res = run_pipeline(spec_path, executor="ray", job_dir=job_dir)
t.join(timeout=5)
spec = json.loads(Path(spec_path).read_text())
out = read_output(spec["outputs"]["kept"]["path"])
json.dump({"killed_after": killed.get("after"), "ledger": res.ledger, "ids": out.column("id").to_pylist(),
           "texts": out.column("text").to_pylist(), "files": sorted(p.name for p in Path(spec["outputs"]["kept"]["path"]).iterdir())},
          open(out_json, "w"))
