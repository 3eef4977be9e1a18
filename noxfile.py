"""Developer tasks. ``nox -s tests`` is the README's test command and what CI runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
PROTO = "ma/streaming/open_data/v1/open_data.proto"


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, against a real Kafka broker (started locally unless
    KAFKA_BOOTSTRAP_SERVERS is set; KAFKA_REQUIRED=1 makes a missing broker fail)."""
    session.install("-e", ".[test,bench,docs]", "betterproto2-compiler==0.10.*")
    session.run("pytest", *session.posargs, env={"PYTHONUNBUFFERED": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "aiowriter", "tests", "benchmarks", "examples", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package (configured in pyproject.toml)."""
    session.install("-e", ".[test]", "mypy>=1.11", "numpy>=1.26")
    session.run("mypy", "--strict", "aiowriter")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (MkDocs + mkdocstrings), warnings as errors; offline."""
    session.install("-e", ".[docs]")
    args = session.posargs or ["build", "--strict", "--site-dir", "site"]
    session.run("mkdocs", *args, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def protos(session: nox.Session) -> None:
    """Regenerate aiowriter/_proto from protos/ with betterproto2 (commit the result)."""
    session.install("betterproto2-compiler==0.10.*", "grpcio-tools>=1.66")
    out = ROOT / "aiowriter" / "_proto"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    session.run(
        "python",
        "-m",
        "grpc_tools.protoc",
        f"-I{ROOT / 'protos'}",
        f"--python_betterproto2_out={out}",
        PROTO,
    )
    (out / "py.typed").touch()


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: publish a simulated car session (starts a local broker if none is given)."""
    session.install("-e", ".[numpy]")
    session.run("aiowriter", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Throughput against raw aiokafka and confluent-kafka, same broker, same payloads."""
    session.install("-e", ".[bench]")
    args = session.posargs or ["--out", "benchmarks/results"]
    session.run("python", "benchmarks/throughput.py", *args, env=dict(os.environ))
