"""Registers the built-in emotion detectors (spec E4, E5, §4 D1) and the task that trains their head
(``train_emotion``)."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.lazy import lazy


@hookimpl
def emotion_detector_components() -> list[ComponentSpec]:
    # Torch-free configs, imported here so that importing this plugin (all `memo-zoo --help` does)
    # builds no pydantic model; the factories are lazy references, so registering (all `ls`,
    # `validate` and `schema` need) imports no component module (issue 17.8).
    from memo_zoo_plugins.emotion import configs

    return [ComponentSpec("fixed", configs.FixedEmotionConfig, lazy("memo_zoo_plugins.emotion.fixed:build"),
                          "one manual emotion label for every frame (spec E4 override)"),
            ComponentSpec("prosody_mlp", configs.ProsodyMLPConfig, lazy("memo_zoo_plugins.emotion.prosody:build"),
                          "log-mel / pitch / energy statistics + 5-layer MLP head; CPU-trainable, needs a checkpoint"),
            ComponentSpec("emotion2vec_mlp", configs.Emotion2vecMLPConfig,
                          lazy("memo_zoo_plugins.emotion.emotion2vec:build"),
                          "frozen emotion2vec (funasr, local folder) + 5-layer MLP head (spec D1)"),
            ComponentSpec("emotion2vec_released", configs.ReleasedEmotionConfig,
                          lazy("memo_zoo_plugins.emotion.released_classifier:build"),
                          "emotion2vec_plus_large (funasr, local folder) + the released MEMO classifier (9 classes) "
                          "on 3 s windows stepped by 1 s (§10)")]


@hookimpl
def task_components() -> list[ComponentSpec]:
    # The task that trains the detectors' MLP head lives beside them; the experiment task runs it
    # first through the registry (its train_detector: option). Its config is torch-free and its
    # factory a lazy reference, as above.
    from memo_zoo_plugins.emotion import configs

    return [ComponentSpec("train_emotion", configs.TrainEmotionConfig,
                          lazy("memo_zoo_plugins.emotion.training_task:build"),
                          "train the emotion detector head: CE + supervised contrastive, per-dataset 3:1 "
                          "speaker split (spec D1-D2, E5)")]
