"""From unit tables to metrics with intervals, and from metrics to 0-100 scores."""

#: Bootstrap resamples behind every interval.
DEFAULT_RESAMPLES = 1000
#: Level of every interval.
CONFIDENCE = 0.95
