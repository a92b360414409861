"""The authors' released MEMO checkpoint (``memoavatar/memo``) as a second network family (issue 18).

- ``folder``: finding a release (a local folder, a name under MEMO_ZOO_WEIGHTS_DIR, or a hub id in
  the local Hugging Face cache), its parts table, each part's ``config.json`` and weights, and a
  strict loader that leaves nothing at its initial value.
- ``unet_config``: the two UNets' ``config.json``; every field the released classes accept is
  honoured or refused by name.
- ``spatial``, ``resnet3d``: the spatial transformer (reference attention, Q10) and the video
  resnet (inflated GroupNorm, Q9) both nets share.
- ``reference_unet``: the Reference Net, returning the per-layer features the release records (Q13).
- ``unet3d``: the 3D Diffusion Net; its motion and audio modules are built by the temporal and
  audio-fusion slot factories (the built-in ``motion_module`` and ``joint_audio`` kinds reproduce
  the release; any other kind can be swapped in).
- ``networks``: both nets built from a release folder and loaded strictly.
- ``small_parts``: the image-token projector built from its part.

Docstrings cite the golden data's quirk numbers (Q1-Q17, tests/data/golden/memo_released/README.md)
where the release does something the paper does not say.
"""
