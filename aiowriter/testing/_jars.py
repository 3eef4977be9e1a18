"""Fetch and cache the Kafka broker's jars from Maven Central with ``mvn``.

Kafka's release archives are not always downloadable (CI sandboxes, corporate mirrors), but every
jar of the broker is on Maven Central, so ``mvn dependency:copy-dependencies`` on the packaged
``kafka-pom.xml`` gives a classpath that ``java -cp "<lib>/*" kafka.Kafka`` runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.resources
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .._exceptions import InvalidInputError
from ._errors import JarFetchError, ToolNotFoundError

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "check_kafka_version",
    "default_cache_dir",
    "ensure_kafka_jars",
    "strip_ansi",
    "tail",
]

Progress = Callable[[str], None]
"""Called with one line of news at a time (e.g. printed on stderr by the command line)."""

DEFAULT_KAFKA_VERSION = "4.1.1"

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-[A-Za-z0-9.]+)?$")
_COMPLETE_MARKER = ".complete"
_MVN_TIMEOUT_S = 900.0
_HEARTBEAT_S = 10.0
# CSI sequences (colours, cursor moves) and lone ESC-x pairs: Maven may colour its output even in
# batch mode (MAVEN_OPTS, .mvn/jvm.config), and an error message should quote plain text.
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_DOWNLOADED_RE = re.compile(r"Downloaded from \S+: \S*/([^/\s]+\.jar) \(([^)]*)\)")


def default_cache_dir() -> Path:
    """``$AIOWRITER_CACHE_DIR``, else ``$XDG_CACHE_HOME/aiowriter``, else ``~/.cache/aiowriter``."""
    explicit = os.environ.get("AIOWRITER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "aiowriter"


def check_kafka_version(kafka_version: str) -> tuple[int, int]:
    """Validate ``kafka_version`` and return its (major, minor)."""
    match = _VERSION_RE.match(kafka_version)
    if match is None:
        raise InvalidInputError(f"not a Kafka version: {kafka_version!r} (expected e.g. 4.1.1)")
    major, minor = int(match.group(1)), int(match.group(2))
    if major < 4:
        # 3.x needs ZooKeeper-era logging jars (reload4j) and a log4j 1 config; not worth carrying.
        raise InvalidInputError(f"Kafka {kafka_version} is not supported: use Kafka 4.0 or newer")
    return major, minor


def _log4j_version(kafka_version: str) -> str:
    # The Log4j 2 release each Kafka line is built against (its published pom omits the backend).
    return "2.24.3" if check_kafka_version(kafka_version) < (4, 2) else "2.25.3"


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences."""
    return _ANSI_RE.sub("", text)


def tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of ``text`` as plain text, indented for an error message."""
    kept = strip_ansi(text).rstrip().splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in kept) if kept else "    (no output)"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Serialises concurrent first-time downloads (e.g. pytest-xdist workers, two CLI calls).
    with path.open("a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_kafka_jars(
    kafka_version: str, cache_dir: Path | None = None, progress: Progress | None = None
) -> Path:
    """Return the directory holding Kafka ``kafka_version``'s runtime jars, fetching on first use.

    The jars land in ``<cache_dir>/kafka-<version>/lib``. ``mvn`` writes into a scratch directory
    that is renamed into place only after it succeeded, so an interrupted download is never taken
    as complete. ``progress`` hears what a first (cold) run is doing: each jar downloaded, and a
    heartbeat every 10 s, so a download of tens of MB does not look like a hang.

    :raises ToolNotFoundError: ``mvn`` is needed (nothing cached) and not on PATH.
    :raises JarFetchError: ``mvn`` failed; the message holds the tail of its output.
    """
    check_kafka_version(kafka_version)
    version_dir = (cache_dir or default_cache_dir()) / f"kafka-{kafka_version}"
    lib = version_dir / "lib"
    if (lib / _COMPLETE_MARKER).is_file():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolNotFoundError(
            "mvn",
            f"Maven is needed once to fetch the Kafka {kafka_version} jars into {lib} "
            "(install it, e.g. `apt-get install maven`), or set KAFKA_BOOTSTRAP_SERVERS "
            "to use a broker you already run",
        )
    version_dir.mkdir(parents=True, exist_ok=True)
    if progress is not None:
        progress(
            f"fetching the Kafka {kafka_version} jars with Maven into {lib} "
            "(first run only; tens of MB) ..."
        )
    with _file_lock(version_dir / ".lock"):
        if (lib / _COMPLETE_MARKER).is_file():
            return lib  # another process finished the download while we waited for the lock
        for stale in version_dir.glob("mvn-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted run; we hold the lock
        work = Path(tempfile.mkdtemp(prefix="mvn-", dir=version_dir))
        try:
            out = _run_mvn(mvn, kafka_version, work, progress)
            (out / _COMPLETE_MARKER).write_text(f"kafka {kafka_version}\n")
            if lib.exists():
                shutil.rmtree(lib)  # incomplete copy from some other tool; never ours
            os.replace(out, lib)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return lib


def _run_mvn(mvn: str, kafka_version: str, work: Path, progress: Progress | None) -> Path:
    pom = work / "pom.xml"
    # Copy the pom out of the package: site-packages may be read-only and mvn may write next to it.
    pom.write_bytes(importlib.resources.files(__package__).joinpath("kafka-pom.xml").read_bytes())
    out = work / "lib"
    command = [
        mvn,
        "-B",  # batch mode: one "Downloaded from" line per artifact, no progress bars, no colour
        "-Dstyle.color=never",
        "-f",
        str(pom),
        f"-Dkafka.version={kafka_version}",
        f"-Dlog4j.version={_log4j_version(kafka_version)}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={out}",
    ]
    process = subprocess.Popen(
        command,
        cwd=work,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=_relay_mvn_output, args=(process, lines, progress), daemon=True
    )
    reader.start()
    started = time.monotonic()
    try:
        while True:
            try:
                returncode = process.wait(timeout=_HEARTBEAT_S)
                break
            except subprocess.TimeoutExpired:
                waited = time.monotonic() - started
                if waited >= _MVN_TIMEOUT_S:
                    raise JarFetchError(
                        f"`mvn` did not finish fetching Kafka {kafka_version} within "
                        f"{_MVN_TIMEOUT_S:.0f} s; is Maven Central reachable?\n"
                        f"{tail(''.join(lines))}"
                    ) from None
                if progress is not None:
                    done = sum("Downloaded from" in line and ".jar " in line for line in lines)
                    progress(f"  still fetching ({waited:.0f} s, {done} jars downloaded so far)")
    finally:
        if process.poll() is None:  # timed out or interrupted: no mvn left behind
            process.kill()
            process.wait()
        reader.join(timeout=5.0)
    output = "".join(lines)
    jars = list(out.glob("kafka_2.13-*.jar")) if out.is_dir() else []
    if returncode != 0 or not jars:
        raise JarFetchError(
            f"`mvn` failed to fetch the Kafka {kafka_version} jars "
            f"(exit code {returncode}). "
            "Check that Maven Central is reachable (or that ~/.m2/settings.xml names a mirror) "
            f"and that Kafka {kafka_version} exists there.\n"
            f"command: {' '.join(command)}\nlast lines of its output:\n{tail(output)}"
        )
    if progress is not None:
        progress(
            f"fetched {len(list(out.glob('*.jar')))} jars in {time.monotonic() - started:.0f} s"
        )
    return out


def _relay_mvn_output(
    process: subprocess.Popen[str], lines: list[str], progress: Progress | None
) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        match = _DOWNLOADED_RE.search(strip_ansi(line))
        if match is not None and progress is not None:
            progress(f"  downloaded {match.group(1)} ({match.group(2)})")
