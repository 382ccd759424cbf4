"""checkov's Kubernetes check CKV_K8S_35 ("prefer using secrets as files
over secrets as environment variables") passes on every rendered values set.
checkov lives in its own virtualenv (its pinned dependencies would fight the
chart tests'): .ci/deps puts it in ~/.cache/keyward/checkov, or set
KEYWARD_CHECKOV to a checkov binary."""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

import chart
from conftest import rendered, required

LABELS = [label for label, _ in chart.values_sets()]
CHECKS = "CKV_K8S_35"
VENV = os.path.join(os.path.expanduser("~"), ".cache", "keyward", "checkov", "bin", "checkov")


def checkov_binary():
    for candidate in (os.environ.get("KEYWARD_CHECKOV"), VENV, shutil.which("checkov")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if required():
        pytest.fail("CI is set but checkov is missing (run .ci/deps)")
    pytest.skip("checkov is missing: run .ci/deps (or set KEYWARD_CHECKOV)")


def file_name(label):
    return label.replace("/", "_").replace(" ", "_") + ".yaml"


@pytest.fixture(scope="module")
def failures():
    """checkov once over every values set's manifest (it takes seconds to
    start): {manifest file: [failed check ids with the resource]}."""
    binary = checkov_binary()
    with tempfile.TemporaryDirectory(prefix="checkov-") as tmp:
        for label in LABELS:
            with open(os.path.join(tmp, file_name(label)), "w") as f:
                f.write(rendered(label).manifest())
        out = subprocess.run([binary, "-d", tmp, "--framework", "kubernetes", "--check", CHECKS,
                              "--compact", "--output", "json"],
                             capture_output=True, text=True, timeout=600)
    report = json.loads(out.stdout)
    results = (report[0] if isinstance(report, list) else report)["results"]
    assert results["passed_checks"], f"checkov checked nothing:\n{out.stdout[:2000]}{out.stderr[-2000:]}"
    found = {}
    for r in results["failed_checks"]:
        found.setdefault(os.path.basename(r["file_path"]), []).append(f"{r['check_id']} {r['resource']}")
    return found


@pytest.mark.parametrize("label", LABELS)
def test_secrets_are_files_not_environment(label, failures):
    assert not failures.get(file_name(label)), f"checkov {CHECKS}: {failures[file_name(label)]}"
