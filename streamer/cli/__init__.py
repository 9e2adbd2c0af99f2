"""`streamer`: the command line. One module per group of verbs; this file wires them.

Only this package imports click: the verbs parse flags into `Settings`, call
the library (`streaming`, `history`, `parsing`, `evaluation`, `finetune`,
`data`) and turn its errors into one-line messages and exit codes. Heavy
imports (llama_cpp, faust, confluent_kafka, torch, matplotlib) happen inside
the commands, so `streamer --help` stays instant. What the verbs share (model
options, settings, parser loading) is in `options.py`.
"""

from __future__ import annotations

import click

from streamer.cli.bench import bench
from streamer.cli.data import data
from streamer.cli.evaluation import eval_command
from streamer.cli.finetune import finetune
from streamer.cli.history import diff, replay, reprocess
from streamer.cli.learn import learn
from streamer.cli.options import model_options
from streamer.cli.parse import parse
from streamer.cli.review import review
from streamer.cli.streaming import register as register_streaming


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tradechat-streamer")
def main() -> None:
    """Parse trader chat and RFQs into structured trades, on the command line or from Kafka."""


main.add_command(parse)
main.add_command(model_options(bench))
register_streaming(main)
for _command in (eval_command, replay, reprocess, diff, data, finetune, review, learn):
    main.add_command(_command)
