"""Temporal-slot components (spec §2): MEMO's linear memory (T1-T6), the self-attention baseline (T7), none."""
