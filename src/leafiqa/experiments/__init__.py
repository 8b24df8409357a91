"""Experiments on top of the pipeline: the workspace a run shares between methods
(``workspace``), the methods compared (``methods``, ``labels_only``), ``leaf run``
(``pipeline``), the label-budget study ``leaf bench`` (``bench``) and simulated rating rounds
(``simulated_labels``)."""
