"""The compiled mapper: ``semconv/`` built with mypyc, used only while it matches the sources.

Mapping is most of the collector's CPU (decode, dialect rules, row building). ``semconv`` stays
plain, type-checked Python; ``spanfuse build-mapper`` (run by ``make run`` and ``make test``)
compiles that same source with mypyc into ``build/native/<digest>/``, together with the package's
C extensions (``semconv/*.c``, each with a ``.pyi`` stub for mypy; the Python they speed up stays
the fallback), where the digest covers every ``semconv`` source file and the interpreter's ABI.
:func:`activate` — called when the ``collector`` package is imported, before anything imports
``semconv`` — puts a finder in front of the import system that loads ``semconv``'s modules from
the build of the current digest. A source edited since the build, no build, or
``SPANFUSE_NATIVE=0`` means plain Python: a stale build is never loaded, so the compiled modules
always behave as the code on disk reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

PACKAGE = "semconv"
# mypyc puts the code of all compiled modules in one shared library, a module of this name.
_GROUP = f"{PACKAGE}.native"
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
_DISABLE_ENV = "SPANFUSE_NATIVE"
_ROOT_ENV = "SPANFUSE_NATIVE_DIR"
_KEEP_BUILDS = 3  # older builds are removed by the next build
_MARKER = "COMPLETE"  # written last: a build without it is incomplete and never loaded


def source_dir() -> Path:
    """The ``semconv`` package directory (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {PACKAGE!r} not found")
    return Path(next(iter(spec.submodule_search_locations)))


def builds_root() -> Path:
    """Where builds live: ``$SPANFUSE_NATIVE_DIR``, else ``build/native`` beside the package."""
    configured = os.environ.get(_ROOT_ENV)
    return Path(configured) if configured else source_dir().parent / "build" / "native"


_SOURCE_SUFFIXES = (".py", ".pyi", ".c")


def sources(package_dir: Path) -> list[Path]:
    """Every source file of the package, in a stable order (what the digest covers): the Python
    mypyc compiles, and the C extensions (``*.c``, each with a ``.pyi`` stub) built beside it."""
    return sorted(p for p in package_dir.rglob("*") if p.suffix in _SOURCE_SUFFIXES and p.is_file())


def source_digest(package_dir: Path | None = None) -> str:
    """A digest of every ``semconv`` source file and the interpreter ABI the build is for."""
    package_dir = package_dir or source_dir()
    digest = hashlib.sha256(f"{sys.implementation.cache_tag}{EXT_SUFFIX}".encode())
    for path in sources(package_dir):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


class _CompiledFinder(importlib.abc.MetaPathFinder):
    """Finds ``semconv.*`` modules in one build; what the build lacks (the package
    ``__init__`` files) the regular finders load from the sources."""

    def __init__(self, build: Path) -> None:
        self.build = build

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(PACKAGE + "."):
            return None
        *package, name = fullname.split(".")
        library = self.build.joinpath(*package, name + EXT_SUFFIX)
        if not library.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, library)


def active_build() -> Path | None:
    """The build :func:`activate` installed, if any."""
    for finder in sys.meta_path:
        if isinstance(finder, _CompiledFinder):
            return finder.build
    return None


def activate() -> Path | None:
    """Load ``semconv`` from the build matching its sources; return that build, or None (plain Python).

    Does nothing once ``semconv`` modules are imported (mixing the two would be worse than either).
    """
    if (active := active_build()) is not None:
        return active
    if os.environ.get(_DISABLE_ENV, "1") == "0":
        return None
    if any(name.startswith(PACKAGE + ".") for name in sys.modules):
        return None
    try:
        build = builds_root() / source_digest()
    except (OSError, RuntimeError):
        return None
    if not (build / _MARKER).is_file():
        return None
    sys.meta_path.insert(0, _CompiledFinder(build))
    return build


def build(force: bool = False) -> Path:
    """Compile ``semconv`` into ``builds_root()/<digest>`` (nothing to do if that build exists).

    The build is made in a temporary directory and renamed into place, so a build cut short is
    never loaded. Needs the ``native`` extra (mypy, setuptools) and a C compiler.
    """
    package_dir = source_dir()
    root = builds_root()
    digest = source_digest(package_dir)
    target = root / digest
    if (target / _MARKER).is_file() and not force:
        return target
    # Imported here: only building needs mypyc, never running.
    from mypyc.build import mypycify
    from setuptools import Distribution, Extension

    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=root))
    files = sources(package_dir)
    modules = [p for p in files if p.suffix == ".py" and p.name != "__init__.py"]
    c_sources = [p for p in files if p.suffix == ".c"]
    cwd = Path.cwd()
    os.chdir(package_dir.parent)  # mypy names modules by their path from here
    try:
        paths = [str(p.relative_to(package_dir.parent)) for p in modules]
        extensions = mypycify(
            ["--cache-dir", str(work / "mypy-cache"), *paths],
            group_name=_GROUP,
            target_dir=str(work / "c"),
        )
        for path in c_sources:  # e.g. semconv/_encoded_span.c -> semconv._encoded_span
            module = ".".join(path.relative_to(package_dir.parent).with_suffix("").parts)
            extensions.append(Extension(module, [str(path.relative_to(package_dir.parent))]))
        dist = Distribution({"name": "spanfuse-native", "ext_modules": extensions})
        command = dist.get_command_obj("build_ext")
        command.build_lib = str(work / "lib")
        command.build_temp = str(work / "obj")
        command.parallel = os.cpu_count() or 1
        dist.run_command("build_ext")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        os.chdir(cwd)
    built = work / "lib"
    (built / _MARKER).write_text(digest + "\n")
    if target.exists():
        shutil.rmtree(target)
    try:
        built.rename(target)
    except OSError:
        if not (target / _MARKER).is_file():  # else another build of the same sources won the race
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _prune(root, keep=target)
    return target


def _prune(root: Path, keep: Path) -> None:
    """Remove all but the newest few builds (a checkout of another commit may want one back)."""
    builds = sorted(
        (p for p in root.iterdir() if p.is_dir() and p != keep and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in builds[_KEEP_BUILDS - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def build_logged(force: bool = False, verbose: bool = False) -> Path:
    """:func:`build`, with the compiler's output in ``build.log`` beside the builds (its tail
    printed if the build fails) unless ``verbose``. ``spanfuse build-mapper`` runs this."""
    if verbose:
        return build(force)
    root = builds_root()
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "build.log"
    try:
        with _output_to(log_path):
            return build(force)
    except BaseException:
        lines = log_path.read_text(errors="replace").splitlines()
        print("\n".join(lines[-40:]), file=sys.stderr)
        raise


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr, the compiler's included, to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
