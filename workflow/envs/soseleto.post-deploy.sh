#!/usr/bin/env bash
# Runs once inside the rule environment after `snakemake --sdm conda` creates it: installs this
# repository's soseleto package there, which every rule's script imports. Snakemake runs it from
# its working directory: the repository root, where `snakemake` is typed (set SOSELETO_ROOT to
# the repository when running from elsewhere).
set -euo pipefail
root="${SOSELETO_ROOT:-$PWD}"
if [ ! -f "$root/pyproject.toml" ] || ! grep -q '^name = "soseleto"' "$root/pyproject.toml"; then
    echo "soseleto post-deploy: $root is not the soseleto repository; run snakemake from its root or set SOSELETO_ROOT" >&2
    exit 1
fi
python -m pip install --no-deps --no-build-isolation -e "$root"
