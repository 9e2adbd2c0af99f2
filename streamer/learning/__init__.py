"""The continuous-learning loop: corrections collected, adapters trained, gated, registered and swapped in."""
