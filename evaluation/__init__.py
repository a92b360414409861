"""Evaluation: metric plugins, the evaluation runner and its report (memo_zoo_eval)."""
