"""Human ratings: a study of images to rate (``study``), the SQLite store behind ``leaf rate``,
and the way from raw votes to MOS with rater screening (``screening``, ``simulate``)."""
