"""The topology split across network namespaces: PostgreSQL, api and worker as if on three hosts.

Each of the three gets a namespace named after the run (``attrib-<run name>-pg|api|worker``), so a
later run, ``down`` or ``cleanup_stale`` finds and deletes a crashed run's namespaces by name alone.
The links are veth pairs with point-to-point addresses on a private /24 this run picks (10.213.N.0,
one not already routed here):

    harness (this namespace) --host link-- pg, api, worker   (load, probes, migrations, the mock)
    api    --db link-- pg                                    (the api's only way to the database)
    worker --db link-- pg                                    (the worker's)

PostgreSQL listens on TCP on a service address of its own (on its loopback), and each side routes
that address over its own link, so one DSN serves everybody while every connection crosses a
network interface. Setting the pg end of a db link down is a partition: the other side's packets
are dropped silently (its link stays up, as a cut cable between switches looks), while the harness
still reaches both sides. mock_platform stays in this namespace, listening on the harness address.
Deleting a namespace deletes its veth ends and their peers, so cleanup is "delete the namespaces".
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

PREFIX = "attrib-"
ROLES = ("pg", "api", "worker")
SUBNET_BASE = "10.213"  # a /16 no host here routes; each run takes one /24 of it
NETNS_DIR = Path("/run/netns")
PG_PORT = 5432
IP = "ip"


class NetnsError(RuntimeError):
    pass


def _ip(*args: str) -> str:
    """Run ``ip``; a failure names the command (no secret ever goes through here)."""
    result = subprocess.run([IP, *args], capture_output=True, text=True, timeout=20, check=False)
    if result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result.stdout


def namespace_name(run_name: str, role: str) -> str:
    return f"{PREFIX}{run_name}-{role}"


def existing_namespaces() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob("*")) if NETNS_DIR.is_dir() else []


def host_interface_prefix(run_name: str) -> str:
    """The harness-side veth ends of a run are named this plus the role's initial (at most 15 characters)."""
    return f"at{zlib.crc32(run_name.encode()):08x}"


def remove_namespaces(run_name: str, wait_s: float = 10.0) -> list[str]:
    """Delete this run name's namespaces (and with them every link of the run); returns those deleted.

    The kernel tears a namespace's links down shortly after its name is gone; this waits for the
    run's links to disappear, so a run of the same name can create them again at once. A process
    still inside a namespace keeps it alive, so callers stop the run's processes first."""
    removed = []
    for role in ROLES:
        name = namespace_name(run_name, role)
        if name in existing_namespaces():
            subprocess.run([IP, "netns", "delete", name], capture_output=True, timeout=20, check=False)
            removed.append(name)
    deadline = time.monotonic() + wait_s
    while host_interface_prefix(run_name) in _ip("-o", "link") and time.monotonic() < deadline:
        time.sleep(0.1)
    return removed


def _routed_here(prefix: str) -> bool:
    routes = _ip("-4", "route", "show", "table", "all")
    addresses = _ip("-4", "-o", "addr", "show")
    return f"{prefix}." in routes or f"{prefix}." in addresses


@dataclass(frozen=True)
class NetnsPlan:
    """The namespaces, interface names and addresses of one run."""

    run_name: str
    subnet: str  # "10.213.N": a /24 this run uses alone

    @classmethod
    def choose(cls, run_name: str) -> NetnsPlan:
        """A /24 derived from the run name, moved on while another run (or anything) routes it."""
        start = zlib.crc32(run_name.encode()) % 250
        for step in range(250):
            subnet = f"{SUBNET_BASE}.{(start + step) % 250 + 1}"
            if not _routed_here(subnet):
                return cls(run_name, subnet)
        raise NetnsError(f"no free /24 left in {SUBNET_BASE}.0.0/16")

    @classmethod
    def from_record(cls, run_name: str, record: dict[str, object]) -> NetnsPlan:
        """The plan ``as_record`` wrote into a run's state (for attaching to a running topology)."""
        return cls(run_name, str(record["subnet"]).rsplit(".", 1)[0])

    def address(self, host: int) -> str:
        return str(ipaddress.IPv4Address(f"{self.subnet}.{host}"))

    # harness .1; host-link ends pg .2, api .3, worker .4; db links api .5-pg .6, worker .7-pg .8
    @property
    def harness_ip(self) -> str:
        return self.address(1)

    def host_link_ip(self, role: str) -> str:
        return self.address(2 + ROLES.index(role))

    def db_link_ips(self, role: str) -> tuple[str, str]:
        """(the client's end, PostgreSQL's end) of the api's or the worker's db link."""
        first = 5 if role == "api" else 7
        return self.address(first), self.address(first + 1)

    @property
    def postgres_ip(self) -> str:
        """The service address PostgreSQL listens on; every side routes it over its own link."""
        return self.address(10)

    @property
    def cidr(self) -> str:
        return f"{self.subnet}.0/24"

    def namespace(self, role: str) -> str:
        return namespace_name(self.run_name, role)

    def host_interface(self, role: str) -> str:
        """The harness's end of a host link: unique on this host, at most 15 characters."""
        return host_interface_prefix(self.run_name) + role[0]

    def prefix_argv(self, role: str) -> list[str]:
        """What runs a command inside the role's namespace."""
        return [IP, "netns", "exec", self.namespace(role)]

    # -- bring-up and teardown -----------------------------------------------------------------

    def create(self) -> None:
        """Namespaces, links, addresses and routes; on any failure whatever was made is deleted."""
        if os.geteuid() != 0:
            raise NetnsError("--netns needs root (ip netns add, veth links)")
        try:
            for role in ROLES:
                _ip("netns", "add", self.namespace(role))
                _ip("-n", self.namespace(role), "link", "set", "lo", "up")
                self._host_link(role)
            for role in ("api", "worker"):
                self._db_link(role)
            pg = self.namespace("pg")
            _ip("-n", pg, "addr", "add", f"{self.postgres_ip}/32", "dev", "lo")
            _ip("route", "add", f"{self.postgres_ip}/32", "dev", self.host_interface("pg"), "src", self.harness_ip)
        except BaseException:
            remove_namespaces(self.run_name)
            raise

    def _host_link(self, role: str) -> None:
        ns, here, there = self.namespace(role), self.host_interface(role), self.host_link_ip(role)
        _ip("link", "add", here, "type", "veth", "peer", "name", "host", "netns", ns)
        _ip("addr", "add", self.harness_ip, "peer", there, "dev", here)
        _ip("-n", ns, "addr", "add", there, "peer", self.harness_ip, "dev", "host")
        _ip("link", "set", here, "up")
        _ip("-n", ns, "link", "set", "host", "up")

    def _db_link(self, role: str) -> None:
        ns, pg = self.namespace(role), self.namespace("pg")
        client, server = self.db_link_ips(role)
        _ip("-n", ns, "link", "add", "db", "type", "veth", "peer", "name", role, "netns", pg)
        _ip("-n", ns, "addr", "add", client, "peer", server, "dev", "db")
        _ip("-n", pg, "addr", "add", server, "peer", client, "dev", role)
        _ip("-n", ns, "link", "set", "db", "up")
        _ip("-n", pg, "link", "set", role, "up")
        _ip("-n", ns, "route", "add", f"{self.postgres_ip}/32", "dev", "db")

    def remove(self) -> list[str]:
        return remove_namespaces(self.run_name)

    # -- faults --------------------------------------------------------------------------------

    def set_partition(self, role: str, cut: bool) -> None:
        """Cut (or heal) the link between ``role`` (api or worker) and PostgreSQL at PostgreSQL's end."""
        _ip("-n", self.namespace("pg"), "link", "set", role, "down" if cut else "up")

    def as_record(self) -> dict[str, object]:
        return {
            "subnet": self.cidr,
            "namespaces": {role: self.namespace(role) for role in ROLES},
            "postgres": f"{self.postgres_ip}:{PG_PORT}",
            "harness": self.harness_ip,
        }


def postgres_launcher(plan: NetnsPlan, system_user: str | None) -> list[str]:
    """The prefix that runs pg_ctl inside the pg namespace as the cluster's own system user."""
    user = ["runuser", "-u", system_user, "--"] if system_user else []
    return [*plan.prefix_argv("pg"), *user]


def hba_lines(plan: NetnsPlan) -> str:
    """pg_hba entries for the run's subnet: every TCP client authenticates by SCRAM."""
    return f"host    all   all        {plan.cidr}  scram-sha-256\n"
