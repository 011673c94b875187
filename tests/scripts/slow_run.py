"""A run that takes a while: a spec whose node `slow` sleeps per batch (a toy stage
registered here), through workers.run_pipeline. Usage: slow_run.py SPEC.json JOB_DIR"""

import sys
import time

from curate import registry
from curate.stage import MapResult, MapStage, StageParams
from workers import run_pipeline


class SlowParams(StageParams):
    seconds: float = 0.2


class Slow(MapStage):
    """Pass rows through, slowly."""

    name = "toy_slow"
    Params = SlowParams

    def process(self, batch):
        time.sleep(self.params.seconds)
        return MapResult(batch, None)


registry.register_stage(Slow)
run_pipeline(sys.argv[1], job_dir=sys.argv[2])
