"""The labelling loop: which images people rate next (``designs``, ``select``), the study they
rate them in (``study``, ``service`` and its pages), and the way from raw votes to MOS labels
with rater screening (``screening``, ``reliability``, ``simulate``) merged round by round
(``rounds``)."""
