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
from collections.abc import Iterator
from pathlib import Path

from ._errors import JarFetchError, ToolNotFoundError

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "check_kafka_version",
    "default_cache_dir",
    "ensure_kafka_jars",
    "tail",
]

DEFAULT_KAFKA_VERSION = "4.1.1"

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-[A-Za-z0-9.]+)?$")
_COMPLETE_MARKER = ".complete"
_MVN_TIMEOUT_S = 900.0


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
        raise ValueError(f"not a Kafka version: {kafka_version!r} (expected e.g. 4.1.1)")
    major, minor = int(match.group(1)), int(match.group(2))
    if major < 4:
        # 3.x needs ZooKeeper-era logging jars (reload4j) and a log4j 1 config; not worth carrying.
        raise ValueError(f"Kafka {kafka_version} is not supported: use Kafka 4.0 or newer")
    return major, minor


def _log4j_version(kafka_version: str) -> str:
    # The Log4j 2 release each Kafka line is built against (its published pom omits the backend).
    return "2.24.3" if check_kafka_version(kafka_version) < (4, 2) else "2.25.3"


def tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of ``text``, indented for embedding in an error message."""
    kept = text.rstrip().splitlines()[-lines:]
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


def ensure_kafka_jars(kafka_version: str, cache_dir: Path | None = None) -> Path:
    """Return the directory holding Kafka ``kafka_version``'s runtime jars, fetching on first use.

    The jars land in ``<cache_dir>/kafka-<version>/lib``. ``mvn`` writes into a scratch directory
    that is renamed into place only after it succeeded, so an interrupted download is never taken
    as complete.

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
    with _file_lock(version_dir / ".lock"):
        if (lib / _COMPLETE_MARKER).is_file():
            return lib  # another process finished the download while we waited for the lock
        for stale in version_dir.glob("mvn-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted run; we hold the lock
        work = Path(tempfile.mkdtemp(prefix="mvn-", dir=version_dir))
        try:
            out = _run_mvn(mvn, kafka_version, work)
            (out / _COMPLETE_MARKER).write_text(f"kafka {kafka_version}\n")
            if lib.exists():
                shutil.rmtree(lib)  # incomplete copy from some other tool; never ours
            os.replace(out, lib)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return lib


def _run_mvn(mvn: str, kafka_version: str, work: Path) -> Path:
    pom = work / "pom.xml"
    # Copy the pom out of the package: site-packages may be read-only and mvn may write next to it.
    pom.write_bytes(importlib.resources.files(__package__).joinpath("kafka-pom.xml").read_bytes())
    out = work / "lib"
    command = [
        mvn,
        "-B",
        "--no-transfer-progress",
        "-f",
        str(pom),
        f"-Dkafka.version={kafka_version}",
        f"-Dlog4j.version={_log4j_version(kafka_version)}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={out}",
    ]
    try:
        result = subprocess.run(
            command,
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=_MVN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output if isinstance(exc.output, str) else ""
        raise JarFetchError(
            f"`mvn` did not finish fetching Kafka {kafka_version} within {_MVN_TIMEOUT_S:.0f} s; "
            f"is Maven Central reachable?\n{tail(output)}"
        ) from exc
    jars = list(out.glob("kafka_2.13-*.jar")) if out.is_dir() else []
    if result.returncode != 0 or not jars:
        raise JarFetchError(
            f"`mvn` failed to fetch the Kafka {kafka_version} jars "
            f"(exit code {result.returncode}). "
            "Check that Maven Central is reachable (or that ~/.m2/settings.xml names a mirror) "
            f"and that Kafka {kafka_version} exists there.\n"
            f"command: {' '.join(command)}\nlast lines of its output:\n{tail(result.stdout)}"
        )
    return out
