"""Registers the core tasks (entry point ``builtin_tasks``).

The trainings of built-in components (``train_vae``, ``train_emotion``) are registered by those
components' own plugins, beside the component they train.
"""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.lazy import lazy


@hookimpl
def task_components() -> list[ComponentSpec]:
    # Torch-free configs, imported here so that importing this plugin (all `memo-zoo --help` does)
    # builds no pydantic model; the factories are lazy references, so registering (all `ls`,
    # `validate` and `schema` need) imports no task module (issue 17.8).
    from memo_zoo.tasks import configs

    return [ComponentSpec("smoke", configs.SmokeConfig, lazy("memo_zoo.tasks.smoke:build"),
                          "build every component the recipe names and log them to MLflow"),
            ComponentSpec("preprocess", configs.PreprocessConfig, lazy("memo_zoo.tasks.preprocess:build"),
                          "run the data pipeline (spec §7) over data.dataset into out_dir, resumably"),
            ComponentSpec("train", configs.TrainTaskConfig, lazy("memo_zoo.tasks.train:build"),
                          "train the MEMO network (spec §5, L1-L7): rectified flow, phases, DDP, atomic "
                          "checkpoints, --resume"),
            ComponentSpec("generate", configs.GenerateConfig, lazy("memo_zoo.tasks.generate:build"),
                          "generate a talking video from a portrait and an audio track (spec §6) and log it "
                          "to MLflow"),
            ComponentSpec("experiment", configs.ExperimentConfig, lazy("memo_zoo.tasks.experiment:build"),
                          "train, generate held-out videos and evaluate them; with a sweep, one variant each and "
                          "a comparison report (the ablations of spec §9)")]
