"""One training run in a process of its own, for step 4 of ``gpu_check.py``, which kills it with SIGKILL
once it has written a checkpoint (a power cut, not a clean stop).

    python benchmarks/gpu_train_child.py SPEC.json     # {"data": DIR, "out": DIR, "config": {TrainConfig fields}}

Deterministic algorithms are on (as in the parent's runs), so the resumed run can match the uninterrupted
one bit for bit.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(spec_file: str) -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    import torch

    import tamis

    torch.use_deterministic_algorithms(True, warn_only=True)
    tamis.train_bi_encoder(spec["data"], spec["out"], tamis.TrainConfig(**spec["config"]))


if __name__ == "__main__":
    main(sys.argv[1])
