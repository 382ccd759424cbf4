"""The chart as the tests see it: its values sets, `helm lint` through
helm-sdkpy (Helm's own linter as a Python library; no helm binary or cluster
needed), and its manifests rendered as `helm template` renders them."""

import asyncio
import base64
import copy
import json
import os
import re
import shutil
import sys
import tempfile

import helm_sdkpy
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "helm", "keyward")
SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}

# What `helm template` sets when given no --name-template or --namespace.
RELEASE = {"Name": "release-name", "Namespace": "default", "Service": "Helm",
           "IsInstall": True, "IsUpgrade": False, "Revision": 1}


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def defaults():
    return load_yaml(os.path.join(CHART, "values.yaml"))


def helm_merge(base, over):
    """Helm's values merge: maps merge recursively, anything else replaces,
    and null deletes the key."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = helm_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def values_sets():
    """(label, values): the defaults, then each file in ci/ over them."""
    base = defaults()
    sets = [("default values", base)]
    ci_dir = os.path.join(CHART, "ci")
    for name in sorted(os.listdir(ci_dir)):
        if name.endswith((".yaml", ".yml")):
            sets.append((f"ci/{name}", helm_merge(base, load_yaml(os.path.join(ci_dir, name)))))
    return sets


def template_files():
    out = []
    root = os.path.join(CHART, "templates")
    for dirpath, _, names in os.walk(root):
        for n in sorted(names):
            if n.endswith((".yaml", ".yml")) and not n.startswith("_"):
                out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(out)


def chart_copy(tmp, values, extra_templates=None):
    """A copy of the chart in tmp/keyward (the directory keeps the chart's
    name) with the given values.yaml and extra templates."""
    dst = os.path.join(tmp, "keyward")
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(CHART, dst)
    if values is not None:
        with open(os.path.join(dst, "values.yaml"), "w") as f:
            yaml.safe_dump(values, f, sort_keys=False)
    for name, body in (extra_templates or {}).items():
        with open(os.path.join(dst, "templates", name), "w") as f:
            f.write(body)
    return dst


class Lint:
    """One `helm lint`: counts by severity, where the warnings and errors
    are, the raw messages and what Helm logged."""

    def __init__(self, result, log):
        self.messages = result.get("Messages") or []
        self.log = log
        self.counts = {"error": 0, "warning": 0, "info": 0, "unknown": 0}
        self.where = []
        for m in self.messages:
            sev = SEVERITY.get(m.get("Severity"), "unknown")
            self.counts[sev] += 1
            if m.get("Severity", 0) >= 2:
                err = m.get("Err") or {}
                name = err.get("Name") if isinstance(err, dict) else None
                self.where.append(f"{sev} in {m.get('Path')}" + (f" ({name})" if name else ""))

    @property
    def clean(self):
        return self.counts["error"] + self.counts["warning"] == 0

    def values_rejected(self):
        """Whether values.yaml failed values.schema.json."""
        return any(m.get("Severity", 0) >= 3 and m.get("Path") == "values.yaml" for m in self.messages)


def lint(path):
    """helm lint of a chart directory. helm-sdkpy returns each message's
    severity and path but not its text (the Go error does not serialise);
    Helm's own log lines go to the process's stderr, captured here."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as cap:
        os.dup2(cap.fileno(), 2)
        try:
            result = asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(path))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        cap.seek(0)
        log = cap.read().decode("utf-8", "replace")
    return Lint(result, log)


# Rendering. helm-sdkpy has no template or dry-run action (Install always
# talks to a cluster), but Lint renders every template, and in Helm 4's lint
# mode a template's `fail` does not stop it: Helm logs the message to stderr
# ("funcMap fail message=...") and goes on. So the chart copy gets one extra
# template that renders every chart template with the context `helm template`
# gives it (its .Release, not lint's), and `fail`s with the manifests as
# base64 JSON between markers, read back from the captured log. If that
# channel ever dries up (another Helm version), rendering raises rather than
# checking nothing.
RENDER_TPL = r"""{{- $docs := dict -}}
{{- $release := dict __RELEASE__ -}}
{{- $ctx := dict "Values" $.Values "Chart" $.Chart "Capabilities" $.Capabilities "Template" $.Template "Files" $.Files "Release" $release -}}
{{- range $f := list __FILES__ -}}
{{- $_ := set $docs $f (include (print $.Template.BasePath "/" $f) $ctx) -}}
{{- end -}}
{{- fail (printf "KEYWARD-RENDER-BEGIN:%s:KEYWARD-RENDER-END" (toJson $docs | b64enc)) -}}
"""
RENDER_RE = re.compile(r"KEYWARD-RENDER-BEGIN:([A-Za-z0-9+/=]+):KEYWARD-RENDER-END")


class Rendered:
    """What `helm template` would print for one values set: the objects by
    template file, and the messages an install stops with."""

    def __init__(self, texts, install_errors):
        self.texts = texts
        self.by_file = {f: [d for d in yaml.safe_load_all(t) if d] for f, t in texts.items()}
        self.install_errors = install_errors

    @property
    def objects(self):
        return [o for f in sorted(self.by_file) for o in self.by_file[f]]

    def manifest(self):
        """The text `helm template` prints: each document under its
        `# Source:` line."""
        out = []
        for f in sorted(self.texts):
            for doc in re.split(r"(?m)^---\s*$", self.texts[f]):
                if yaml.safe_load(doc):
                    out.append(f"---\n# Source: keyward/templates/{f}\n{doc.strip()}\n")
        return "".join(out)


def render(values, tmp=None):
    """Renders every template for these values, as `helm template` would."""
    if tmp is None:
        with tempfile.TemporaryDirectory(prefix="helm-render-") as tmp:
            return render(values, tmp)
    files = " ".join(json.dumps(f) for f in template_files())
    release = " ".join(f"{json.dumps(k)} {json.dumps(v)}" for k, v in RELEASE.items())
    tpl = RENDER_TPL.replace("__FILES__", files).replace("__RELEASE__", release)
    result = lint(chart_copy(tmp, values, {"zz-render-dump.yaml": tpl}))
    found = RENDER_RE.findall(result.log)
    if len(found) != 1:
        raise RuntimeError("could not read the rendered manifests back from helm lint's log; "
                           f"found {len(found)} dumps. Log:\n{result.log}")
    texts = json.loads(base64.b64decode(found[0]))
    install_errors = [line for line in result.log.splitlines()
                      if "funcMap fail" in line and "KEYWARD-RENDER-BEGIN" not in line]
    return Rendered(texts, install_errors)


def schema_reasons(values):
    """Why values.schema.json rejects these values, in words (helm-sdkpy
    reports only that values.yaml failed)."""
    try:
        import jsonschema
    except ImportError:
        return ""
    with open(os.path.join(CHART, "values.schema.json")) as f:
        schema = json.load(f)
    errs = sorted(jsonschema.Draft7Validator(schema).iter_errors(values), key=lambda e: list(e.path))
    return "; ".join(f"{'.'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errs[:5])


def short_log(log):
    """Helm's log without the render dump, for messages."""
    lines = [line for line in log.splitlines() if "KEYWARD-RENDER-BEGIN" not in line]
    return "\n".join("        " + line for line in lines[-20:])
