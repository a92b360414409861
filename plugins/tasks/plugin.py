"""Registers the built-in tasks."""

from memo_zoo.plugin import ComponentSpec, hookimpl


@hookimpl
def task_components() -> list[ComponentSpec]:
    # Imported here, not at the top: importing this plugin (all `memo-zoo --help` does) must not
    # import torch; the component modules do.
    from memo_zoo_plugins.tasks import experiment, generate, preprocess, smoke, train, train_emotion, train_vae

    return [ComponentSpec("smoke", smoke.SmokeConfig, smoke.build,
                          "build every component the recipe names and log them to MLflow"),
            ComponentSpec("preprocess", preprocess.PreprocessConfig, preprocess.build,
                          "run the data pipeline (spec §7) over data.dataset into out_dir, resumably"),
            ComponentSpec("train_emotion", train_emotion.TrainEmotionConfig, train_emotion.build,
                          "train the emotion detector head: CE + supervised contrastive, per-dataset 3:1 "
                          "speaker split (spec D1-D2, E5)"),
            ComponentSpec("train_vae", train_vae.TrainVAEConfig, train_vae.build,
                          "train the recipe's sd_vae (a small AutoencoderKL) on data.dataset's frames (spec A1)"),
            ComponentSpec("train", train.TrainTaskConfig, train.build,
                          "train the MEMO network (spec §5, L1-L7): rectified flow, phases, DDP, atomic "
                          "checkpoints, --resume"),
            ComponentSpec("generate", generate.GenerateConfig, generate.build,
                          "generate a talking video from a portrait and an audio track (spec §6) and log it "
                          "to MLflow"),
            ComponentSpec("experiment", experiment.ExperimentConfig, experiment.build,
                          "train, generate held-out videos and evaluate them; with a sweep, one variant each and "
                          "a comparison report (the ablations of spec §9)")]
