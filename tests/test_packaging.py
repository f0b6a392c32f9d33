"""pyproject.toml, environment.yml and workflow/envs agree on the packages they name."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch", "matplotlib-base": "matplotlib"}


def _split(spec):
    name, rest = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec).groups()
    return CONDA_NAMES.get(name.lower(), name.lower()), rest.replace(" ", "")


def _conda(path):
    """Packages of a conda file, those of its `pip:` list included (except the project itself)."""
    deps = yaml.safe_load(path.read_text())["dependencies"]
    pip = [s for d in deps if isinstance(d, dict) for s in d.get("pip", []) if not s.startswith("-e")]
    named = [d for d in deps if isinstance(d, str) and d.split()[0] not in ("python", "pip")]
    return dict(_split(d) for d in named + pip)


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [s for extra in project["optional-dependencies"].values() for s in extra]
    pip = dict(_split(s) for s in specs)
    assert len({_split(s) for s in specs}) == len(pip), "an extra pins a package differently"
    assert _conda(REPO / "environment.yml") == pip


def test_rule_env_pins_agree_with_pyproject():
    toml = tomllib.loads((REPO / "pyproject.toml").read_text())
    # the rule environment also builds the package (its post-deploy script): the build requirements count
    pip = dict(_split(s) for s in toml["project"]["dependencies"] + toml["build-system"]["requires"])
    for env in (REPO / "workflow/envs").glob("*.yaml"):
        for name, rng in _conda(env).items():
            assert pip.get(name) == rng, f"{env.name}: {name} {rng} vs pyproject {pip.get(name)}"


def test_licence_and_citation_name_the_project_and_the_paper_alike():
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"] == {"text": "MIT"}
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    paper = cff["preferred-citation"]
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    assert [(a["given-names"], a["family-names"]) for a in paper["authors"]] == [("Or", "Litany"), ("Daniel", "Freedman")]
    assert paper["title"] == "SOSELETO: A Unified Approach to Transfer Learning and Training with Noisy Labels"
    assert paper["year"] == 2018 and paper["identifiers"][0]["value"] == "arXiv:1805.09622"
    front = (REPO / "workflow/report/workflow.rst").read_text()
    assert "Or Litany and Daniel Freedman" in front and "arXiv:1805.09622" in front
