"""Predictions against the team's ground truth: a scorer per control, calibration, what a prompt version changed,
and the evaluation run as it is kept."""
