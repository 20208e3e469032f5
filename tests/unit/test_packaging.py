"""Static checks of what cannot run here (the Dockerfiles, the Kubernetes manifests) and of the code's shape:
MLflow writing in one module, the demo outside production code, one torch version, every other locked."""
import ast
import functools
import importlib.metadata
import importlib.util
import itertools
import os
import re
import shlex
import shutil
import subprocess

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

TRACKING_CALLS = {"start_run", "end_run", "create_run", "search_runs", "set_terminated", "set_tag", "set_tags",
                  "log_batch", "log_metric", "log_metrics", "log_param", "log_params", "log_artifact",
                  "log_artifacts", "log_dict", "log_text", "log_input", "log_inputs", "log_outputs", "log_model",
                  "log_model_artifacts", "create_logged_model", "create_model_version"}


def _makefile_torch() -> str:
    return re.search(r"^TORCH_SPEC \?= torch==(\S+)", (REPO / "Makefile").read_text(), re.M).group(1)


# The Dockerfiles, .dockerignore and docker/build.sh cannot run here (no container engine): they are read as Docker
# reads them.

DOCKERFILES = {"gpu": REPO / "docker" / "Dockerfile.gpu", "cpu": REPO / "docker" / "Dockerfile.cpu"}
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
DIGEST_PINNED = re.compile(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}")


def _instructions(text: str) -> list[tuple[str, str]]:
    """A Dockerfile's instructions as (INSTRUCTION, arguments): lines continued with a trailing backslash joined as
    Docker joins them (backslash and newline removed), comment and blank lines dropped, also inside a continuation."""
    out, parts = [], []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        instruction, _, args = "".join([*parts, line]).strip().partition(" ")
        out.append((instruction.upper(), args.strip()))
        parts = []
    assert not parts, "the last instruction ends in a continuation"
    return out


class Dockerfile:
    def __init__(self, kind: str):
        self.kind = kind
        self.instructions = _instructions(DOCKERFILES[kind].read_text())
        # every ARG's default, global (before FROM) or of the stage: what a build without --build-arg uses
        self.args = dict(a.split("=", 1) for i, a in self.instructions if i == "ARG" and "=" in a)

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: self.args.get(m[1] or m[2], m[0]), text)

    def index(self, instruction: str, pattern: str) -> int:
        """The position of the first `instruction` whose arguments match `pattern`."""
        found = [n for n, (i, a) in enumerate(self.instructions) if i == instruction and re.search(pattern, a)]
        assert found, f"Dockerfile.{self.kind} has no {instruction} matching {pattern!r}"
        return found[0]

    def get(self, instruction: str, pattern: str = "") -> str:
        return self.instructions[self.index(instruction, pattern)][1]

    def pip_installs(self) -> list[tuple[int, list[str]]]:
        """(position, arguments after `pip install`, build arguments expanded) of every pip install in a RUN."""
        installs = []
        for n, (instruction, args) in enumerate(self.instructions):
            if instruction != "RUN":
                continue
            for words in _shell_commands(self.expand(args)):
                if words[:2] == ["pip", "install"]:
                    installs.append((n, words[2:]))
        return installs

    def copies(self) -> list[str]:
        """The sources of every COPY (flags left out)."""
        sources = []
        for instruction, args in self.instructions:
            if instruction in ("COPY", "ADD"):
                words = [w for w in shlex.split(args) if not w.startswith("--")]
                sources += words[:-1]
        return sources

    def smoke_test(self) -> ast.Module:
        """The Python of the RUN that imports the installed project."""
        code = re.search(r'python -c "(.*)"', self.get("RUN", r"python -c \"import"), re.S)[1]
        return ast.parse(code)


def _shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a RUN's shell line, as words (quotes honoured; `then`/`else`/`do` and redirections
    dropped): enough for `a && b; if c; then d; fi`."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|>")
    lexer.whitespace_split = True
    commands, words, redirected = [], [], False
    for token in [*lexer, ";"]:
        if token in (";", "&&", "||", "|", "&"):
            commands.append(words)
            words, redirected = [], False
        elif token == ">" or redirected:
            redirected = token == ">"
        elif words or token not in ("then", "else", "do"):
            words.append(token)
    return [c for c in commands if c]


def _packages(pip_args: list[str]) -> list[str]:
    """The requirements named on a pip install command line (option values left out)."""
    takes_value = {"--index-url", "-i", "--extra-index-url", "-c", "--constraint", "-r", "--requirement"}
    names, skip = [], False
    for word in pip_args:
        if skip:
            skip = False
        elif word in takes_value:
            skip = True
        elif not word.startswith("-"):
            names.append(word)
    return names


def _option(pip_args: list[str], option: str) -> str | None:
    return pip_args[pip_args.index(option) + 1] if option in pip_args else None


def _requirements_helper():
    spec = importlib.util.spec_from_file_location("docker_requirements", REPO / "docker" / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dockerfile_reader_joins_continuations_as_docker_does():
    text = ("# a comment\nARG A=1\n\nRUN echo one \\\n    # a comment inside\n    && echo \"$A\" \\\n\n"
            "    && echo two\nUSER 1000:1000\n")
    assert _instructions(text) == [("ARG", "A=1"), ("RUN", 'echo one     && echo "$A"     && echo two'),
                                   ("USER", "1000:1000")]


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_base_image_is_pinned_by_digest_through_a_build_arg(kind):
    image = Dockerfile(kind)
    assert image.instructions[0][0] == "ARG" and image.instructions[0][1].startswith("BASE_IMAGE=")
    assert [a for i, a in image.instructions if i == "FROM"] == ["${BASE_IMAGE}"], "one stage, FROM the build arg"
    base = image.args["BASE_IMAGE"]
    assert DIGEST_PINNED.fullmatch(base), base
    assert base.startswith("python:3.11-slim@")


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_the_image_runs_as_a_fixed_non_root_user_with_writable_caches(kind):
    image = Dockerfile(kind)
    users = [a for i, a in image.instructions if i == "USER"]
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) == 1000, "a numeric uid, so that Kubernetes' runAsNonRoot can check it"
    env = dict(re.findall(r"(\w+)=(\S+)", image.get("ENV", r"\bHOME=")))
    assert env["HOME"] == "/home/seavl"
    for cache in ("HF_HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR"):
        assert env[cache].startswith(env["HOME"] + "/"), cache
    user = image.get("RUN", "useradd")
    assert "--uid 1000" in user and "chown -R 1000:0 /home/seavl" in user
    # made before anything is installed (a layer that never changes), and the smoke test runs as that user
    assert image.index("RUN", "useradd") < image.index("RUN", "pip install")
    assert image.index("USER", "") < image.index("RUN", r"python -c \"import")


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_torch_is_the_makefiles_pin_from_the_pytorch_index(kind):
    image = Dockerfile(kind)
    assert image.args["TORCH_VERSION"] == _makefile_torch()
    index = {"gpu": r"https://download\.pytorch\.org/whl/cu\d{3}", "cpu": r"https://download\.pytorch\.org/whl/cpu"}
    assert re.fullmatch(index[kind], image.args["TORCH_INDEX_URL"])
    torch = [args for _, args in image.pip_installs() if "torch" in " ".join(_packages(args))]
    assert torch and _packages(torch[0]) == [f"torch=={_makefile_torch()}"]
    assert _option(torch[0], "--index-url") == image.args["TORCH_INDEX_URL"]
    # the dependencies that follow are installed under that pin, so that none of them swaps the build
    deps = image.get("RUN", "requirements.txt")
    assert 'echo "torch==${TORCH_VERSION}" > /tmp/constraints.txt' in deps and "-c /tmp/constraints.txt" in deps


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_torchvision_is_never_installed_by_name(kind):
    image = Dockerfile(kind)
    named = [p for _, args in image.pip_installs() for p in _packages(args)]
    assert named and not [p for p in named if re.match(r"torchvision|timm|open.clip", p, re.I)]
    if kind == "cpu":
        pytest.importorskip("tomllib")
        # nor through the dependencies: the CPU image installs no extra, and its smoke test checks it
        required = _requirements_helper().requirements(str(REPO / "pyproject.toml"), [])
        assert not [r for r in required if re.match(r"torchvision|timm|open.clip", r, re.I)]
        asserts = [ast.unparse(n.test) for n in ast.walk(image.smoke_test()) if isinstance(n, ast.Assert)]
        assert "importlib.util.find_spec('torchvision') is None" in asserts
    else:
        # open-clip-torch (the gpu extra) depends on torchvision: it must resolve from the index of this torch's CUDA
        deps = next(args for _, args in image.pip_installs() if "-r" in args)
        assert _option(deps, "--extra-index-url") == image.args["TORCH_INDEX_URL"]


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_copies_only_the_package_sources(kind):
    sources = Dockerfile(kind).copies()
    assert sorted(sources) == ["README.md", "components", "docker/requirements.py", "pipelines", "pyproject.toml",
                               "requirements.lock"]
    assert not [s for s in sources if s in (".", "./") or re.match(r"\.?/?(demo|tests)\b", s)]


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_layers_are_ordered_for_cache_reuse(kind):
    image = Dockerfile(kind)
    order = [image.index("RUN", "useradd"),
             image.index("RUN", r"pip install --index-url"),            # torch
             image.index("COPY", r"^pyproject\.toml "),
             image.index("RUN", r"requirements\.py pyproject\.toml"),   # the dependencies, from pyproject.toml only
             image.index("COPY", r"^README\.md "),
             image.index("COPY", "^components "),
             image.index("COPY", "^pipelines "),
             image.index("RUN", r"pip install --no-deps \."),           # the project itself
             image.index("RUN", r"python -c \"import")]                 # the smoke test
    assert order == sorted(order), order
    # nothing but pyproject.toml, the lock (and the helper reading pyproject.toml) is copied before the dependencies
    # are installed
    copied_first = [args for instruction, args in image.instructions[:order[3]] if instruction == "COPY"]
    assert copied_first == ["pyproject.toml requirements.lock ./", "docker/requirements.py docker/"]
    if kind == "gpu":
        assert order[3] < image.index("RUN", "vllm") < order[4], "vLLM (optional) before the code"
        assert image.args["WITH_VLLM"] == "0"
    # the tag last: a new tag rebuilds nothing
    assert image.instructions[-2:] == [("ARG", "IMAGE_TAG=unknown"), ("ENV", "SEAVL_IMAGE_TAG=${IMAGE_TAG}")]


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_the_project_is_installed_checked_and_imported(kind):
    image = Dockerfile(kind)
    install = image.get("RUN", r"pip install --no-deps \.")
    assert re.search(r"pip install --no-deps \.(\[gpu\])?( |$)", install) and "pip check" in install
    deps = image.get("RUN", r"requirements\.py pyproject\.toml")
    extras = {"gpu": ["gpu"], "cpu": []}[kind]
    assert re.search(r"python docker/requirements\.py pyproject\.toml(.*?) >", deps)[1].split() == extras
    smoke = image.smoke_test()
    imported = {a.name for n in ast.walk(smoke) if isinstance(n, ast.Import) for a in n.names}
    ours = {m for m in imported if m.split(".")[0] in ("components", "pipelines")}
    assert ours and all((REPO / (m.replace(".", "/") + ".py")).is_file() for m in ours), ours
    assert "torch" in imported
    if kind == "gpu":
        assert {"open_clip", "pynvml"} <= imported, "the gpu extra imports"
    asserts = [ast.unparse(n.test) for n in ast.walk(smoke) if isinstance(n, ast.Assert)]
    assert "importlib.util.find_spec('demo') is None" in asserts, "pip install . must not package the demo"
    assert any("TORCH_VERSION" in a for a in asserts)


def test_the_gpu_extra_is_what_pyproject_declares():
    tomllib = pytest.importorskip("tomllib")  # the helper runs in the images' Python 3.11
    helper = _requirements_helper()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert helper.requirements(str(REPO / "pyproject.toml"), []) == project["dependencies"]
    gpu = helper.requirements(str(REPO / "pyproject.toml"), ["gpu"])
    assert gpu == project["dependencies"] + project["optional-dependencies"]["gpu"]
    assert any(r.startswith("open-clip-torch") for r in gpu) and any(r.startswith("nvidia-ml-py") for r in gpu)
    with pytest.raises(SystemExit, match="no extra cuda"):
        helper.requirements(str(REPO / "pyproject.toml"), ["cuda"])


# requirements.lock: every version the images install (`make lock`), the constraints of both images' dependency
# layer and of `make install`.

LOCK = REPO / "requirements.lock"
# what the lock is resolved for: the images' CPython 3.11 on x86_64 Linux
LOCK_ENVIRONMENT = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
                    "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                    "implementation_name": "cpython", "platform_python_implementation": "CPython"}
# torch's CUDA runtime, which each torch build pins itself and the CPU build lacks: never in the lock
CUDA_RUNTIME = re.compile(r"(nvidia-(?!ml-py$)|cuda-|triton$)")


def _lock_requirements() -> list[Requirement]:
    return [Requirement(line.partition("#")[0]) for line in LOCK.read_text().splitlines()
            if line.partition("#")[0].strip()]


@functools.cache
def _lock() -> dict[str, Version]:
    """requirements.lock as {canonical name: the pinned version}."""
    return {canonicalize_name(r.name): Version(next(iter(r.specifier)).version) for r in _lock_requirements()}


def _pinned(version: Version, installed: str) -> bool:
    """Whether `installed` is the pinned `version`: a local build (2.13.0+cpu, 0.28.0+cu128) is, as pip sees it."""
    return Requirement(f"x=={version}").specifier.contains(installed, prereleases=True)


def test_every_line_of_the_lock_is_an_exact_pin():
    requirements = _lock_requirements()
    assert len(requirements) > 100, "the transitive dependencies too"
    for r in requirements:
        specifiers = list(r.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==" and "*" not in specifiers[0].version, str(r)
        assert not r.extras and r.marker is None and r.url is None, str(r)
    names = [canonicalize_name(r.name) for r in requirements]
    assert len(names) == len(set(names)), "one pin a distribution"
    assert not [n for n in names if CUDA_RUNTIME.match(n)], "torch's CUDA runtime is the torch build's own"
    assert "sealion-vl-pipelines" not in names, "the project is installed from its code, --no-deps"
    header = "\n".join(itertools.takewhile(lambda line: line.startswith("#"), LOCK.read_text().splitlines()))
    assert "`make lock` writes it" in header and "TORCH_SPEC" in header, "the header says how it is made"


def test_the_lock_meets_every_requirement_of_pyproject():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = _lock()
    unmet = []
    for line in project["dependencies"] + project["optional-dependencies"]["gpu"]:
        r = Requirement(line)
        if r.marker and not r.marker.evaluate(LOCK_ENVIRONMENT):
            continue
        name = canonicalize_name(r.name)
        if name not in lock or not r.specifier.contains(lock[name], prereleases=True):
            unmet.append(f"{line} (locked: {lock.get(name)})")
    assert unmet == [], "run make lock"
    # and the test extra's, where it names a locked distribution (mlflow[auth] must be the locked mlflow)
    for line in project["optional-dependencies"]["test"]:
        r = Requirement(line)
        if canonicalize_name(r.name) in lock:
            assert r.specifier.contains(lock[canonicalize_name(r.name)], prereleases=True), line


def test_the_lock_pins_the_makefiles_torch_and_a_torchvision_of_it():
    lock = _lock()
    assert lock["torch"] == Version(_makefile_torch())
    # the gpu extra's torchvision (through open-clip-torch) is the release built for that torch: torchvision 0.N+15
    # goes with torch 2.N (0.28 with 2.13), and pins it
    torch_major, torch_minor = lock["torch"].release[:2]
    assert torch_major == 2 and lock["torchvision"].release[:2] == (0, torch_minor + 15)


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _dependencies_installed(name: str) -> set[str]:
    """The distributions `name` needs (its [project] dependencies, no extra), transitively, as installed here."""
    seen, todo = set(), [(canonicalize_name(name), frozenset())]
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        current, extras = key
        try:
            requires = importlib.metadata.distribution(current).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue  # pip check (make install) fails on a missing one
        for r in map(Requirement, requires):
            if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in (extras or {""})):
                todo.append((canonicalize_name(r.name), frozenset(r.extras)))
    return {n for n, _ in seen} - {canonicalize_name(name)}


def test_the_venv_has_the_locked_versions():
    """`make install` installs under the lock, so the tests run the images' versions (the test tools aside)."""
    if _installed("sealion-vl-pipelines") is None:
        pytest.skip("the project is not installed here (make install)")
    lock = _lock()
    installed = {name: _installed(name) for name in lock}
    drifted = [f"{n}: {v} installed, {lock[n]} locked" for n, v in installed.items()
               if v is not None and not _pinned(lock[n], v)]
    assert drifted == [], "make install (or make lock, after an edit of pyproject.toml)"
    assert installed.get("torch") and installed.get("pandas"), "the lock names what is installed here"
    # and the lock holds all the project needs: nothing it depends on here was installed unpinned
    unlocked = _dependencies_installed("sealion-vl-pipelines") - set(lock)
    assert unlocked == set(), "make lock"


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_the_dependencies_are_installed_under_the_lock_before_the_code(kind):
    image = Dockerfile(kind)
    deps_at = image.index("RUN", r"requirements\.py pyproject\.toml")
    deps = [args for n, args in image.pip_installs() if n == deps_at]
    assert len(deps) == 1
    constraints = [deps[0][i + 1] for i, w in enumerate(deps[0]) if w in ("-c", "--constraint")]
    assert "requirements.lock" in constraints
    # the lock is copied into the WORKDIR that RUN starts in, before that layer and before the code
    copy_at = image.index("COPY", r"(^| )requirements\.lock ")
    assert shlex.split(image.instructions[copy_at][1])[-1] == "./"
    assert image.index("WORKDIR", "") < copy_at < deps_at < image.index("COPY", "^components ")
    # every other pip install is torch at the Makefile's pin, vLLM (the optional image, outside the lock) or the
    # project with --no-deps: nothing else is installed unlocked
    for n, args in image.pip_installs():
        if n != deps_at:
            assert (_packages(args) in ([f"torch=={_makefile_torch()}"], [f"vllm=={image.args.get('VLLM_VERSION')}"])
                    or args == ["--no-deps", "."]), args


def _make_dry_run(*targets: str) -> str:
    """The commands `make` would run for `targets` (all of them, as if nothing were up to date), run nothing."""
    done = subprocess.run(["make", "--dry-run", "--always-make", *targets], cwd=REPO, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.replace("\\\n", " ")  # a command continued on the next line, as one


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_install_installs_under_the_lock_and_make_audit_checks_it():
    install = [line for line in _make_dry_run("install").splitlines() if "pip install" in line]
    assert install and all("-c requirements.lock" in line for line in install if "--upgrade pip" not in line)
    assert any('-e ".[test]"' in line for line in install)
    # the lock is written by uv from pyproject.toml, its gpu extra and the Makefile's torch
    lock = _make_dry_run("lock")
    compile_line = next(line for line in lock.splitlines() if "uv pip compile" in line)
    assert f'"torch=={_makefile_torch()}"' in compile_line and "pyproject.toml - --extra gpu" in compile_line
    # `make audit`: pip-audit on the pins of the lock as they are, failing on any it could not check
    audit = next(line for line in _make_dry_run("audit").splitlines() if re.match(r"\S*/pip-audit ", line))
    words = shlex.split(audit.split("||")[0])
    assert words[words.index("--requirement") + 1] == "requirements.lock"
    assert {"--no-deps", "--strict", "--timeout"} <= set(words)
    # not part of make test (it needs the vulnerability database, on the network)
    assert "pip-audit" not in _make_dry_run("test")


def _glob(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as a regular expression: `*` and `?` stop at `/`, `**` does not."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] in "*?":
            out, i = out + ("[^/]*" if pattern[i] == "*" else "[^/]"), i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i:end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


@functools.cache
def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _dockerignored(path: str) -> bool:
    """Whether Docker leaves `path` out of the build context: the last pattern matching it or a folder above it
    decides, `!` letting it back in."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for pattern in _dockerignore():
        negated = pattern.startswith("!")
        regex = _glob(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(p) for p in prefixes):
            ignored = not negated
    return ignored


def test_dockerignore_leaves_out_all_but_what_the_images_copy():
    for path in (".venv/bin/python", ".git/HEAD", ".seavl/demo/model.safetensors", "demo/build.py",
                 "tests/unit/test_packaging.py", "seahelm-out/responses/MODEL",
                 "sealion_vl_pipelines.egg-info/PKG-INFO", "sealion_vl_pipeline.yaml",
                 "build/lib/components/__init__.py", "mlruns/0/meta.yaml",
                 "components/__pycache__/__init__.cpython-311.pyc", "pipelines/configs/__pycache__/x.pyc",
                 "docker/build.sh"):
        assert _dockerignored(path), path
    # every COPY source is sent, with all it holds (bar caches): the package data too
    sources = {s for kind in DOCKERFILES for s in Dockerfile(kind).copies()}
    files = [f.relative_to(REPO).as_posix() for s in sources for f in [REPO / s, *(REPO / s).rglob("*")]
             if f.is_file() and "__pycache__" not in f.parts]
    assert "pipelines/configs/demo.yaml" in files and "components/evaluate/seahelm/prompts.yaml" in files
    assert [f for f in files if _dockerignored(f)] == []
    # and nothing else at the root
    sent = {p.name for p in REPO.iterdir() if not _dockerignored(p.name)}
    assert sent == {"README.md", "components", "pipelines", "pyproject.toml", "requirements.lock"}
    assert [f.name for f in (REPO / "docker").iterdir() if not _dockerignored(f"docker/{f.name}")] == \
        ["requirements.py"]


def _build_sh(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "docker" / "build.sh"), *args], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], **env}, timeout=10)


DIGEST = "python:3.11-slim@sha256:" + "ab" * 32


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_build_script_passes_the_tag_the_torch_pin_and_the_base_image():
    from components.common import images

    assert os.access(REPO / "docker" / "build.sh", os.X_OK)
    done = _build_sh("--dry-run", "--push", "reg.local/team/", TAG="0.1.0-abc1234", BASE_IMAGE=DIGEST,
                     CPU_BASE_IMAGE=DIGEST.replace("ab", "cd", 1))
    assert done.returncode == 0, done.stderr
    commands = [shlex.split(line) for line in done.stdout.splitlines()]
    assert [c[:2] for c in commands] == [["docker", "build"]] * 2 + [["docker", "push"]] * 2
    for command, kind, image in ((commands[0], "gpu", images.GPU_IMAGE), (commands[1], "cpu", images.CPU_IMAGE)):
        build_args = dict(command[n + 1].split("=", 1) for n, w in enumerate(command) if w == "--build-arg")
        assert build_args == {"BASE_IMAGE": DIGEST if kind == "gpu" else DIGEST.replace("ab", "cd", 1),
                              "TORCH_VERSION": _makefile_torch(), "IMAGE_TAG": "0.1.0-abc1234"}
        assert command[command.index("-f") + 1] == f"docker/Dockerfile.{kind}" and command[-1] == "."
        tagged = images.retag(image, "0.1.0-abc1234", "reg.local/team")
        assert command[command.index("-t") + 1] == tagged
        assert ["docker", "push", tagged] in commands[2:]
    # without --push, nothing is pushed; --only builds one; extra build args pass through, and the vLLM image (vLLM's
    # torch) never takes the name of the training image
    done = _build_sh("--dry-run", "--only", "gpu", "--build-arg", "WITH_VLLM=1", "--registry", "reg.local/team",
                     TAG="t", BASE_IMAGE=DIGEST)
    assert [c[:3] for c in map(shlex.split, done.stdout.splitlines())] == [["docker", "build", "-f"]]
    command = shlex.split(done.stdout)
    assert "WITH_VLLM=1" in command and command[command.index("-t") + 1] == "reg.local/team/sealion-vl-gpu-vllm:t"


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_build_script_refuses_an_unpinned_or_placeholder_base_image():
    assert PLACEHOLDER_DIGEST in (REPO / "docker" / "build.sh").read_text()
    placeholder = _build_sh("--dry-run", TAG="t", BASE_IMAGE="python:3.11-slim@" + PLACEHOLDER_DIGEST)
    assert placeholder.returncode != 0 and placeholder.stdout == ""
    assert "refusing to build" in placeholder.stderr and "placeholder digest" in placeholder.stderr
    floating = _build_sh("--dry-run", TAG="t", BASE_IMAGE="python:3.11-slim")
    assert floating.returncode != 0 and "not pinned by digest" in floating.stderr
    # one image's placeholder stops both builds before the first starts
    half = _build_sh("--dry-run", TAG="t", GPU_BASE_IMAGE=DIGEST)
    defaults = {Dockerfile(kind).args["BASE_IMAGE"] for kind in DOCKERFILES}
    assert (half.returncode != 0 and half.stdout == "") == any(d.endswith(PLACEHOLDER_DIGEST) for d in defaults)
    pinned = _build_sh("--dry-run", "--build-arg", "TORCH_VERSION=2.4.0", TAG="t", BASE_IMAGE=DIGEST)
    assert pinned.returncode != 0 and "TORCH_VERSION" in pinned.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_build_script_refuses_a_lock_of_another_torch(tmp_path):
    for name in ("Makefile", "docker/build.sh", "docker/Dockerfile.gpu", "docker/Dockerfile.cpu"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy2(REPO / name, tmp_path / name)
    def build_with(lock: str) -> subprocess.CompletedProcess:
        (tmp_path / "requirements.lock").write_text(lock)
        return subprocess.run(["bash", str(tmp_path / "docker" / "build.sh"), "--dry-run", "reg.local"],
                              capture_output=True, text=True, timeout=10,
                              env={"PATH": os.environ["PATH"], "TAG": "t", "BASE_IMAGE": DIGEST})

    lock = LOCK.read_text()
    assert build_with(lock).returncode == 0
    done = build_with(lock.replace(f"\ntorch=={_makefile_torch()} ", "\ntorch==2.4.0 "))
    assert done.returncode != 0 and done.stdout == ""
    assert "requirements.lock pins torch '2.4.0'" in done.stderr and "make lock" in done.stderr


def test_component_images_match_the_dockerfiles_and_the_version():
    from components.common import images

    for image, dockerfile in ((images.GPU_IMAGE, "Dockerfile.gpu"), (images.CPU_IMAGE, "Dockerfile.cpu")):
        assert image.rpartition(":")[0] in (REPO / "docker" / dockerfile).read_text()
    version = re.search(r'^version = "(\S+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert version == images.VERSION
    assert images.retag(images.GPU_IMAGE, "0.1.0-abc", "reg.local/team") == "reg.local/team/sealion-vl-gpu:0.1.0-abc"


def _modules(*roots: str):
    for root in roots:
        yield from sorted((REPO / root).rglob("*.py"))


def test_only_the_tracking_wrapper_writes_to_mlflow():
    offenders = []
    for path in _modules("components"):
        if path.name == "tracking.py" and path.parent.name == "common":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in TRACKING_CALLS:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.func.attr}")
    assert offenders == []


def test_production_code_never_imports_the_demo():
    importers = []
    for path in _modules("components", "pipelines"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "demo" or n.startswith("demo.") for n in names):
                importers.append(path.relative_to(REPO).as_posix())
    # the CLI builds the demo when a config asks for it, inside the command; nothing else knows it
    assert set(importers) == {"pipelines/cli.py"}

