#!/usr/bin/env python3
"""deploy/ checked without a container engine (none runs on the test machines):

- deploy/compose/docker-compose.yml parses; every service it depends on, every file it mounts
  and its Dockerfile exist; every Cardwatch command in it is a subcommand of the binary, every
  flag is in that subcommand's --help, every host in a --log/--warehouse/--online-store URL is a
  service of the file, and the whole command line is accepted by the binary itself
  (`--print-topology` parses and checks it, then prints the topology without connecting);
- the compose Prometheus configuration scrapes services of the file (and passes `promtool
  check config` when promtool is installed);
- the Dockerfile builds the binary with the Kafka trait and installs librdkafka;
- each systemd unit has its sections, and its ExecStart (the environment file's variables and %i
  filled in) passes the same checks.

usage: deploy-test.py CARDWATCH_BIN (the python needs PyYAML)
"""
import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from urllib.parse import urlparse

import yaml

BIN = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPOSE_DIR = os.path.join(ROOT, "deploy", "compose")
problems, checked = [], []
helps = {}


def problem(msg):
    problems.append(msg)
    print(f"[deploy-test] FAIL: {msg}")


def flags_of(sub):
    if sub not in helps:
        out = subprocess.run([BIN, sub, "--help"], capture_output=True, text=True)
        helps[sub] = set(re.findall(r"(--[a-z][a-z0-9-]*)", out.stdout)) if out.returncode == 0 else None
    return helps[sub]


def check_command(where, argv, hosts):
    """A cardwatch command line: its subcommand, flags, service addresses, and the binary's own parse."""
    if not argv or os.path.basename(argv[0]) != "cardwatch":
        problem(f"{where}: not a cardwatch command: {argv[:2]}")
        return
    sub = argv[1]
    known = flags_of(sub)
    if known is None:
        problem(f"{where}: `cardwatch {sub}` is not a subcommand")
        return
    for i, arg in enumerate(argv[2:], start=2):
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            if name not in known:
                problem(f"{where}: `cardwatch {sub}` has no flag {name}")
            if name in ("--log", "--warehouse", "--online-store") and i + 1 < len(argv):
                for part in argv[i + 1].split("://", 1)[1].split(","):
                    host = urlparse("x://" + part).hostname
                    if hosts is not None and host not in hosts:
                        problem(f"{where}: {name} names {host}, which is not a service ({sorted(hosts)})")
    out = subprocess.run([BIN] + argv[1:] + ["--print-topology"], capture_output=True, text=True)
    if out.returncode != 0:
        problem(f"{where}: the binary refuses the command line: {out.stderr.strip()[:400]}")
    else:
        checked.append(f"{where}: cardwatch {sub} with {sum(a.startswith('--') for a in argv)} flags")


def expand_compose(text):
    """${VAR:-default} as compose fills it in with nothing set."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def compose():
    path = os.path.join(COMPOSE_DIR, "docker-compose.yml")
    with open(path) as f:
        doc = yaml.safe_load(f)
    services = doc.get("services") or {}
    hosts = set(services)
    for name in ("kafka", "postgres", "redis", "prometheus", "grafana", "processor", "api"):
        if name not in services:
            problem(f"compose: no service {name}")
    for name, s in services.items():
        for dep in (s.get("depends_on") or {}):
            if dep not in hosts:
                problem(f"compose: {name} depends on {dep}, not a service")
        for volume in s.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                if not os.path.exists(os.path.join(COMPOSE_DIR, source)):
                    problem(f"compose: {name} mounts {source}, which does not exist")
            elif source not in (doc.get("volumes") or {}):
                problem(f"compose: {name} mounts volume {source}, which is not declared")
        build = s.get("build")
        if build:
            dockerfile = os.path.join(COMPOSE_DIR, build["context"], build.get("dockerfile", "Dockerfile"))
            if not os.path.exists(dockerfile):
                problem(f"compose: {name} builds from {dockerfile}, which does not exist")
        command = s.get("command")
        if isinstance(command, list) and command and command[0] == "cardwatch":
            check_command(f"compose service {name}", [expand_compose(str(c)) for c in command], hosts)
    for role in ("processor", "api"):
        replicas = (services.get(role, {}).get("deploy") or {}).get("replicas", 1)
        print(f"[deploy-test] compose: {role} × {replicas} (scale with --scale {role}=N)")

    with open(os.path.join(COMPOSE_DIR, "prometheus.yml")) as f:
        prom = yaml.safe_load(f)
    scraped = {n for job in prom["scrape_configs"] for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
    if scraped != {"processor", "api"}:
        problem(f"compose prometheus.yml scrapes {sorted(scraped)}, not the processors and the API nodes")
    promtool = shutil.which("promtool")
    if promtool:
        out = subprocess.run([promtool, "check", "config", os.path.join(COMPOSE_DIR, "prometheus.yml")],
                             capture_output=True, text=True)
        if out.returncode != 0:
            problem(f"promtool check config: {out.stdout}{out.stderr}")
        else:
            checked.append("compose prometheus.yml: promtool check config")

    with open(os.path.join(COMPOSE_DIR, "Dockerfile")) as f:
        dockerfile = f.read()
    if "--traits Kafka" not in dockerfile or "librdkafka" not in dockerfile:
        problem("the Dockerfile must build with --traits Kafka and install librdkafka")


def systemd():
    unit_dir = os.path.join(ROOT, "deploy", "systemd")
    env = {}
    with open(os.path.join(unit_dir, "cardwatch.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                env[key] = value
    units = sorted(u for u in os.listdir(unit_dir) if u.endswith(".service"))
    if {"cardwatch-processor@.service", "cardwatch-api@.service"} - set(units):
        problem(f"deploy/systemd must have a processor and an API unit: {units}")
    for unit in units:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read(os.path.join(unit_dir, unit))
        for section in ("Unit", "Service", "Install"):
            if not parser.has_section(section):
                problem(f"{unit}: no [{section}]")
        if parser.get("Service", "EnvironmentFile", fallback="") != "/etc/cardwatch/cardwatch.env":
            problem(f"{unit}: EnvironmentFile must be /etc/cardwatch/cardwatch.env")
        exec_start = parser.get("Service", "ExecStart", fallback="")
        filled = re.sub(r"\$\{([A-Z_]+)\}", lambda m: env.get(m.group(1), f"<unset {m.group(1)}>"), exec_start)
        filled = filled.replace("%i", "8081")
        check_command(unit, shlex.split(filled), None)


compose()
systemd()
for c in checked:
    print(f"[deploy-test] ok: {c}")
if problems:
    sys.exit(f"[deploy-test] {len(problems)} problems")
print(f"[deploy-test] passed: {len(checked)} checks")
