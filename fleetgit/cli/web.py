"""`fleetgit serve` (the HTTP API and dashboard) and `fleetgit token` (its bearer tokens).

fastapi, starlette and uvicorn are imported inside `serve` only; the token commands need
fleetgit.web.auth, which imports none of them."""

from typing import Annotated, Any

import typer

from fleetgit.cli.common import (
    JsonOpt,
    add_group,
    boundary,
    globals_of,
    int_option,
    json_text,
    note,
    open_fleet,
    print_json,
    print_page,
    report,
    table,
)
from fleetgit.domain.pilots import commands as pilots
from fleetgit.git.paths import locate
from fleetgit.ledger.errors import FleetError, ValidationError
from fleetgit.web import auth


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    add_group(
        app,
        "token",
        "Bearer tokens of the HTTP API, each bound to one pilot.\n\n"
        "Example: fleetgit --as viper-1 token create",
        [("create", token_create), ("list", token_list), ("revoke", token_revoke)],
    )


@boundary
def serve(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Loopback by default; any other needs a token to read.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, int_option("--port", high=65535, help="0: any free port.")] = 7070,
    max_body: Annotated[
        int,
        int_option("--max-body", low=1024, high=64 << 20, help="Largest request body in bytes."),
    ] = 1 << 20,
    workers: Annotated[
        int,
        int_option(
            "--workers",
            low=0,
            high=16,
            help="Server processes sharing the port. 0, the default: one per core, at most 4.",
        ),
    ] = 0,
    cors: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            metavar="ORIGIN",
            help="Allow browser pages of ORIGIN to call the API (repeat). None by default.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve the HTTP API (/api/v1) and the live dashboard (/) of this repository's fleet.

    Every write needs a token bound to a pilot (fleetgit token create --as CALLSIGN); reads
    need one too when --host is not loopback. Prints the address, then serves until Ctrl-C
    (or SIGTERM); a server process that ends meanwhile is started again.

    With --json, the first line is {"url", "worktree", "loopback"}.

    Example: fleetgit serve --port 7070
    """
    from fleetgit.web.app import serve as run
    from fleetgit.web.common import Settings, is_loopback

    paths = locate(globals_of(ctx).directory).require_initialized()
    settings = Settings(paths, host=host, max_body=max_body, cors=tuple(cors or ()))

    def announce(url: str) -> None:
        if as_json:  # one line: {"url": ..., "worktree": ..., "loopback": ...}
            body = {"url": url, "worktree": str(paths.worktree), "loopback": is_loopback(host)}
            typer.echo(json_text(body))
            return
        typer.echo(f"fleetgit: serving {paths.worktree} on {url}")
        if not is_loopback(host):
            typer.echo("fleetgit: beyond loopback: reads need a token too (fleetgit token create)")
        typer.echo("fleetgit: Ctrl-C stops it")

    def complain(exc: FleetError) -> None:
        report(exc.code, exc.message, exc.hint, as_json)

    def restarted(message: str) -> None:
        note("serve_process", message, None, as_json)

    run(settings, port, announce=announce, note=restarted, complain=complain, workers=workers)


@boundary
def token_create(
    ctx: typer.Context,
    read_only: Annotated[
        bool,
        typer.Option(
            "--read-only", help="A token that reads only (the dashboard beyond loopback)."
        ),
    ] = False,
    admin: Annotated[
        bool,
        typer.Option(
            "--admin",
            help="A token of no pilot that registers new pilots over HTTP (POST /api/v1/pilots),"
            " each receiving its own token; it reads too, and writes nothing else.",
        ),
    ] = False,
    name: Annotated[str | None, typer.Option("--name", help="A note of what it is for.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token acting as the pilot of --as (registered); it is shown once.

    Example: fleetgit --as viper-1 token create --name "ci bot"
    """
    if admin and read_only:
        raise ValidationError(
            "--admin and --read-only are two kinds of token: choose one",
            hint="fleetgit token create --admin (registers pilots), or --read-only (a viewer)",
        )
    if admin:
        secret, record = auth.create(
            locate(globals_of(ctx).directory).require_initialized(), None, scope="admin", name=name
        )
        _shown(secret, record, as_json)
        return
    with open_fleet(ctx) as fleet:
        pilot = fleet.actor
        if pilot or not read_only:
            pilot = fleet.me()
            try:
                pilots.check_known(fleet, [pilot])
            except ValidationError:
                if not globals_of(ctx).register:
                    raise
                pilots.register(fleet, pilot)  # --register: it joins (or rejoins) now
        secret, record = auth.create(
            fleet.paths, pilot, scope="read" if read_only else "write", name=name
        )
    _shown(secret, record, as_json)


def _shown(secret: str, record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json({"token": secret, **record})
        return
    typer.echo(secret)
    typer.echo(
        f"fleetgit: token {record['id']} ({record['scope']}, {record['pilot'] or 'no pilot'}):"
        f" shown once; send it as 'Authorization: Bearer TOKEN'; fleetgit token revoke"
        f" {record['id']} ends it",
        err=True,
    )


@boundary
def token_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the tokens (never their secrets), revoked ones included.

    Example: fleetgit token list
    """
    rows = auth.listing(locate(globals_of(ctx).directory).require_initialized())
    human = (
        table(
            [
                (
                    t["id"],
                    t["pilot"] or "-",
                    t["scope"],
                    t["created_at"],
                    t["revoked_at"] or "-",
                    t["name"] or "",
                )
                for t in rows
            ],
            ["ID", "PILOT", "SCOPE", "CREATED", "REVOKED", "NAME"],
        )
        if rows
        else "no tokens"
    )
    print_page("tokens", rows, 0, as_json, human)


@boundary
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token: the server refuses it from its next request on.

    Example: fleetgit token revoke tok-4q2x9k3m
    """
    out = auth.revoke(locate(globals_of(ctx).directory).require_initialized(), token_id)
    print_json(out) if as_json else typer.echo(f"revoked {out['id']} ({out['pilot'] or '-'})")
