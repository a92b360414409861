"""Audio-fusion-slot components (spec §3): MEMO's multi-modal attention (E1), cross-attention (E2), none."""
