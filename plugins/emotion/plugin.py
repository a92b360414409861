"""Registers the built-in emotion detectors (spec E4, E5, §4 D1) and the task that trains their head
(``train_emotion``)."""

from memo_zoo.plugin import ComponentSpec, hookimpl


@hookimpl
def emotion_detector_components() -> list[ComponentSpec]:
    # Imported here, not at the top: importing this plugin (all `memo-zoo --help` does) must not
    # import torch; the component modules do.
    from memo_zoo_plugins.emotion import emotion2vec, fixed, prosody

    return [ComponentSpec("fixed", fixed.FixedEmotionConfig, fixed.build,
                          "one manual emotion label for every frame (spec E4 override)"),
            ComponentSpec("prosody_mlp", prosody.ProsodyMLPConfig, prosody.build,
                          "log-mel / pitch / energy statistics + 5-layer MLP head; CPU-trainable, needs a checkpoint"),
            ComponentSpec("emotion2vec_mlp", emotion2vec.Emotion2vecMLPConfig, emotion2vec.build,
                          "frozen emotion2vec (funasr, local folder) + 5-layer MLP head (spec D1)")]


@hookimpl
def task_components() -> list[ComponentSpec]:
    # The task that trains the detectors' MLP head lives beside them; the experiment task runs it
    # first through the registry (its train_detector: option).
    from memo_zoo_plugins.emotion import training_task

    return [ComponentSpec("train_emotion", training_task.TrainEmotionConfig, training_task.build,
                          "train the emotion detector head: CE + supervised contrastive, per-dataset 3:1 "
                          "speaker split (spec D1-D2, E5)")]
