"""How the kernels are built, found and loaded: the unity build's sources, the cache key's
source hash, the just-in-time cache's lock and failure memory (with real processes), a prebuilt
``_C`` built for another torch never being loaded, the reference fallback's single warning,
``python -m gaussocc_ops``, the optional gsplat, and the README's usage example."""

from __future__ import annotations

import importlib.machinery
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import gaussocc_ops as go
from gaussocc_ops import _build, _jit

CSRC = _jit.csrc_dir()
PKG = Path(go.__file__).resolve().parent
README = Path(__file__).resolve().parents[1] / "README.md"


def run_python(code: str, *, env: dict | None = None, cwd=None, timeout=300):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


# --- the unity build and the source hash ---------------------------------------------------


def test_unity_units_include_every_cpu_source_exactly_once(tmp_path):
    src = _build.find_sources(CSRC)
    units = _build.write_unity_sources(src, tmp_path, with_cuda=True)
    included = {}
    for unit in units:
        for rel in re.findall(r'#include "([^"]+)"', unit.read_text()):
            included.setdefault(rel, []).append(unit.name)
    rel = lambda files: {f.relative_to(CSRC).as_posix() for f in files}  # noqa: E731
    assert set(included) == rel(src.cpu) | rel(src.cuda_adapters)
    assert all(len(where) == 1 for where in included.values()), included
    cpu_units = [u for u in units if u.name.startswith("unity_cpu_")]
    assert len(cpu_units) == min(_build.CPU_GROUPS, len(src.cpu))
    # every CPU source is in a CPU unit, every adapter in the CUDA unit
    for path, (unit,) in included.items():
        assert unit.startswith("unity_cuda_") == path.startswith("cuda/")


def test_unchanged_unity_units_keep_their_mtime(tmp_path):
    # ninja decides what to recompile from mtimes: rewriting identical units would rebuild all
    src = _build.find_sources(CSRC)
    units = _build.write_unity_sources(src, tmp_path, with_cuda=False)
    past = time.time() - 1000
    for u in units:
        os.utime(u, (past, past))
    _build.write_unity_sources(src, tmp_path, with_cuda=False)
    assert all(abs(u.stat().st_mtime - past) < 1 for u in units)


def test_source_hash_follows_the_files_a_build_reads(tmp_path):
    csrc = tmp_path / "csrc"
    shutil.copytree(CSRC, csrc)
    cpu0, cuda0 = _build.source_hash(csrc, False), _build.source_hash(csrc, True)
    assert cpu0 == _build.source_hash(CSRC, False) and cpu0 != cuda0
    # a CUDA kernel is read by CUDA builds only
    kernel = csrc / "cuda" / "snog.cu"
    kernel.write_text(kernel.read_text() + "\n// edited\n")
    assert _build.source_hash(csrc, False) == cpu0
    cuda1 = _build.source_hash(csrc, True)
    assert cuda1 != cuda0
    # a shared header is read by both
    header = csrc / "include" / "gaussocc" / "common.h"
    header.write_text(header.read_text() + "\n// edited\n")
    assert _build.source_hash(csrc, False) != cpu0
    assert _build.source_hash(csrc, True) != cuda1


# --- the just-in-time cache: lock and failure memory ----------------------------------------

FAKE_BUILD = """
import os, sys, time
from pathlib import Path
from gaussocc_ops import _jit

started = Path(os.environ["STARTED_DIR"])

def arrived():
    # called by _jit.load right before it takes the lock (after the cache lookup)
    (started / str(os.getpid())).touch()

def fake_compile(csrc, build_dir, *args):
    # the real compile takes tens of seconds; this one lasts until every process has reached
    # the lock, and then 2 s more, so that they all wait for it while it is held
    with open(os.environ["COMPILES"], "a") as f:
        f.write(f"{os.getpid()}\\n")
    deadline = time.time() + 120
    while len(list(started.iterdir())) < int(os.environ["NPROC"]) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / (_jit.LIB_NAME + _jit.LIB_EXT)).write_bytes(b"not a real library")
    return 1.0

_jit._compile = fake_compile
_jit._check_tools = arrived
loaded = []
_jit._load_library = loaded.append
res = _jit.load([])
assert loaded == [Path(res.library)], loaded
print("compiled" if res.compiled_now else "loaded", res.library)
"""


def test_concurrent_first_use_compiles_once(tmp_path):
    nproc = 3
    started = tmp_path / "started"
    started.mkdir()
    env = {
        **os.environ,
        "GAUSSOCC_CACHE_DIR": str(tmp_path / "cache"),
        "STARTED_DIR": str(started),
        "COMPILES": str(tmp_path / "compiles.txt"),
        "NPROC": str(nproc),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FAKE_BUILD],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(nproc)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert len((tmp_path / "compiles.txt").read_text().split()) == 1
    verbs = sorted(out.split()[0] for out, _ in outs)
    assert verbs == ["compiled"] + ["loaded"] * (nproc - 1)
    libraries = {out.split()[1] for out, _ in outs}
    assert len(libraries) == 1 and str(tmp_path / "cache") in libraries.pop()
    # the others waited for the lock (and said so) rather than finding a finished build
    assert sum("waiting for another process" in err for _, err in outs) == nproc - 1


def test_failed_compile_is_remembered(tmp_path, monkeypatch):
    monkeypatch.setenv("GAUSSOCC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_jit, "_check_tools", lambda: None)
    calls = []

    def broken_compile(csrc, build_dir, *args):
        calls.append(build_dir)
        build_dir.mkdir(parents=True, exist_ok=True)
        try:
            raise RuntimeError("error: expected ';'")
        except RuntimeError as exc:  # what _compile does with a compiler error
            (build_dir / "build.log").write_text(str(exc))
            (build_dir / "failed.txt").write_text("RuntimeError; log: build.log")
            raise _jit.JitUnavailable("compiling the kernels failed (log: build.log)") from exc

    monkeypatch.setattr(_jit, "_compile", broken_compile)
    with pytest.raises(_jit.JitUnavailable, match="failed"):
        _jit.load([])
    with pytest.raises(_jit.JitUnavailable, match="failed before .* delete .* to try again"):
        _jit.load([])
    assert len(calls) == 1


def test_unwritable_cache_and_damaged_cache_entry_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(_jit, "_check_tools", lambda: None)
    monkeypatch.setattr(_jit, "_compile", lambda *a: pytest.fail("must not compile"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("GAUSSOCC_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    with pytest.raises(_jit.JitUnavailable, match="not writable.*GAUSSOCC_CACHE_DIR"):
        _jit.load([])
    # a finished-looking entry whose library is damaged: never compiled over, named instead
    monkeypatch.setenv("GAUSSOCC_CACHE_DIR", str(tmp_path / "cache"))
    with_cuda, archs, _ = _jit._cuda_plan()
    entry = tmp_path / "cache" / _jit._key(with_cuda, archs, _build.source_hash(CSRC, with_cuda))
    entry.mkdir(parents=True)
    (entry / (_jit.LIB_NAME + _jit.LIB_EXT)).write_bytes(b"\x7fELF damaged")
    (entry / "build.json").write_text("{}")
    match = "loading the cached kernels .* delete " + re.escape(str(entry))
    with pytest.raises(_jit.JitUnavailable, match=match):
        _jit.load([])


def test_cache_key_separates_torch_python_and_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("GAUSSOCC_CACHE_DIR", str(tmp_path))
    key = _jit._key(False, (), "ab" * 32)
    assert f"torch{torch.__version__}" in key
    assert f"py{sys.version_info[0]}{sys.version_info[1]}" in key and "abababab" in key
    assert _jit._key(False, (), "cd" * 32) != key
    assert _jit._key(True, ("8.0", "9.0"), "ab" * 32) != key
    assert _jit.cache_root() == tmp_path


# --- a prebuilt _C for another torch; no compiler ------------------------------------------


def copy_checkout(dest: Path) -> Path:
    """A checkout-shaped copy (src/gaussocc_ops + csrc) without any build products."""
    shutil.copytree(
        PKG,
        dest / "src" / "gaussocc_ops",
        ignore=shutil.ignore_patterns("_C*", "_build_config.py", "_csrc", "__pycache__"),
    )
    shutil.copytree(CSRC, dest / "csrc")
    return dest / "src"


def test_prebuilt_for_another_torch_is_not_loaded_and_no_compiler_warns_once(tmp_path):
    src = copy_checkout(tmp_path)
    pkg = src / "gaussocc_ops"
    # a "_C" that would fail loudly if anything tried to load it, built "for" another torch
    ext = "_C" + importlib.machinery.EXTENSION_SUFFIXES[0]
    (pkg / ext).write_bytes(b"\x7fELF this is not a loadable library")
    (pkg / "_build_config.py").write_text(
        _build.build_config_text(
            ext_file=ext,
            with_cuda=False,
            cuda_archs=(),
            torch_version="2.4.0+cpu",
            torch_git_version="0" * 40,
            torch_cuda_version=None,
            source_hash=_build.source_hash(tmp_path / "csrc", False),
            compiler="",
        )
    )
    code = """
    import sys, warnings
    import torch
    import gaussocc_ops as go
    mean = torch.tensor([[0.0, 0.0, 4.0]])
    g = go.Gaussians.isotropic(mean, 0.5, torch.ones(1), torch.ones(1, 2))
    K = torch.tensor([[[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]]])
    cams = go.Cameras(torch.eye(4)[None], K, width=16, height=16)
    grid = go.VoxelGrid((0.0, 0.0, 0.0), 1.0, (4, 1, 1))
    labels = torch.tensor([0, 0, 3, 0]).view(1, 4, 1, 1)
    o, d = torch.tensor([[[0.5, 0.5, 0.5]]]), torch.tensor([[[1.0, 0.0, 0.0]]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        auto = go.splat(g, cams)
        hit = go.raycast(labels, grid, o, d, empty_class=0)
    ref = go.splat(g, cams, backend="reference")
    assert torch.equal(auto.features, ref.features) and torch.equal(auto.alpha, ref.alpha)
    assert hit.label.tolist() == [[3]] and hit.distance.tolist() == [[1.5]]
    info = go.build_info()
    print("LOADED_C", "gaussocc_ops._C" in sys.modules)
    print("EXTENSION", info["extension"])
    print("ERROR", info["error"])
    print("NOTES", info["notes"])
    for w in caught:
        print("WARNING", w.message)
    """
    env = {
        "PYTHONPATH": str(src),
        "GAUSSOCC_CACHE_DIR": str(tmp_path / "cache"),
        "CXX": str(tmp_path / "no-such-compiler"),
        "GAUSSOCC_KERNELS": "auto",
    }
    res = run_python(code, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "LOADED_C False" in out and "EXTENSION False" in out
    assert "failed to load" not in out  # nothing even tried to load the file
    assert "built for torch 2.4.0+cpu and are not loaded into torch " + torch.__version__ in out
    assert "no C++ compiler" in out and "no-such-compiler" in out
    warnings_seen = [line for line in out.splitlines() if line.startswith("WARNING")]
    assert len(warnings_seen) == 1, warnings_seen  # two ops on the reference path, one warning
    assert "no C++ compiler" in warnings_seen[0] and "reference" in warnings_seen[0]
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.so"))


def test_import_loads_nothing_and_reference_mode_loads_nothing():
    res = run_python(
        """
        import os, sys
        import gaussocc_ops as go
        from gaussocc_ops import _ext
        compiler = "torch.utils.cpp_extension" in sys.modules
        print(_ext._state.attempted, "gsplat" in sys.modules, compiler)
        os.environ["GAUSSOCC_KERNELS"] = "reference"  # read when the kernels are first needed
        info = go.build_info()
        print(info["extension"], info["error"], "gaussocc_ops._C" in sys.modules)
        """
    )
    assert res.returncode == 0, res.stderr
    imported, loaded = res.stdout.splitlines()
    # import: no kernel loaded or compiled, no gsplat, not even torch's extension builder
    assert imported.split() == ["False", "False", "False"]
    assert loaded.split() == ["False", "GAUSSOCC_KERNELS=reference", "False"]


# --- python -m gaussocc_ops ---------------------------------------------------------------


def test_python_m_gaussocc_ops_reports_the_setup():
    info = go.build_info()
    res = subprocess.run(
        [sys.executable, "-m", "gaussocc_ops"], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert f"torch        {torch.__version__}" in out
    assert go.__version__ in out and str(PKG) in out
    assert f"JIT cache    {_jit.cache_root()}" in out
    if info["extension"]:
        assert f"library    {info['library']}" in out
        assert ("prebuilt at install" if info["source"] == "prebuilt" else "just-in-time") in out
        assert "CPU        yes" in out
    else:
        assert "kernels      NONE" in out and info["error"] in out
    path = subprocess.run(
        [sys.executable, "-m", "gaussocc_ops", "--ext-path"], capture_output=True, text=True
    )
    if info["extension"]:
        assert path.returncode == 0 and path.stdout.strip() == info["library"]
        assert Path(info["library"]).is_file()
    else:
        assert path.returncode == 1


# --- gsplat is optional ---------------------------------------------------------------------


def test_missing_gsplat_names_the_extra(monkeypatch):
    from gaussocc_ops import _gsplat

    monkeypatch.setitem(sys.modules, "gsplat", None)  # "import gsplat" now fails
    with pytest.raises(ImportError, match=re.escape("pip install 'gaussocc-ops[gsplat]'")):
        _gsplat._rasterization()


# --- the README ---------------------------------------------------------------------------


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_usage_example_runs_as_written():
    usage = README.read_text().split("## Usage", 1)[1]
    code = re.search(r"```python\n(.*?)```", usage, flags=re.S).group(1)
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    # what the comments of the example promise
    C, empty = scope["NUM_CLASSES"], scope["EMPTY"]
    assert torch.isfinite(scope["loss"]) and scope["logits"].grad.abs().sum() > 0
    image, occ = scope["image"], scope["occ"]
    assert image.features.shape[-1] == C - 1 and image.depth.shape[-1] == 1
    probs = occ.probs
    assert probs.shape[1] == C  # the labels' space: 17 classes + the empty one at EMPTY
    torch.testing.assert_close(probs.sum(1), torch.ones_like(probs[:, 0]))
    torch.testing.assert_close(probs[:, empty], 1 - occ.occupancy)


def test_readme_examples_share_one_empty_class_convention():
    values = set()
    for block in readme_python_blocks():
        values |= set(re.findall(r"empty_class=([\w.]+)", block))
    assert len(values) == 1, values
