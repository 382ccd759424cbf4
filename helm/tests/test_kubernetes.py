"""Every rendered object is valid Kubernetes (kubernetes-validate --strict:
no unknown field) for the Kubernetes versions the chart claims in Chart.yaml's
kubeVersion: its oldest minor and the newest the validator knows (an API
field at both ends is there in between: Kubernetes removes, never re-adds). A values set
that turns on a feature of a later version (the chart's README names them:
preStopSleepSeconds needs 1.30) is validated from that version on."""

import os

import pytest

import chart
from conftest import rendered

kv = pytest.importorskip("kubernetes_validate") if not os.environ.get("CI") else __import__("kubernetes_validate")
from kubernetes_validate import utils as kv_utils  # noqa: E402

LABELS = [label for label, _ in chart.values_sets()]
# Custom resources: Kubernetes publishes no schema for them.
CRD_GROUPS = ("monitoring.coreos.com/",)


def minor(version):
    major, minor_, *_ = version.lstrip("v").split("-")[0].split(".")
    return int(major), int(minor_)


def chart_floor():
    floor = chart.load_yaml(os.path.join(chart.CHART, "Chart.yaml"))["kubeVersion"]
    assert floor.startswith(">="), f"kubeVersion {floor!r}: expected a lower bound"
    return minor(floor[2:].strip())


def claimed_versions(low):
    """Newest patch of each minor version from `low` on."""
    newest = {}
    for v in kv_utils.all_versions():
        m = minor(v)
        if m >= low and (m not in newest or minor_patch(v) > minor_patch(newest[m])):
            newest[m] = v
    assert low in newest, f"kubernetes-validate has no schemas for {low}"
    ends = sorted(newest)
    return sorted({newest[ends[0]], newest[ends[-1]]})


def minor_patch(version):
    return tuple(int(x) for x in version.lstrip("v").split("."))


def floor_of(values):
    """The oldest Kubernetes these values can run on."""
    low = chart_floor()
    if values["preStopSleepSeconds"] > 0:
        low = max(low, (1, 30))
    return low


@pytest.mark.parametrize("label", LABELS)
def test_every_object_is_valid_kubernetes(label):
    problems, checked = [], 0
    versions = claimed_versions(floor_of(dict(chart.values_sets())[label]))
    for obj in rendered(label).objects:
        if obj["apiVersion"].startswith(CRD_GROUPS):
            continue
        for version in versions:
            try:
                kv.validate(obj, version, strict=True)
                checked += 1
            except kv.ValidationError as e:
                problems.append(f"{obj['kind']}/{obj['metadata']['name']} on {version}: {e.message}")
            except kv_utils.SchemaNotFoundError:
                problems.append(f"{obj['kind']} {obj['apiVersion']} does not exist in Kubernetes {version}")
    assert not problems, "\n".join(problems)
    assert checked >= len(versions), "nothing was validated"
