"""The set-up promises of the README: pins, extras, the two commands, CI."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement(name: str) -> str:
    for req in PYPROJECT["project"]["dependencies"]:
        if re.match(rf"{re.escape(name)}\b", req):
            return req
    raise AssertionError(f"{name} is not a dependency")


@pytest.mark.parametrize("name", ["transformers", "trl", "av"])  # av: the encoder of the synthetic videos
def test_drifting_apis_are_pinned_exactly(name):
    # their trainer/processor APIs drift; stvg_lab.train subclasses GRPOTrainer 1.16.0
    assert re.fullmatch(rf"{name}==\d+\.\d+\.\d+", _requirement(name))


def test_torch_range_admits_the_cpu_wheel():
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(_requirement("torch").removeprefix("torch"))
    assert "2.13.0" in spec


def test_environment_yml_names_existing_extras():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_items = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    extras_named = set()
    for item in pip_items:
        m = re.match(r"-e\s+\.\[(.+)\]", item)
        if m:
            extras_named |= {e.strip() for e in m.group(1).split(",")}
    assert extras_named, "environment.yml installs the package with no extra"
    assert extras_named <= set(PYPROJECT["project"]["optional-dependencies"])


def test_gpu_extra_carries_vllm_and_cpu_never_installs_torchvision():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert any(r.startswith("vllm") for r in extras["gpu"])
    cpu_reqs = PYPROJECT["project"]["dependencies"] + extras["dev"]
    assert not any(r.startswith("torchvision") for r in cpu_reqs)


def test_readme_first_two_commands_and_ci():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^\s*(make \w+)\s*$", readme, flags=re.M)
    assert commands[:2] == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M)


def test_makefile_installs_cpu_torch_before_the_package():
    mk = (ROOT / "Makefile").read_text()
    torch_at, pkg_at = mk.index('install --quiet "$(TORCH)"'), mk.index('-e ".[dev]"')
    assert torch_at < pkg_at and "TORCH  ?= torch==2.13.0" in mk
