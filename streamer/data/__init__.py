"""Training data: the synthetic chat generator (`synth`) and dataset hygiene (`manage`); the `data`
verbs are in `streamer/cli/data.py`."""
