"""`streamer review`: the review desk web app, and `streamer review add-user` for its reviewers file."""

from __future__ import annotations

from pathlib import Path

import click

from streamer.cli.options import broker_option, settings_from


@click.group(invoke_without_command=True)
@broker_option
@click.option("--host", "review_host", default=None, help="Address to listen on (default 127.0.0.1; another needs --users).")
@click.option("--port", "review_port", type=click.IntRange(1, 65535), default=None, help="Port (default 6070).")
@click.option("--users", "review_users_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Reviewers file (TOML of scrypt hashes; env STREAMER_REVIEW_USERS_PATH). Without one, reviewers "
                   "sign in by name and the desk serves loopback only.")
@click.option("--review-topic", default=None, help="Topic of flagged results (default trades.review).")
@click.option("--parsed-topic", default=None, help="Where accepted trades go (default trades.parsed).")
@click.option("--corrections-topic", default=None, help="Where every decision goes (default trades.corrections).")
@click.option("--group-id", "review_group_id", default=None, help="The desk's consumer group (default tradechat-review).")
@click.pass_context
def review(ctx: click.Context, **options) -> None:
    """Serve the review desk: people fix, accept or reject what the parser flagged."""
    if ctx.invoked_subcommand is not None:
        return
    import logging

    from streamer.review import DeskRefused, run_desk
    from streamer.streaming.kafka import BrokerUnavailable

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_from(**options)
    try:
        run_desk(settings, ready=lambda url: click.echo(f"review: the desk is at {url} (Ctrl-C stops it)", err=True))
    except (DeskRefused, BrokerUnavailable) as err:
        raise click.ClickException(str(err)) from None
    except OSError as err:
        raise click.ClickException(f"cannot listen on {settings.review_host}:{settings.review_port}: "
                                   f"{err.strerror or err}") from None


@review.command("add-user")
@click.argument("name")
@click.option("--users", "users_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The reviewers file to create or update.")
@click.password_option(help="The reviewer's password (prompted, twice, when not given).")
def add_user(name: str, users_path: Path, password: str) -> None:
    """Add a reviewer to the reviewers file, or change their password."""
    from streamer.review.auth import UsersFileError, add_user as add

    try:
        add(users_path, name, password)
    except UsersFileError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"review: {name} can sign in (reviewers file {users_path})", err=True)
