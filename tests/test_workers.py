"""``serve --workers N`` as an operator runs it: real processes on one port, real signals.

Why: one gateway process uses one core, so a machine's other cores serve only through workers; they
must all take calls on the one port, a worker that dies must come back without the others noticing,
SIGTERM must stop them all gracefully, and a deployment that cannot start must say why in one line.
Which worker serves a connection is read from /proc (the worker holding its socket), not from the API.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import grpc
import httpx
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import broker_gateway_service_pb2_grpc as api_grpc
from test_cli import CLI, VALID, check_config, environment, free_port, wait_until_serving, write_config

CHANNELS = 40


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0, log: Path | None = None) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` (and showing ``log``) after a generous timeout."""
    give_up = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < give_up, f"timed out waiting for {what}" + (f"; the log:\n{log.read_text()}" if log else "")
        time.sleep(0.1)


def children(pid: int) -> set[int]:
    with contextlib.suppress(FileNotFoundError):
        return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    return set()


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def established_on(pid: int, port: int) -> int:
    """How many client connections to ``port`` the process holds (from its sockets in /proc)."""
    inodes = set()
    for link in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(link)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "01" and int(local.rpartition(":")[2], 16) == port and inode in inodes:
                count += 1
    return count


@dataclass
class Deployment:
    parent: subprocess.Popen[bytes]
    address: str
    log: Path

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    def workers(self) -> set[int]:
        return children(self.parent.pid)


@contextlib.contextmanager
def serving_workers(tmp_path: Path, count: int = 2, *, config: Path | None = None, address: str | None = None) -> Iterator[Deployment]:
    """``serve --workers count`` on a free loopback port (unless given), once every worker serves; the
    configuration is VALID's unless given."""
    if config is None:
        config = tmp_path / "gateway.toml"
        config.write_text(VALID)
    address, log = address or f"127.0.0.1:{free_port()}", tmp_path / "serve.log"
    with log.open("wb") as output:
        command = [str(CLI), "serve", "--config", str(config), "--listen", address, "--workers", str(count)]
        parent = subprocess.Popen(command, env=environment(), stdout=output, stderr=output)
        deployment = Deployment(parent, address, log)
        try:
            wait_for(lambda: f"{count} workers serving" in log.read_text(), "the workers to serve", log=log)
            assert len(deployment.workers()) == count, log.read_text()
            yield deployment
        finally:
            if parent.poll() is None:
                parent.kill()
                parent.wait()


def authorize_from_many_channels(address: str, channels: int = CHANNELS) -> tuple[list[grpc.Channel], int]:
    """One Authorize (a store write) on each of ``channels`` separate connections, left open so their
    sockets can be found; the channels and how many calls succeeded."""
    opened, succeeded = [], 0
    for _ in range(channels):
        channel = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        opened.append(channel)
        stub = api_grpc.BrokerGatewayStub(channel)
        response = stub.Authorize(api.AuthorizeRequest(provider="acme", redirect_uri="https://app.example/callback"), timeout=10)
        succeeded += response.authorization_url.startswith("https://acme.as.example/authorize")
    return opened, succeeded


def stop(deployment: Deployment) -> int:
    deployment.parent.send_signal(signal.SIGTERM)
    return deployment.parent.wait(timeout=60)


def test_workers_share_one_port_all_serve_calls_and_stop_together_on_sigterm(tmp_path: Path) -> None:
    with serving_workers(tmp_path) as deployment:
        workers = deployment.workers()
        channels, succeeded = authorize_from_many_channels(deployment.address)
        try:
            assert succeeded == CHANNELS
            served = {pid: established_on(pid, deployment.port) for pid in workers}
            assert all(served.values()), f"connections per worker: {served}"
            assert sum(served.values()) == CHANNELS
        finally:
            for channel in channels:
                channel.close()
        assert stop(deployment) == 0, deployment.log.read_text()
        assert not any(alive(pid) for pid in workers)
    log = deployment.log.read_text()
    assert log.count("shutting down") == 2 and "Traceback" not in log


def test_a_killed_worker_is_replaced_and_serves(tmp_path: Path) -> None:
    with serving_workers(tmp_path) as deployment:
        victim, survivor = sorted(deployment.workers())
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(deployment.workers() - {victim, survivor}) == 1, "a replacement worker")
        (replacement,) = deployment.workers() - {victim, survivor}
        wait_for(lambda: f"serving (pid {replacement})" in deployment.log.read_text(), "the replacement to serve")
        channels, succeeded = authorize_from_many_channels(deployment.address)
        try:
            assert succeeded == CHANNELS
            assert established_on(replacement, deployment.port) and established_on(survivor, deployment.port)
        finally:
            for channel in channels:
                channel.close()
        assert stop(deployment) == 0, deployment.log.read_text()
    assert f"pid {victim}) exited unexpectedly" in deployment.log.read_text()


def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    """No worker outlives its parent, so a restarted deployment finds its port free."""
    with serving_workers(tmp_path) as deployment:
        workers = deployment.workers()
        deployment.parent.kill()
        deployment.parent.wait()
        wait_for(lambda: not any(alive(pid) for pid in workers), "the workers to stop")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", deployment.port))  # free again


def test_workers_that_cannot_listen_fail_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(VALID)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = subprocess.run(
            [str(CLI), "serve", "--config", str(config), "--listen", address, "--workers", "2"],
            env=environment(), capture_output=True, text=True, timeout=60, check=False,
        )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        (f"broker-gateway: cannot listen on {address}: Address already in use (another process holds it: stop that one, "
        "or choose another address with --listen or [server] listen)")
    ]


def test_workers_that_cannot_start_stop_all_and_say_why_in_one_line(tmp_path: Path) -> None:
    """The parent cannot know the store is unusable; the workers find out and tell it, once."""
    config = tmp_path / "gateway.toml"
    config.write_text(VALID.replace('path = "data/gateway.db"', 'path = "/proc/no-such-dir/gateway.db"'))
    result = subprocess.run(
        [str(CLI), "serve", "--config", str(config), "--listen", "127.0.0.1:0", "--workers", "2"],
        env=environment(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["broker-gateway: cannot open the SQLite store: [Errno 2] No such file or directory: '/proc/no-such-dir'"]


def test_a_single_process_keeps_its_port_exclusive(tmp_path: Path) -> None:
    """Without workers the port is not shared: a second gateway on it fails instead of splitting it."""
    config = tmp_path / "gateway.toml"
    config.write_text(VALID)
    address = f"127.0.0.1:{free_port()}"
    serve = [str(CLI), "serve", "--config", str(config), "--listen", address]
    with (tmp_path / "serve.log").open("wb") as output:
        first = subprocess.Popen(serve, env=environment(), stdout=output, stderr=output)
        try:
            wait_until_serving(first, address)
            second = subprocess.run(serve, env=environment(), capture_output=True, text=True, timeout=60, check=False)
            assert second.returncode == 1
            assert f"broker-gateway: cannot listen on {address}" in second.stderr and "Traceback" not in second.stderr
        finally:
            first.send_signal(signal.SIGTERM)
            first.wait(timeout=30)


@contextlib.contextmanager
def sandbox_simulators(tmp_path: Path, gateway: str) -> Iterator[Path]:
    """``sandbox --simulators-only``: the configuration it writes, with a SQLite [store] added."""
    config = tmp_path / "simulators.toml"
    command = [
        str(CLI), "sandbox", "--simulators-only", "--write-config", str(config), "--listen", gateway,
        "--data-dir", str(tmp_path / "sandbox"), "--callback-listen", f"127.0.0.1:{free_port()}",
    ]
    with (tmp_path / "simulators.log").open("wb") as output:
        simulators = subprocess.Popen(command, env=environment(), stdout=output, stderr=output)
        try:
            wait_for(lambda: (tmp_path / "sandbox" / "sandbox.json").exists(), "the simulators")
            config.write_text(config.read_text() + '\n[store]\npath = "gateway.db"\n')
            yield config
        finally:
            simulators.send_signal(signal.SIGTERM)
            simulators.wait(timeout=30)


def test_workers_complete_the_flow_against_the_sandbox_simulators(tmp_path: Path) -> None:
    """Authorize on one connection, Exchange and GetAccessToken on others: whichever worker each lands
    on, the shared store makes them one gateway."""
    address = f"127.0.0.1:{free_port()}"
    with (
        sandbox_simulators(tmp_path, address) as config,
        serving_workers(tmp_path, config=config, address=address),
        contextlib.ExitStack() as channels,
    ):

        def stub() -> api_grpc.BrokerGatewayStub:
            """A stub on a connection of its own."""
            options = [("grpc.use_local_subchannel_pool", 1)]
            return api_grpc.BrokerGatewayStub(channels.enter_context(grpc.insecure_channel(address, options=options)))

        redirect_uri = json.loads((tmp_path / "sandbox" / "sandbox.json").read_text())["redirect_uri"]
        start = stub().Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=redirect_uri), timeout=10)
        location = httpx.get(start.authorization_url + "&approve=alice").headers["location"]
        callback = dict(parse_qsl(urlsplit(location).query))
        exchange = api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback)
        connection_id = stub().Exchange(exchange, timeout=10).connection.connection_id
        request = api.GetAccessTokenRequest(connection_id=connection_id)
        tokens = {stub().GetAccessToken(request, timeout=10).access_token for _ in range(10)}
        assert len(tokens) == 1 and tokens != {""}


def test_check_config_refuses_a_workers_count_below_one(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("[server]\n", "[server]\nworkers = 0\n"))
    code, output = check_config(path)
    assert code == 1 and "server.workers: expected a positive integer" in output
