"""Evaluation in the core: the metric protocol (``protocol``), the runner that measures a set of
videos with every metric (``runner``), and the comparison report (``report``). The metrics
themselves are components (memo_zoo_eval, evaluation/) that implement the protocol."""
