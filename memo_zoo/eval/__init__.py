"""Evaluation in the core: the data a metric is given and returns (``protocol``; the protocol
itself is the ``metric`` slot's, ``memo_zoo.slots.metric``), the Frechet statistics shared by
FID, FVD, E-FID and the world metrics (``frechet``), the runner that measures a set of videos with
every metric (``runner``), and the comparison report (``report``). The metrics themselves are
components (memo_zoo_eval in evaluation/, and talking_world's world metrics)."""
