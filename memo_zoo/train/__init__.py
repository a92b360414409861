"""MEMO training (spec §5, L1-L7): config, rectified-flow loss, one step, checkpoints, the loop.

- ``config``:     ``TrainConfig``, the options of ``task: {kind: train}``.
- ``loss``:       rectified-flow velocity loss and logit-normal timesteps (L1).
- ``step``:       one batch -> per-sample losses: VAE, encoders, condition dropout (L6), memory
                  from motion frames (T5), phases (L2, L3).
- ``checkpoint``: atomic checkpoints that resume to the same loss curve.
- ``loop``:       the accelerate loop (CPU, GPU, DDP, mixed precision, accumulation), robust
                  filtering (L5), MLflow metrics and progress.

``memo-zoo train --num-processes N`` (one process per rank) is the CLI's: ``memo_zoo.cli.launch``.
"""
