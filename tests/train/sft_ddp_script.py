"""Run :func:`ilpnb.train.sft.run_sft` under ``torchrun`` (used by ``test_sft_distributed.py``).

    torchrun --nproc_per_node N sft_ddp_script.py OUT MODEL DATA BATCH_SIZE_PER_PROCESS
"""

from __future__ import annotations

import sys

import torch


def main() -> None:
    torch.set_num_threads(1)
    from ilpnb.train.sft import run_sft

    out, model, data, batch = sys.argv[1:5]
    run_sft(out, model=model, data=data, preset="smoke", progress=False, checkpoints="none",
            sft={"ordered": True, "batch_size": int(batch), "epochs": 2})


if __name__ == "__main__":
    main()
