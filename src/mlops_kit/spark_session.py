"""A Spark session on loopback: ``local[2]`` by default, or a standalone cluster's ``spark://`` URL.

Spark is an optional extra (``pip install 'mlops-kit[spark]'``, Java 17): pyspark is imported here,
inside the functions, never when the kit is imported. Everything binds to 127.0.0.1
(``SPARK_LOCAL_IP``, ``spark.driver.host`` / ``bindAddress``): otherwise the driver advertises the
machine's other address. The Python workers run this interpreter (``PYSPARK_PYTHON``), the one
that has the kit, pandas and scikit-learn; a worker with another Python could not load the model.

Before a session is created the cheap checks run, each failing with what to do: pyspark is
installed, ``java`` is there (and 17 or newer), and a ``spark://`` master accepts connections on its
port within a second or two, instead of Spark retrying for a minute.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

HOST = "127.0.0.1"
LOCAL = "local[2]"  # the default master: two cores of this machine, no cluster
JAVA_PACKAGE = "openjdk-17-jre-headless"
JAVA_MIN = 17  # pyspark 4 runs on Java 17 or 21
JAVA_HINT = f"install Java 17: apt-get install -y {JAVA_PACKAGE} (or `make system-deps`)"
PYSPARK_HINT = "install the Spark extra: pip install 'mlops-kit[spark]' (or `make test`)"


class SparkError(RuntimeError):
    """Spark cannot run here or cannot reach its master; the message says why and what to do."""


def spark_home() -> Path:
    """The pyspark package's folder: it holds Spark's jars and ``bin/spark-class``."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise SparkError(f"pyspark is not installed: {PYSPARK_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def java() -> Path:
    """The ``java`` Spark will run (``JAVA_HOME``'s, else the one on PATH); SparkError if none."""
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else None
    if found is None or not found.exists():
        on_path = shutil.which("java")
        found = Path(on_path) if on_path else None
    if found is None:
        raise SparkError(f"Spark needs Java and no `java` was found: {JAVA_HINT}")
    return found


def java_version(binary: Path) -> int:
    """The major version of a java binary (17 for ``openjdk version "17.0.15"``)."""
    try:
        done = subprocess.run([str(binary), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SparkError(f"{binary} -version failed ({exc}): {JAVA_HINT}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if match is None:
        raise SparkError(f"cannot read the version of {binary}: {JAVA_HINT}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def check_java() -> Path:
    """The java binary, checked to be 17 or newer; SparkError naming the fix otherwise."""
    binary = java()
    version = java_version(binary)
    if version < JAVA_MIN:
        raise SparkError(
            f"Spark 4 needs Java {JAVA_MIN} or newer, {binary} is Java {version}: {JAVA_HINT}"
        )
    return binary


def master_address(master: str) -> tuple[str, int]:
    """(host, port) of a ``spark://host:port`` URL; SparkError if it is not one."""
    parsed = urlparse(master)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "spark" or not parsed.hostname or port is None:
        raise SparkError(
            f"--master {master!r} is not a standalone master URL: write spark://HOST:PORT "
            f"(`mlops-kit spark up` prints it), or leave it out for {LOCAL}"
        )
    return parsed.hostname, port


def check_master(master: str, timeout: float = 2.0) -> None:
    """A ``spark://`` master accepts TCP connections on its port; SparkError naming the fix if not."""
    host, port = master_address(master)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    raise SparkError(
        f"the Spark master {master} does not answer ({reason}): start the kit's cluster with "
        "`mlops-kit spark up` (or `make spark-up`) and pass the URL it prints, or leave out "
        f"--master to run on {LOCAL}"
    )


def spark_env() -> dict[str, str]:
    """The variables a Spark process of the kit needs: loopback, this Python, pyspark's Spark."""
    return {
        "SPARK_LOCAL_IP": HOST,
        "SPARK_HOME": str(spark_home()),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }


def check(master: str | None = None) -> str:
    """Run the cheap checks (pyspark, Java, the master answers) and return the master to use."""
    master = master or LOCAL
    spark_home()
    check_java()
    if not master.startswith("local"):
        check_master(master)
    return master


def session(
    master: str | None = None,
    app_name: str = "mlops-kit",
    *,
    driver_memory: str = "768m",
    executor_memory: str = "512m",
    shuffle_partitions: int = 4,
    ui: bool = False,
    progress: bool = False,
) -> Any:
    """A SparkSession on ``master`` (default ``local[2]``), bound to 127.0.0.1, quiet.

    An active session on another master is stopped first: one driver talks to one master. The UI
    is off unless asked for (then it listens on 127.0.0.1:4040 or the next free port);
    ``progress`` shows Spark's own progress bar of each stage on the terminal.
    """
    master = check(master)
    os.environ.update(spark_env())  # read by the JVM the builder starts and by its workers
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master != master:
        active.stop()
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.driver.host", HOST)
        .config("spark.driver.bindAddress", HOST)
        .config("spark.driver.memory", driver_memory)
        .config("spark.executor.memory", executor_memory)
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.files.maxPartitionBytes", "32m")  # tasks of ~700k penguin rows
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "true" if ui else "false")
        .config("spark.ui.showConsoleProgress", "true" if progress else "false")
    )
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - the JVM's failures come as several types
        raise SparkError(f"Spark could not start on {master}: {exc}") from exc
    spark.sparkContext.setLogLevel("ERROR")
    return spark
