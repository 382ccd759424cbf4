"""The chart as Helm sees it: documented values, `helm lint` clean for every
values set (warnings count, as with `--strict`), the rendered manifests
keeping every rule in rules.py, and bad values refused."""

import json
import os
import tempfile
import tomllib

import pytest
import yaml

import chart
import rules
import values_doc
from conftest import linted, rendered

LABELS = [label for label, _ in chart.values_sets()]

# Values that must fail lint (values.schema.json), merged over the defaults.
BAD_VALUES = {
    "replicaCount-string": {"replicaCount": "two"},
    "replicaCount-zero": {"replicaCount": 0},
    "unknown-top-level-key": {"replicas": 3},
    "unknown-nested-key": {"image": {"tagg": "1.0"}},
    "tls-without-secret": {"tls": {"enabled": True}},
    "bad-log-format": {"log": {"format": "xml"}},
    "bad-duration": {"cache": {"l1Ttl": "ten seconds"}},
    "unknown-pooler": {"database": {"pooler": "statement"}},
    "unknown-postgres-sslmode": {"database": {"tls": {"mode": "verify"}}},
    "read-url-not-postgres": {"database": {"readUrl": "sqlite:replica.db"}},
    "postgres-client-cert-without-secret": {"database": {"tls": {"clientCert": True}}},
    "redis-client-cert-without-secret": {"redis": {"url": "rediss://r:6379", "tls": {"clientCert": True}}},
    "unknown-redis-scheme": {"redis": {"url": "memcached://r:11211"}},
    "zero-max-connections": {"limits": {"maxConnections": 0}},
    "bad-revocation-bound": {"revocation": {"bound": "soon"}},
    "console-enabled-not-bool": {"console": {"enabled": "yes"}},
    "bad-console-session-ttl": {"console": {"sessionTtl": "all day"}},
    "leak-reports-empty-key": {"leakReports": {"secretName": "s", "key": ""}},
    "leak-reports-both": {"leakReports": {"secretName": "s", "configMapName": "c"}},
}

# Values the schema allows but a render rule must catch (tests the rules).
BAD_RENDER = {
    "writable-root-filesystem": ({"securityContext": {"readOnlyRootFilesystem": False}}, "pod_security"),
    "privilege-escalation": ({"securityContext": {"allowPrivilegeEscalation": True}}, "pod_security"),
    "url-in-environment": ({"database": {"url": "postgres://u:p@db/k"},
                            "extraEnv": [{"name": "KEYWARD_DATABASE_URL", "value": "postgres://u:p@db/k"}]},
                           "deployment_runtime"),
}


def test_app_version_is_the_crate_version():
    with open(os.path.join(chart.ROOT, "Cargo.toml"), "rb") as f:
        crate = tomllib.load(f)["package"]["version"]
    app = str(chart.load_yaml(os.path.join(chart.CHART, "Chart.yaml")).get("appVersion", ""))
    assert app == crate, "Chart.yaml appVersion differs from Cargo.toml's version"


def test_every_value_is_documented_and_the_readme_table_is_current():
    problems = []
    rows, top_keys = values_doc.values_rows(problems)
    assert not problems, "\n".join(problems)
    _, current, _ = values_doc.readme_parts()
    documented = {r[0] for r in rows}
    missing = [k for k in top_keys if k not in documented and f"`{k}`" not in current]
    assert not missing, f"top-level keys missing from the README's values table: {missing}"
    assert current.strip() == values_doc.render_table(rows).strip(), \
        "the README's values table is out of date: run `bash .ci/helm-lint --write-readme`"


@pytest.mark.parametrize("label", LABELS)
def test_lint_is_clean(label):
    result = linted(label)
    if not result.clean:
        values = dict(chart.values_sets())[label]
        reasons = chart.schema_reasons(values) if result.values_rejected() else ""
        pytest.fail(f"{result.counts['error']} errors, {result.counts['warning']} warnings: "
                    + "; ".join(result.where)
                    + (f"\nvalues.schema.json: {reasons}" if reasons else "")
                    + ("\n" + chart.short_log(result.log) if result.log.strip() else ""))


@pytest.mark.parametrize("label", LABELS)
def test_rendered_manifests_keep_every_rule(label):
    values = dict(chart.values_sets())[label]
    problems = rules.broken_rules(values, rendered(label).objects)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("label", LABELS)
def test_an_install_stops_exactly_when_no_database_is_given(label):
    values = dict(chart.values_sets())[label]
    errors = rendered(label).install_errors
    needs_db = not (values["database"]["url"] or values["existingSecret"])
    said_db = [e for e in errors if "keyward needs a database" in e]
    others = [e for e in errors if "keyward needs a database" not in e]
    assert bool(said_db) == needs_db, f"database given: {not needs_db}; install errors: {errors}"
    assert not others, f"an install would stop: {others}"


def test_the_render_reads_like_helm_template():
    """What `.ci/helm-lint --render` prints: each document under its Source
    line, in the release namespace, nothing null."""
    values = dict(chart.values_sets())["ci/servicemonitor-values.yaml"]
    text = rendered("ci/servicemonitor-values.yaml").manifest()
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert text.count("# Source: keyward/templates/") == len(docs)
    assert "null" not in text
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["default"]
    assert values["serviceMonitor"]["enabled"]


@pytest.mark.parametrize("label", sorted(BAD_VALUES))
def test_lint_rejects_bad_values(label):
    values = chart.helm_merge(chart.defaults(), BAD_VALUES[label])
    with tempfile.TemporaryDirectory(prefix="helm-lint-") as tmp:
        result = chart.lint(chart.chart_copy(tmp, values))
    assert result.values_rejected(), \
        f"values.schema.json accepted {json.dumps(BAD_VALUES[label])}; lint said {result.where or 'nothing'}"


@pytest.mark.parametrize("label", sorted(BAD_RENDER))
def test_a_render_rule_catches_bad_values(label):
    over, rule = BAD_RENDER[label]
    values = chart.helm_merge(chart.defaults(), over)
    problems = rules.broken_rules(values, chart.render(values).objects)
    assert any(p.startswith(rule + ":") for p in problems), \
        f"rule {rule} did not catch {json.dumps(over)}; problems: {problems}"
