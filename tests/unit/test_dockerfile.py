"""The Dockerfile builds the image the KubeRay RayJob runs: this package's wheel on the pinned Ray's base
image, with the package's own command. Read, not built: no Docker daemon needed."""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_runs import REPO_ROOT
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from fracture_tune.cli import build_parser
from fracture_tune.data.prepare_settings import SHIPPED_CONFIG_DIR, config_path

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11")

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
KUBERAY = REPO_ROOT / "cluster" / "kuberay-rayjob.yaml"
BASE_IMAGE = re.compile(r"rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<major>3)(?P<minor>\d+)")


@dataclass
class Stage:
    base: str
    name: str | None
    steps: list[tuple[str, str]] = field(default_factory=list)  # (instruction, arguments, ARGs expanded)


def _logical_lines(text: str) -> list[str]:
    """Instructions one per line: comments dropped, backslash continuations joined (Docker's rules)."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    return lines


def _expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), text)


def _stages() -> list[Stage]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(DOCKERFILE.read_text()):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ARG":
            name, has_default, default = rest.strip().partition("=")
            if not stages:
                global_args[name] = default
            else:  # ARG inside a stage: its own default, else the global one (Docker's scoping)
                value = default if has_default else global_args.get(name, "")
                stages[-1].steps.append(("ARG", f"{name}={value}"))
        elif instruction == "FROM":
            words = _expand(rest, global_args).split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            stage_args = dict(step[1].split("=", 1) for step in stages[-1].steps if step[0] == "ARG")
            stages[-1].steps.append((instruction, _expand(rest, stage_args)))
    return stages


def _project() -> dict[str, Any]:
    return dict(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"])


def _wheel_name(project: dict[str, Any]) -> str:
    return f"{re.sub(r'[-_.]+', '_', project['name']).lower()}-{project['version']}-py3-none-any.whl"


def _pinned(project: dict[str, Any], name: str) -> Requirement:
    (requirement,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == name]
    return requirement


def _rayjob() -> dict[str, Any]:
    docs = [doc for doc in yaml.safe_load_all(KUBERAY.read_text()) if doc]
    (rayjob,) = [doc for doc in docs if doc["kind"] == "RayJob"]
    return dict(rayjob)


def _rayjob_images(rayjob: dict[str, Any]) -> list[str]:
    spec = rayjob["spec"]
    pods = [spec["submitterPodTemplate"], spec["rayClusterSpec"]["headGroupSpec"]["template"]]
    pods += [group["template"] for group in spec["rayClusterSpec"]["workerGroupSpecs"]]
    return [container["image"] for pod in pods for container in pod["spec"]["containers"]]


def _install_step(stage: Stage, wheel: str) -> list[str]:
    for instruction, arguments in stage.steps:
        words = shlex.split(arguments)
        if instruction == "RUN" and "install" in words and any(w.endswith("/" + wheel) for w in words):
            return words
    raise AssertionError(f"no RUN ... pip install .../{wheel} in the final stage")


def test_the_image_installs_this_packages_wheel_built_from_the_sources() -> None:
    project = _project()
    wheel = _wheel_name(project)
    stages = _stages()
    words = _install_step(stages[-1], wheel)
    assert words[words.index("install") - 1] == "pip"
    installed = next(w for w in words if w.endswith("/" + wheel))
    # The wheel comes from the build stage, mounted for the install step only (not left in a layer).
    mount = dict(
        item.split("=", 1)
        for item in next(w for w in words if w.startswith("--mount=")).removeprefix("--mount=").split(",")
    )
    assert mount["type"] == "bind" and installed == f"{mount['target']}/{wheel}"
    (builder,) = [stage for stage in stages if stage.name == mount["from"]]
    build = next(shlex.split(a) for i, a in builder.steps if i == "RUN" and "pip wheel" in a)
    assert build[build.index("--wheel-dir") + 1] == mount["source"] and "--no-deps" in build
    copied = next(shlex.split(a) for i, a in builder.steps if i == "COPY")
    assert copied[-2:] == [".", build[-1]]  # the wheel is built from the build context: the sources


def test_the_base_image_ray_is_the_pinned_ray_and_stays_installed() -> None:
    project = _project()
    ray = _pinned(project, "ray")
    stages = _stages()
    for stage in stages:
        match = BASE_IMAGE.fullmatch(stage.base)
        assert match, f"{stage.base} is not a rayproject/ray:<version>-py3XX image"
        assert match["ray"] in ray.specifier, f"base image Ray {match['ray']} is outside pyproject's {ray}"
        assert f"{match['major']}.{match['minor']}" in SpecifierSet(project["requires-python"])
    ray_version = BASE_IMAGE.fullmatch(stages[-1].base)["ray"]  # type: ignore[index]
    assert _rayjob()["spec"]["rayClusterSpec"]["rayVersion"] == ray_version
    # The install step pins Ray to the base image's, with the extras the package needs: pip cannot swap it.
    words = _install_step(stages[-1], _wheel_name(project))
    (pinned,) = [Requirement(w) for w in words if w.startswith("ray[") or w.startswith("ray==")]
    assert str(pinned.specifier) == f"=={ray_version}" and pinned.extras >= ray.extras


def test_the_image_command_is_the_packages_console_script(capsys: pytest.CaptureFixture[str]) -> None:
    scripts = _project()["scripts"]
    final = _stages()[-1]
    argv: list[str] = []
    for instruction in ("ENTRYPOINT", "CMD"):  # exec form (JSON): no shell between Docker and the CLI
        argv += next((json.loads(a) for i, a in final.steps if i == instruction), [])
    assert argv and argv[0] in scripts, f"the image runs {argv}, not one of the package's scripts {scripts}"
    module, function = scripts[argv[0]].split(":")
    try:
        status = getattr(importlib.import_module(module), function)(argv[1:])
    except SystemExit as stop:
        status = stop.code
    assert status in (0, None) and f"usage: {argv[0]}" in capsys.readouterr().out


def test_the_rayjob_runs_this_image_with_a_command_the_package_provides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project()
    rayjob = _rayjob()
    (image,) = set(_rayjob_images(rayjob))  # submitter, head and every worker group: one image
    assert image.rsplit("/", 1)[-1] == f"{project['name']}:{project['version']}"
    for document in (DOCKERFILE, KUBERAY, REPO_ROOT / "README.md"):  # the build commands tag that image
        tags = re.findall(r"docker build -t (\S+) \.", document.read_text())
        assert tags and set(tags) == {image}, f"{document.name} builds {tags}, the RayJob runs {image}"
    argv = shlex.split(rayjob["spec"]["entrypoint"])
    assert argv[0] in project["scripts"]
    args = build_parser().parse_args(argv[1:])  # unknown subcommands or flags fail here
    monkeypatch.chdir(tmp_path)  # the image has the installed package, no checkout to find configs/ in
    assert config_path(args.config).parent == SHIPPED_CONFIG_DIR


def _docker_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Go's filepath.Match reads it: ``*`` stops at ``/``, ``**`` does not."""
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern.rstrip("/"))
    wild = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wild.get(part, re.escape(part)) for part in parts))


def _in_build_context(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or a folder above it decides."""
    parents = ["/".join(path.split("/")[: n + 1]) for n in range(path.count("/") + 1)]
    included = True
    for pattern in patterns:
        regex = _docker_pattern(pattern.removeprefix("!"))
        if any(regex.fullmatch(p) for p in parents):
            included = pattern.startswith("!")
    return included


def test_the_build_context_holds_what_the_wheel_is_built_from_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    listed = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    context = {path for path in listed if _in_build_context(path, patterns)}
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    folders = {name.split(".", 1)[1].replace(".", "/") for name in setuptools["packages"] if "." in name}
    needed = {"pyproject.toml", pyproject["project"]["readme"], *pyproject["project"]["license-files"]}
    needed |= {p for p in listed if p.endswith(".py") and "/" not in p}  # the root package's modules
    needed |= {p for p in listed if p.endswith(".py") and p.rsplit("/", 1)[0] in folders}
    for package, globs in setuptools["package-data"].items():
        folder = package.removeprefix("fracture_tune").lstrip(".").replace(".", "/")
        needed |= {p for p in listed for g in globs if fnmatch.fnmatch(p, f"{folder}/{g}".lstrip("/"))}
    assert needed <= context, sorted(needed - context)
    assert not any(p.startswith(("tests/", "benchmarks/", "docs/", ".venv/")) for p in context)
    for kept_out in (".venv/bin/python", "mlflow.db", "mlruns/0/meta.yaml", ".fracture-tune/runs/x"):
        assert not _in_build_context(kept_out, patterns), kept_out
