"""Registers the core tasks (entry point ``builtin_tasks``).

The trainings of built-in components (``train_vae``, ``train_emotion``) are registered by those
components' own plugins, beside the component they train.
"""

from memo_zoo.plugin import ComponentSpec, hookimpl


@hookimpl
def task_components() -> list[ComponentSpec]:
    # Imported here, not at the top: importing this plugin (all `memo-zoo --help` does) must not
    # import torch; the task modules do.
    from memo_zoo.tasks import experiment, generate, preprocess, smoke, train

    return [ComponentSpec("smoke", smoke.SmokeConfig, smoke.build,
                          "build every component the recipe names and log them to MLflow"),
            ComponentSpec("preprocess", preprocess.PreprocessConfig, preprocess.build,
                          "run the data pipeline (spec §7) over data.dataset into out_dir, resumably"),
            ComponentSpec("train", train.TrainTaskConfig, train.build,
                          "train the MEMO network (spec §5, L1-L7): rectified flow, phases, DDP, atomic "
                          "checkpoints, --resume"),
            ComponentSpec("generate", generate.GenerateConfig, generate.build,
                          "generate a talking video from a portrait and an audio track (spec §6) and log it "
                          "to MLflow"),
            ComponentSpec("experiment", experiment.ExperimentConfig, experiment.build,
                          "train, generate held-out videos and evaluate them; with a sweep, one variant each and "
                          "a comparison report (the ablations of spec §9)")]
