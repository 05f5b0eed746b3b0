"""``rewardlab`` with a pause point, for tests that kill a run at a known step.

Run as ``python tests/component/pause_at_step.py train RECIPE.yaml key=value ...``. When the Trainer
finishes optimizer step ``$REWARDLAB_PAUSE_STEP`` (before that step's checkpoint, if any, is written),
the process writes ``$REWARDLAB_PAUSE_FILE`` and sleeps until it is killed. Nothing else changes:
same command line, same training code, same numbers.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from transformers import TrainerCallback

import rewardlab.train.single as run
from rewardlab.cli.main import main


class PauseAt(TrainerCallback):
    def __init__(self, step: int, marker: Path) -> None:
        self.step, self.marker = step, marker

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            self.marker.write_text(str(state.global_step))
            time.sleep(600)


class PausingTrainer(run.RewardTrainer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_callback(
            PauseAt(int(os.environ["REWARDLAB_PAUSE_STEP"]), Path(os.environ["REWARDLAB_PAUSE_FILE"]))
        )


if __name__ == "__main__":
    run.RewardTrainer = PausingTrainer
    sys.exit(main(sys.argv[1:]))
