"""Training data: the synthetic chat generator (`synth`) and dataset hygiene (`manage`).

The `data` CLI group lives in `commands.py`; import it from there so this
package stays free of click.
"""
