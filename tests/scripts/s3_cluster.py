"""A multi-node ray.cluster_utils.Cluster for tests/test_s3_jobdir.py, in its own process
(token auth is fixed when Ray starts in a process): a head without CPUs and two one-CPU
workers, each worker with its own TMPDIR (argv: the parent of those dirs).

Prints one JSON line ``{"address", "worker_tmp"}``, then obeys stdin: ``remove <i>`` kills
worker i at once (answers ``removed``); ``quit`` or end of input shuts the cluster down.
The caller sets RAY_AUTH_MODE=token and RAY_AUTH_TOKEN in this process's environment."""

import json
import os
import sys
from pathlib import Path

from ray.cluster_utils import Cluster

tmp_root = Path(sys.argv[1])
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                        "object_store_memory": 100 * 1024 * 1024})
try:
    workers, dirs = [], []
    for i in range(2):
        d = tmp_root / f"w{i}"
        d.mkdir(parents=True, exist_ok=True)
        os.environ["TMPDIR"] = str(d)  # the raylet and its workers inherit it
        workers.append(cluster.add_node(num_cpus=1, object_store_memory=100 * 1024 * 1024))
        dirs.append(str(d))
    cluster.wait_for_nodes()
    print(json.dumps({"address": cluster.address, "worker_tmp": dirs}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[:1] == ["remove"]:
            cluster.remove_node(workers[int(cmd[1])], allow_graceful=False)
            print("removed", flush=True)
        elif cmd[:1] == ["quit"]:
            break
finally:
    cluster.shutdown()
