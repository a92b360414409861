"""The content-hash keys of the repository's experiment recipes (train-<key>, stage1-<key>,
videos-<key> folders), pinned: a restructuring that changes one would orphan every finished
training and video set. The values were computed before the tasks moved to ``memo_zoo/tasks``
and their autoencoder / emotion-detector stages went behind the registry (issue 17)."""

from __future__ import annotations

import pytest

from memo_zoo.recipe.loader import load_recipe, validate_variants, variant_documents
from memo_zoo.tasks.experiment import generation_key, shared_stage1, stage1_key, training_key

# (recipe, profile, sweep variant) -> (training key, stage-1 key, generation key)
KEYS = {
    ('ablate_cfg.yaml', None, 'cfg_1'): ('7e4c7b28e2', '66bf68f545', '29103e0b41'),
    ('ablate_cfg.yaml', None, 'cfg_2'): ('7e4c7b28e2', '66bf68f545', '0cd276cf2a'),
    ('ablate_cfg.yaml', None, 'cfg_3.5'): ('7e4c7b28e2', '66bf68f545', 'ddb7e1b001'),
    ('ablate_cfg.yaml', None, 'cfg_6'): ('7e4c7b28e2', '66bf68f545', '3ab1b8d225'),
    ('ablate_cfg.yaml', None, 'split_ref2_av6'): ('7e4c7b28e2', '66bf68f545', '306f9cefee'),
    ('ablate_cfg.yaml', 'quick', 'cfg_1'): ('4a1ab2d2c5', 'b0064ef78a', 'b62d853df1'),
    ('ablate_cfg.yaml', 'quick', 'cfg_2'): ('4a1ab2d2c5', 'b0064ef78a', '732ae991e7'),
    ('ablate_cfg.yaml', 'quick', 'cfg_3.5'): ('4a1ab2d2c5', 'b0064ef78a', 'f85b18e9b2'),
    ('ablate_cfg.yaml', 'quick', 'cfg_6'): ('4a1ab2d2c5', 'b0064ef78a', 'a8e5ba7990'),
    ('ablate_cfg.yaml', 'quick', 'split_ref2_av6'): ('4a1ab2d2c5', 'b0064ef78a', '2cb4acc245'),
    ('ablate_memory.yaml', None, 'linear_memory'): ('7e4c7b28e2', '66bf68f545', 'ddb7e1b001'),
    ('ablate_memory.yaml', None, 'self_attention_n16'): ('2c93460133', '66bf68f545', 'c8cabb9cc8'),
    ('ablate_memory.yaml', None, 'self_attention_n2'): ('10d05c60c5', '66bf68f545', '2c5e851bac'),
    ('ablate_memory.yaml', None, 'self_attention_n4'): ('2ec6b805e7', '66bf68f545', 'b701e23aa6'),
    ('ablate_memory.yaml', 'quick', 'linear_memory'): ('4a1ab2d2c5', 'b0064ef78a', 'f85b18e9b2'),
    ('ablate_memory.yaml', 'quick', 'self_attention_n16'): ('91ee849eff', 'b0064ef78a', 'bff17d5024'),
    ('ablate_memory.yaml', 'quick', 'self_attention_n2'): ('1cb32e69a7', 'b0064ef78a', '0886f8de8f'),
    ('ablate_memory.yaml', 'quick', 'self_attention_n4'): ('2ff9d2679f', 'b0064ef78a', '578978cf13'),
    ('ablate_sampler.yaml', None, 'euler'): ('7e4c7b28e2', '66bf68f545', 'ddb7e1b001'),
    ('ablate_sampler.yaml', None, 'guidance_interval'): ('7e4c7b28e2', '66bf68f545', '1539817315'),
    ('ablate_sampler.yaml', None, 'heun_5'): ('7e4c7b28e2', '66bf68f545', 'c74ef6148d'),
    ('ablate_sampler.yaml', None, 'multistep_5'): ('7e4c7b28e2', '66bf68f545', '68101409d9'),
    ('ablate_sampler.yaml', None, 'step_cache'): ('7e4c7b28e2', '66bf68f545', '809348b7b3'),
    ('ablate_sampler.yaml', 'quick', 'euler'): ('4a1ab2d2c5', 'b0064ef78a', 'f85b18e9b2'),
    ('ablate_sampler.yaml', 'quick', 'guidance_interval'): ('4a1ab2d2c5', 'b0064ef78a', 'ed36dcca4e'),
    ('ablate_sampler.yaml', 'quick', 'heun_5'): ('4a1ab2d2c5', 'b0064ef78a', '7bd8636e1b'),
    ('ablate_sampler.yaml', 'quick', 'multistep_5'): ('4a1ab2d2c5', 'b0064ef78a', '670e084dcd'),
    ('ablate_sampler.yaml', 'quick', 'step_cache'): ('4a1ab2d2c5', 'b0064ef78a', 'ae59f8b535'),
    ('ablate_vae_colour.yaml', None, 'memo'): ('7e4c7b28e2', '66bf68f545', 'ddb7e1b001'),
    ('ablate_vae_colour.yaml', None, 'vae_colour'): ('2a5d7cd634', '83e7980cd5', '0f04aa4a53'),
    ('ablate_vae_colour.yaml', 'quick', 'memo'): ('4a1ab2d2c5', 'b0064ef78a', 'f85b18e9b2'),
    ('ablate_vae_colour.yaml', 'quick', 'vae_colour'): ('5de6eb3ae3', '60efb70cd6', 'bdfc3fa4b6'),
    ('emotion_override.yaml', None, 'memo'): ('7e4c7b28e2', '66bf68f545', '7281c801df'),
    ('emotion_override.yaml', None, 'prosody_mismatch'): ('fa89015b62', '00e0bc4f2d', '2ddfdc0a3a'),
    ('emotion_override.yaml', 'quick', 'memo'): ('4a1ab2d2c5', 'b0064ef78a', 'f85b18e9b2'),
    ('emotion_override.yaml', 'quick', 'prosody_mismatch'): ('97154589e9', '4782a855e9', '7f6e92651c'),
    ('emotion_override.yaml', None, 'expression_region'): ('fc26b7dbfd', '9091a2f33a', '90bc925ff1'),
    ('emotion_override.yaml', None, 'prosody_mismatch_expression_region'): ('9a5cba09d9', 'c3397f5b0b', '8846cc8d22'),
    ('emotion_override.yaml', None, 'emotion_guidance'): ('7e4c7b28e2', '66bf68f545', '4d5de40bfb'),
    ('emotion_override.yaml', 'quick', 'expression_region'): ('6c8f99fd00', '6b99c66ff5', '895df7b2ee'),
    ('emotion_override.yaml', 'quick', 'prosody_mismatch_expression_region'): ('e457e4c23a', 'b59bf70a17', '7d7eb69433'),
    ('emotion_override.yaml', 'quick', 'emotion_guidance'): ('4a1ab2d2c5', 'b0064ef78a', '1953b8374b'),
    ('emotion_override.yaml', None, 'label_only'): ('0ff11942ad', 'f84a81e379', 'e9a33adf55'),
    ('emotion_override.yaml', 'quick', 'label_only'): ('c5aef5e758', '5300894dbf', '383aad475e'),
    ('emotion_override.yaml', None, 'label_only_empty_memory'): ('0ff11942ad', 'f84a81e379', '896b880e19'),
    ('emotion_override.yaml', None, 'expression_region_empty_memory'): ('fc26b7dbfd', '9091a2f33a', 'e068898ff3'),
    ('emotion_override.yaml', 'quick', 'label_only_empty_memory'): ('c5aef5e758', '5300894dbf', 'b5179dabf5'),
    ('emotion_override.yaml', 'quick', 'expression_region_empty_memory'): ('6c8f99fd00', '6b99c66ff5', '654bde3183'),
    ('experiment_tiny.yaml', None, None): ('7e4c7b28e2', '66bf68f545', 'ddb7e1b001'),
    ('experiment_tiny.yaml', 'quick', None): ('4a1ab2d2c5', 'b0064ef78a', 'f85b18e9b2'),
    ('emotion_override.yaml', None, 'memory_decoupling'): ('a88827b79f', '66bf68f545', 'b79d4f6dd5'),
    ('emotion_override.yaml', None, 'expression_region_memory_decoupling'): ('d7a9a09a5a', '9091a2f33a', 'e8165faff8'),
    ('emotion_override.yaml', 'quick', 'memory_decoupling'): ('6da2521d67', 'b0064ef78a', 'f4a57807e5'),
    ('emotion_override.yaml', 'quick', 'expression_region_memory_decoupling'): ('3d0f312cd3', '6b99c66ff5', '6be331faad'),
    ('emotion_override.yaml', None, 'expression_region_memory_decoupling_guidance'): ('d7a9a09a5a', '9091a2f33a', 'db17b7568a'),
    ('emotion_override.yaml', None, 'expression_region_memory_decoupling_empty_memory'): ('d7a9a09a5a', '9091a2f33a', '8829c7686c'),
    ('emotion_override.yaml', 'quick', 'expression_region_memory_decoupling_guidance'): ('3d0f312cd3', '6b99c66ff5', '8cfa540287'),
    ('emotion_override.yaml', 'quick', 'expression_region_memory_decoupling_empty_memory'): ('3d0f312cd3', '6b99c66ff5', 'f653da1b94'),
    ('emotion_override.yaml', None, 'memory_decoupling_guidance'): ('a88827b79f', '66bf68f545', '33a3f1ea2e'),
    ('emotion_override.yaml', 'quick', 'memory_decoupling_guidance'): ('6da2521d67', 'b0064ef78a', '03a6f6254a'),
    # ablate_emotion on emotion_tiny.yaml: memo trains emotion_override's memory_decoupling,
    # no_memory_decoupling experiment_tiny's network.
    ('ablate_emotion.yaml', None, 'memo'): ('a88827b79f', '66bf68f545', '3bb3770116'),
    ('ablate_emotion.yaml', None, 'no_emo_adanorm'): ('aeed1b8a60', '66bf68f545', '809a3001ae'),
    ('ablate_emotion.yaml', None, 'no_decoupling'): ('1560148bf6', 'aefec3cf95', '5661719de5'),
    ('ablate_emotion.yaml', None, 'no_memory_decoupling'): ('7e4c7b28e2', '66bf68f545', '5cec8f64e4'),
    ('ablate_emotion.yaml', None, 'expression_guidance'): ('a88827b79f', '66bf68f545', '8ba08589f9'),
    ('ablate_emotion.yaml', None, 'expression_guidance_4'): ('a88827b79f', '66bf68f545', '7f90435c4f'),
    ('ablate_emotion.yaml', None, 'expression_guidance_ref'): ('a88827b79f', '66bf68f545', 'b10a0a6e2d'),
    ('ablate_emotion.yaml', None, 'expression_guidance_ref_4'): ('a88827b79f', '66bf68f545', 'f12ea606fb'),
    ('ablate_emotion.yaml', None, 'expression_guidance_ref_8'): ('a88827b79f', '66bf68f545', 'ffcd219b97'),
    ('ablate_emotion.yaml', None, 'expression_guidance_ref60_4'): ('a88827b79f', '66bf68f545', '726ba9f54e'),
    ('ablate_emotion.yaml', None, 'expression_guidance_ref60_8'): ('a88827b79f', '66bf68f545', '65731bb41f'),
    ('ablate_emotion.yaml', None, 'expression_guidance_ref60_4_no_mouth'): ('a88827b79f', '66bf68f545', 'a0fcb573c6'),
    ('ablate_emotion.yaml', None, 'expression_guidance_ref60_4_no_lower_face'): ('a88827b79f', '66bf68f545', 'c86007118b'),
    ('ablate_emotion.yaml', None, 'fixed_label'): ('a88827b79f', '66bf68f545', 'e887646093'),
    ('ablate_emotion.yaml', None, 'detected_label'): ('a88827b79f', '66bf68f545', 'f0abbf721c'),
    ('ablate_emotion.yaml', 'quick', 'memo'): ('6da2521d67', 'b0064ef78a', 'f4a57807e5'),
    ('ablate_emotion.yaml', 'quick', 'no_emo_adanorm'): ('28dd8d3500', 'b0064ef78a', 'ceb7379d83'),
    ('ablate_emotion.yaml', 'quick', 'no_decoupling'): ('7d4833fd4d', 'c05082906b', 'eabf200c68'),
    ('ablate_emotion.yaml', 'quick', 'no_memory_decoupling'): ('4a1ab2d2c5', 'b0064ef78a', 'f85b18e9b2'),
    ('ablate_emotion.yaml', 'quick', 'expression_guidance'): ('6da2521d67', 'b0064ef78a', 'be03c0af7b'),
    ('ablate_emotion.yaml', 'quick', 'expression_guidance_4'): ('6da2521d67', 'b0064ef78a', '97cb044fcd'),
    ('ablate_emotion.yaml', 'quick', 'expression_guidance_ref'): ('6da2521d67', 'b0064ef78a', '272e5fd65d'),
    ('ablate_emotion.yaml', 'quick', 'expression_guidance_ref_4'): ('6da2521d67', 'b0064ef78a', 'f373294edc'),
    ('ablate_emotion.yaml', 'quick', 'expression_guidance_ref_8'): ('6da2521d67', 'b0064ef78a', 'd88fdef7ad'),
    ('ablate_emotion.yaml', 'quick', 'expression_guidance_ref60_4'): ('6da2521d67', 'b0064ef78a', '2035ab1895'),
    ('ablate_emotion.yaml', 'quick', 'expression_guidance_ref60_8'): ('6da2521d67', 'b0064ef78a', '78c4ee11cd'),
    ('ablate_emotion.yaml', 'quick', 'expression_guidance_ref60_4_no_mouth'): ('6da2521d67', 'b0064ef78a', '90058576d1'),
    ('ablate_emotion.yaml', 'quick', 'expression_guidance_ref60_4_no_lower_face'): ('6da2521d67', 'b0064ef78a', '35be566c90'),
    ('ablate_emotion.yaml', 'quick', 'fixed_label'): ('6da2521d67', 'b0064ef78a', 'c76f29eec6'),
    ('ablate_emotion.yaml', 'quick', 'detected_label'): ('6da2521d67', 'b0064ef78a', 'c7946e4002'),
}


@pytest.fixture(scope="module")
def keys(registry, repo_root):
    found = {}
    for recipe in sorted({r for r, _, _ in KEYS}):
        for profile in (None, "quick"):
            loaded = load_recipe(repo_root / "recipes" / recipe, registry, profile=profile)
            resolved = validate_variants(variant_documents(loaded.document, loaded.source), registry, loaded.source)
            for name, r in [(v.name, checked) for v, checked in resolved] or [(None, loaded.recipe)]:
                train = training_key(r, r.task)
                split = shared_stage1(r.task)
                found[(recipe, profile, name)] = (train, None if split is None else stage1_key(r, r.task, split[0]),
                                                  generation_key(r, r.task, train))
    return found


def test_every_variant_and_profile_keeps_its_keys(keys):
    assert set(keys) == set(KEYS)
    changed = {k: (keys[k], KEYS[k]) for k in KEYS if keys[k] != KEYS[k]}
    assert not changed, changed


def test_scoring_every_held_out_clip_reuses_ablate_emotions_networks(registry, repo_root):
    """recipes/ablate_emotion_all_held_out.yaml changes only which clips are generated and scored:
    every variant trains nothing that ablate_emotion.yaml has trained (same training and stage-1
    keys), and its videos are new ones."""
    def variant_keys(recipe: str) -> dict:
        loaded = load_recipe(repo_root / "recipes" / recipe, registry)
        resolved = validate_variants(variant_documents(loaded.document, loaded.source), registry, loaded.source)
        out = {}
        for variant, r in resolved:
            train = training_key(r, r.task)
            stage1 = stage1_key(r, r.task, shared_stage1(r.task)[0])
            out[variant.name] = (train, stage1, generation_key(r, r.task, train), r.task.override is None)
        return out

    everyone, two = variant_keys("ablate_emotion_all_held_out.yaml"), variant_keys("ablate_emotion.yaml")
    assert set(everyone) == set(two)
    for name in two:
        assert everyone[name][:2] == two[name][:2], name
        assert everyone[name][2] != two[name][2], name
        assert everyone[name][3], name  # the override study is ablate_emotion's alone
