"""The ``cronwarden`` command: the daemon, config tools, and API client verbs."""

from __future__ import annotations

import json
import sys

import click

from cronwarden import __version__
from cronwarden.errors import ConfigError, DataDirLocked

EXIT_INVALID = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cronwarden")
def main() -> None:
    """cronwarden: cron-style jobs with retries, timeouts, capped logs and durable history."""


@main.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The TOML config file.",
)
def serve(config_path: str) -> None:
    """Run the daemon (SIGTERM stops it gracefully, SIGHUP reloads the config)."""
    from cronwarden.daemon import serve as run_daemon

    try:
        run_daemon(config_path)
    except ConfigError as exc:
        click.echo(f"cronwarden: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    except DataDirLocked as exc:
        click.echo(f"cronwarden: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"cronwarden: cannot start: {exc}", err=True)
        sys.exit(1)


@main.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The TOML config file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
def validate(config_path: str, as_json: bool) -> None:
    """Check a config file; exit 2 listing every error."""
    from cronwarden.config import load_config

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        if as_json:
            click.echo(
                json.dumps({"valid": False, "path": exc.path, "errors": exc.problems}, indent=2)
            )
        else:
            click.echo(str(exc), err=True)
        sys.exit(EXIT_INVALID)
    if as_json:
        click.echo(
            json.dumps(
                {"valid": True, "path": str(config.path), "tasks": sorted(config.tasks)}, indent=2
            )
        )
    else:
        click.echo(f"{config.path}: OK ({len(config.tasks)} tasks)")
