"""What a job directory on S3 costs: the quickstart pipeline (sample corpus, in-tool KenLM
model) with its job directory on the local disk and on an S3 server, same spec, same
executor, measured in the same run. Prints wall time of each, their ratio, the S3 requests
the S3 run made by method, and the bytes it left in the job directory; checks the output
parts are byte-identical.

The S3 server is moto's (``moto[server]``) on loopback unless ``--endpoint`` names another
(MinIO...; the bucket must exist and AWS_* credentials be set). A loopback moto server is a
Python process: it measures curate's request pattern, not S3's latency.

    .venv/bin/python bench/s3_jobdir.py                 # 0.3 MB sample, local executor
    .venv/bin/python bench/s3_jobdir.py --mb 2 --ray    # bigger, embedded Ray
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=0.3, help="sample corpus size (MB of text)")
    ap.add_argument("--ray", action="store_true", help="embedded Ray instead of the local executor")
    ap.add_argument("--endpoint", default=None, help="an existing S3 endpoint (default: start moto)")
    ap.add_argument("--bucket", default="curate-bench")
    args = ap.parse_args()

    requests: collections.Counter[str] = collections.Counter()
    server = None
    if args.endpoint is None:
        from moto.server import ThreadedMotoServer

        class Count(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                msg = record.getMessage()
                for m in ("GET", "HEAD", "PUT", "POST", "DELETE"):
                    if f'"{m} ' in msg or f"m{m} " in msg:
                        requests[m] += 1

        log = logging.getLogger("werkzeug")
        log.setLevel(logging.INFO)
        log.propagate = False
        log.addHandler(Count())
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
        server.start()
        host, port = server.get_host_and_port()
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                          AWS_ENDPOINT_URL=f"http://{host}:{port}")
        pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"], region="us-east-1",
                          allow_bucket_creation=True).create_dir(args.bucket)
    else:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint

    from curate import jobfs
    from curate.lm import iter_corpus, train_lm
    from curate.sample_data import write_sample_corpus
    from workers import run_pipeline

    with tempfile.TemporaryDirectory(prefix="curate-s3-bench-") as tmp:
        d = Path(tmp)
        write_sample_corpus(d / "sample", target_mb=args.mb, seed=3)
        train_lm(iter_corpus(str(d / "sample/prose/*.parquet")), 3, d / "prose.arpa", backend="numpy")
        t = pa.concat_tables([pq.read_table(f) for f in sorted((d / "sample").glob("*/*.parquet"))],
                             promote_options="permissive")
        (d / "in").mkdir()
        for i in range(4):
            pq.write_table(t.slice(i * t.num_rows // 4, t.num_rows // 4 + (i == 3) * (t.num_rows % 4)),
                           d / "in" / f"part-{i}.parquet")
        spec = yaml.safe_load((ROOT / "pipelines/quickstart.yaml").read_text())
        spec.pop("job_dir")
        spec["settings"].update(rows_per_shard=max(200, t.num_rows // 8))
        spec["inputs"]["sample"]["path"] = str(d / "in/*.parquet")
        next(n for n in spec["nodes"] if n["stage"] == "perplexity_score")["params"]["model"] = str(d / "prose.arpa")
        executor = "ray" if args.ray else "local"

        spec["outputs"]["curated"]["path"] = str(d / "out")
        t0 = time.perf_counter()
        run_pipeline(spec, executor=executor, job_dir=d / "job")
        local_s = time.perf_counter() - t0

        requests.clear()
        spec["outputs"]["curated"]["path"] = f"s3://{args.bucket}/out"
        job = f"s3://{args.bucket}/jobs/bench-{int(time.time())}"
        t0 = time.perf_counter()
        run_pipeline(spec, executor=executor, job_dir=job)
        s3_s = time.perf_counter() - t0

        root = jobfs.path(job)
        left = sum(i.size or 0 for i in root.fs.get_file_info(pafs.FileSelector(root.key, recursive=True))
                   if i.type == pafs.FileType.File)
        same = all((jobfs.path(f"s3://{args.bucket}/out") / f.name).read_bytes() == f.read_bytes()
                   for f in sorted((d / "out").glob("part-*.parquet")))
        print(json.dumps({"docs": t.num_rows, "executor": executor, "local_job_dir_s": round(local_s, 2),
                          "s3_job_dir_s": round(s3_s, 2), "ratio_s3_over_local": round(s3_s / local_s, 2),
                          "s3_requests": dict(requests) or "n/a (external endpoint)",
                          "job_dir_bytes_left": left, "outputs_byte_identical": same}, indent=1))
    if server is not None:
        server.stop()


if __name__ == "__main__":
    main()
