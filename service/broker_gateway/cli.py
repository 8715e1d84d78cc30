"""The ``broker-gateway`` command: serve, sandbox, check-config, migrate, copy-store, rewrap, generate-key,
new-caller-key."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import logging
import resource
import sys
from pathlib import Path

import httpx

from . import __version__, audit, logs
from .app import build_application, check_keys, http_client, instantiate_providers, utc_now
from .callers import key_sha256, new_key
from .config import LOG_FORMATS, Config, address_problem, load_config, read_config
from .errors import ConfigError, GatewayError, StoreUnavailable
from .plugins import PluginError, plugin_manager, provider_types
from .provider import Provider
from .sandbox import DEFAULT_CALLBACK, DEFAULT_DATA_DIR
from .server import check_exposure, start_server, termination_signal
from .store import open_store
from .store.copy import CopyReport, HistoriesDiffer, copy_connections, copy_events, keyring_problems
from .store.crypto import Keyring, generate_key
from .vault import RewrapReport, Vault
from .workers import READY, ParentLink, ServeFailed, Supervisor, one_line, reserve_port

log = logging.getLogger(__name__)


def raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard one. Every client connection holds a file: under
    the usual soft limit of 1 024, a thousand idle connections would lock every new client out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        log.debug("open-file limit: %d", soft)
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as error:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, error)
        return
    log.info("open-file limit raised from %d to %d", soft, hard)


def freeze_startup_heap() -> None:
    """Move everything start-up made (modules, descriptors, providers, the server) out of the garbage
    collector's sight: it never frees any of it, and scanning it again on each collection costs a
    serving gateway about 4 % of its GetAccessToken throughput (benchmarks/README.md)."""
    gc.collect()
    gc.freeze()


async def _serve(config: Config, listen: str | None, link: ParentLink | None = None) -> None:
    """One gateway process: alone, or one worker of ``serve --workers`` (``link`` to its parent)."""
    check_exposure(listen or config.server.listen, config)
    if link is None:  # a port in use fails here, before the store's files are made (a worker's parent holds it)
        reserve_port(listen or config.server.listen)[0].close()
    if config.audit_file:
        audit.write_to_file(config.audit_file)
    application = await build_application(config)
    running = await start_server(application, listen, share_port=link is not None)
    if link is not None:
        link.report(READY)
    freeze_startup_heap()
    try:
        await _until_stopped(link)
    finally:
        await running.stop()


async def _until_stopped(link: ParentLink | None) -> None:
    """Until SIGTERM or SIGINT, or, in a worker, until its parent is gone."""
    waits = [asyncio.ensure_future(termination_signal())]
    if link is not None:
        waits.append(asyncio.ensure_future(link.parent_gone()))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()


def _serve_command(args: argparse.Namespace) -> int:
    """``serve``: one process, a worker (``--worker-fd``), or the parent of ``--workers`` (N > 1)."""
    config = load_config(args.config)
    log_format = args.log_format or config.logging.format
    if args.log_format is None and log_format != "text":
        logs.configure(args.log_level, log_format, worker=args.worker_fd is not None)
    if args.worker_fd is not None:
        return _run_worker(config, args.listen, ParentLink(args.worker_fd))
    workers = args.workers or config.server.workers
    if workers > 1 and config.metrics.listen is not None:
        # Each process has its own instruments, and one port cannot be scraped per process.
        raise ConfigError(["metrics.listen: one process's endpoint; with several workers export by OTLP (OTEL_METRICS_EXPORTER=otlp)"])
    if workers == 1:
        try:
            asyncio.run(_serve(config, args.listen))
        except OSError as error:  # the port, the store's file: one line, not a traceback
            raise ServeFailed(one_line(error)) from None
        return 0
    address = args.listen or config.server.listen
    check_exposure(address, config)
    holder, address = reserve_port(address)
    command = [sys.executable, "-m", "broker_gateway.cli", "--log-level", args.log_level, "--log-format", log_format,
               "serve", "--config", args.config]
    # A worker's graceful stop: the calls' grace, then the running refreshes' budget (server.py, app.py).
    stop_timeout = config.server.shutdown_grace_seconds + config.gateway.upstream_budget + 5.0
    try:
        asyncio.run(Supervisor([*command, "--listen", address], workers, stop_timeout=stop_timeout).run())
    finally:
        holder.close()
    return 0


def _run_worker(config: Config, listen: str | None, link: ParentLink) -> int:
    """Serve as one worker. A failure to start goes to the parent as one line (the parent prints the
    first worker's, once); a crash after serving exits with its traceback, and the parent restarts it."""
    try:
        asyncio.run(_serve(config, listen, link))
    except Exception as error:
        if link.reported:
            raise
        if not isinstance(error, (ConfigError, PluginError, GatewayError, OSError)):
            log.exception("the worker could not start")
        link.report(one_line(error))
        return 1
    return 0


async def _check_config(config_path: str, *, probe: bool = False) -> tuple[list[str], list[str]]:
    """Every problem of the configuration, including each provider's settings; with ``probe``, also
    what reaching each provider found (and its failures among the problems)."""
    config, problems = read_config(config_path)
    if config is None:
        return problems, []
    if not problems:
        try:
            check_exposure(config.server.listen, config)
        except ConfigError as error:
            problems += error.problems
    found: list[str] = []
    http = http_client()
    try:
        providers = instantiate_providers(config, provider_types(plugin_manager()), http, utc_now)
        if probe and not problems:
            # A provider's start logs what serving would do about a failure; here its problem line says it.
            logging.getLogger("broker_gateway.providers").setLevel(logging.ERROR)
            for item in providers:
                found += await _probe(item.provider, http, problems)
    except ConfigError as error:
        problems += error.problems
    finally:
        await http.aclose()
    if config.store_url is not None:
        from .store.postgres import check_store

        problems += await check_store(config.store_url)
    return problems, found


async def _probe(provider: Provider, http: httpx.AsyncClient, problems: list[str]) -> list[str]:
    """Start one provider (its discovery) and reach each of its endpoints: any HTTP answer means
    reachable (nothing is authenticated, so 4xx is expected); what was found, one line each."""
    where = f"providers[{provider.context.provider_id}]"
    try:
        await provider.start()
    except ConfigError as error:
        problems.extend(f"{where}.{problem}" for problem in error.problems)
        return []
    except GatewayError as error:  # a provider of another type whose start reached its upstream
        problems.append(f"{where}: {error.message}")
        return []
    if provider.start_problem is not None:
        problems.append(f"{where}: {provider.start_problem}")
        return []
    found = [f"{where}: started ({provider.type}, issuer {provider.issuer or 'none'})"]
    for name, url in provider.probe_endpoints().items():
        try:
            response = await http.request("GET", url, timeout=PROBE_TIMEOUT)
        except httpx.HTTPError as error:
            problems.append(f"{where}.{name}: cannot reach {url} ({type(error).__name__})")
            continue
        found.append(f"{where}.{name}: {url} answers (HTTP {response.status_code})")
    return found


#: How long --probe waits for each endpoint.
PROBE_TIMEOUT = 10.0


#: What ``broker-gateway[sandbox]`` installs, by import name: the simulators' web framework, the server
#: they run on and the form parser of their consent pages (Starlette imports it only if it is there).
SANDBOX_EXTRA = ("starlette", "uvicorn", "python_multipart")


class MissingExtra(Exception):
    """A command needs an extra that is not installed; the message says what to install."""


def _sandbox_command(args: argparse.Namespace) -> None:
    """``sandbox``: the only command that imports the runner (and through it the simulators, Starlette
    and uvicorn), so that ``serve`` loads none of them and runs without the ``sandbox`` extra."""
    missing = [name for name in SANDBOX_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(f"the sandbox needs {', '.join(missing)}: pip install 'broker-gateway[sandbox]'")
    from .sandbox.runner import run_sandbox, run_simulators

    def announce(text: str) -> None:
        print(text, flush=True)

    if args.simulators_only:
        if not args.write_config:
            raise ConfigError(["sandbox --simulators-only needs --write-config FILE"])
        asyncio.run(run_simulators(args.listen, Path(args.data_dir), args.callback_listen, Path(args.write_config), announce))
    else:
        asyncio.run(run_sandbox(args.listen, Path(args.data_dir), args.callback_listen, announce, secure=args.secure))


async def _rewrap(config_path: str) -> RewrapReport:
    config = load_config(config_path)
    store = await open_store(config)
    try:
        await check_keys(store, config.encryption_keys)
        return await Vault(Keyring(config.encryption_keys)).rewrap(store)
    finally:
        await store.close()


async def _migrate(config_path: str) -> str:
    """Bring a PostgreSQL store's schema up to date; what was done, in one line."""
    config = load_config(config_path)
    if config.store_url is None:
        return f"the SQLite store ({config.store_path}) creates and upgrades its schema when opened: nothing to migrate"
    from .store.postgres import migrate_store

    applied, version = await migrate_store(config.store_url)
    done = f"applied step(s) {', '.join(map(str, applied))}" if applied else "already up to date"
    return f"PostgreSQL store schema at version {version}: {done}"


async def _copy_store(from_path: str, to_path: str) -> CopyReport:
    source_config, target_config = load_config(from_path), load_config(to_path)
    source = await open_store(source_config)
    try:
        target = await open_store(target_config)
        try:
            await check_keys(source, source_config.encryption_keys)
            await check_keys(target, target_config.encryption_keys)
            problems = keyring_problems(
                await source.key_ids_in_use(), dict(source_config.encryption_keys), dict(target_config.encryption_keys)
            )
            if problems:
                raise ConfigError(problems)
            events = await copy_events(source, target)
            report = await copy_connections(source, target)
            report.events_copied = events
            return report
        finally:
            await target.close()
    finally:
        await source.close()


DESCRIPTION = """BrokerGateway: one gRPC service that runs OAuth 2.0 flows for exchanges (Bybit, OKX) and any
OAuth 2.0 / OpenID Connect provider, keeps the tokens encrypted and fresh, and calls the exchanges'
broker APIs. To try it: broker-gateway sandbox (README.md, "Trying the sandbox")."""


def _log_level(text: str) -> str:
    """A logging level name, checked here so a typo is one line of usage, not a traceback."""
    level = text.upper()
    if not isinstance(logging.getLevelName(level), int):
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LOG_LEVELS)}")
    return level


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _listen(text: str) -> str:
    problem = address_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with the logging options' defaults for those given neither before nor after
    the subcommand."""
    args = _parser().parse_args(argv)
    args.log_level = getattr(args, "log_level", "INFO")
    args.log_format = getattr(args, "log_format", None)
    return args


def _parser() -> argparse.ArgumentParser:
    # --log-level and --log-format are accepted before or after the subcommand: each subcommand knows
    # them too, without a default of its own, so it overrides the top-level value only when given there.
    # The defaults are filled in after parsing (parse_arguments): the parent's actions are shared by every
    # parser, so a default set on one would be the subcommand's too and overwrite the top-level value.
    log_level = argparse.ArgumentParser(add_help=False)
    log_level.add_argument(
        "--log-level", type=_log_level, default=argparse.SUPPRESS, help=f"logging level: {', '.join(LOG_LEVELS)} (default INFO)"
    )
    log_level.add_argument(
        "--log-format", choices=LOG_FORMATS, default=argparse.SUPPRESS,
        help="text (human-readable) or json (one object per line); default: [logging] format, else text",
    )
    parser = argparse.ArgumentParser(prog="broker-gateway", description=DESCRIPTION, parents=[log_level])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=description, parents=[log_level])

    serve = command(
        "serve", "run the gateway",
        "Run the gateway from a configuration file (README.md: Running it for real); stops gracefully on SIGTERM.",
    )
    serve.add_argument("--config", required=True, help="TOML configuration file")
    serve.add_argument(
        "--listen", type=_listen, help="HOST:PORT to listen on (default: the configuration's, else 127.0.0.1:50051)"
    )
    serve.add_argument(
        "--workers", type=_positive, help="gateway processes sharing the port, one core each (default: [server] workers, else 1)"
    )
    serve.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)  # set by the parent of --workers
    sandbox = command(
        "sandbox", "run the gateway against local simulators",
        "Run the gateway on SQLite against local simulators of every built-in provider (bybit, okx, wallet), "
        "with a callback page; writes sandbox.json with everything a client needs.",
    )
    sandbox.add_argument(
        "--listen", type=_listen, default="127.0.0.1:50051", help="HOST:PORT for the gateway (default 127.0.0.1:50051)"
    )
    sandbox.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=f"where state is kept (default {DEFAULT_DATA_DIR})")
    sandbox.add_argument(
        "--callback-listen", type=_listen, default=DEFAULT_CALLBACK,
        help=f"HOST:PORT of the callback page (default {DEFAULT_CALLBACK})",
    )
    sandbox.add_argument(
        "--secure", action="store_true",
        help="serve TLS (a throwaway CA in the data dir) and require a caller API key (printed, and in sandbox.json)",
    )
    sandbox.add_argument(
        "--simulators-only", action="store_true",
        help="serve the simulators and the callback page but no gateway (--listen is then where gateways will be)",
    )
    sandbox.add_argument("--write-config", metavar="FILE", help="with --simulators-only: write a gateway configuration for them here")
    check = command(
        "check-config", "report every problem of a configuration file",
        "Report every problem of a configuration file at once, one line each, including each provider's settings; "
        "exit status 1 when there is any.",
    )
    check.add_argument("config", metavar="CONFIG", help="TOML configuration file to check")
    check.add_argument(
        "--probe", action="store_true",
        help="also reach each provider (discovery, token endpoint) and report what was found",
    )
    rewrap = command(
        "rewrap", "re-encrypt stored tokens under the newest key",
        "Re-encrypt every stored token under the first key of [[encryption.keys]], so older keys can be removed.",
    )
    rewrap.add_argument("--config", required=True, metavar="CONFIG", help="TOML configuration file of the store to rewrap")
    migrate = command(
        "migrate", "bring a PostgreSQL store's schema up to date (SQLite needs none)",
        "Bring a PostgreSQL store's schema up to date; run it before the first start and after each upgrade.",
    )
    migrate.add_argument("--config", required=True, metavar="CONFIG", help="TOML configuration file naming the store")
    copy = command(
        "copy-store", "copy every connection (still encrypted) from one configuration's store to another's",
        "Copy every connection, still encrypted, from one store to another (SQLite to PostgreSQL, say); both "
        "configurations need the keys the tokens are sealed with. Rerunning copies only what changed.",
    )
    copy.add_argument("--from", dest="source", required=True, metavar="CONFIG", help="configuration of the store to copy")
    copy.add_argument("--to", dest="target", required=True, metavar="CONFIG", help="configuration of the store to fill")
    command("generate-key", "print a new random encryption key", "Print a new random AES-256 key, base64, for [[encryption.keys]].")
    command(
        "new-caller-key", "print a new API key for a caller and the key_sha256 line for its [[callers]] entry",
        "Print a new API key for a caller and the key_sha256 line of its [[callers]] entry; the key is stored nowhere.",
    )
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected a positive integer")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logs.configure(args.log_level, args.log_format or "text", worker=getattr(args, "worker_fd", None) is not None)
    if args.command in ("serve", "sandbox"):
        raise_open_file_limit()
    try:
        if args.command == "serve":
            return _serve_command(args)
        elif args.command == "sandbox":
            _sandbox_command(args)
        elif args.command == "check-config":
            problems, found = asyncio.run(_check_config(args.config, probe=args.probe))
            for line in found:
                print(line)
            for problem in problems:
                print(problem, file=sys.stderr)
            print(f"{args.config}: {len(problems)} problem(s)" if problems else f"{args.config}: OK")
            return 1 if problems else 0
        elif args.command == "rewrap":
            report = asyncio.run(_rewrap(args.config))
            print(f"re-encrypted {report.rewrapped} connection(s)")
            for name in report.undecryptable:
                print(f"cannot decrypt {name}: authorize it again or delete it", file=sys.stderr)
            return 1 if report.undecryptable else 0
        elif args.command == "migrate":
            print(asyncio.run(_migrate(args.config)))
        elif args.command == "copy-store":
            copied = asyncio.run(_copy_store(args.source, args.target))
            print(
                f"copied {copied.copied} connection(s), updated {copied.updated}, {copied.unchanged} already there;"
                f" {copied.events_copied} connection event(s) copied"
            )
        elif args.command == "generate-key":
            print(generate_key())
        elif args.command == "new-caller-key":
            key = new_key()
            print(f"API key (give it to the caller; it is not stored anywhere): {key}")
            print(f'key_sha256 = "{key_sha256(key)}"')
    except (ConfigError, PluginError) as error:
        print(f"broker-gateway: {error}", file=sys.stderr)
        return 2
    except (ServeFailed, MissingExtra) as error:
        print(f"broker-gateway: {error}", file=sys.stderr)
        return 1
    except StoreUnavailable as error:
        print(f"broker-gateway: {error.message}", file=sys.stderr)
        return 1
    except HistoriesDiffer as error:
        print(f"broker-gateway: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a file or directory that cannot be made or read: one line, not a traceback
        print(f"broker-gateway: {one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
