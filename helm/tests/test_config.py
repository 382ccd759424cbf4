"""What each values set gives the pods starts keyward: `keyward config
check` (every check `serve` makes before it opens anything) passes with the
Deployment's rendered config file, environment and mounted Secrets."""

import base64
import json
import os
import subprocess
import tempfile

import pytest

import chart
from conftest import rendered, required

LABELS = [label for label, _ in chart.values_sets()]
MOUNTS = "/etc/keyward/"
LEAK_REPORT_PEM = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEG/Vq0/LbIA38ptMaUBcwoEGaO4hp
fquvsDl5GE4Cu5bnmptLfJJEIPOUePa4GpFgQu6pd2UgGQwFXPErYD9rHg==
-----END PUBLIC KEY-----
"""


def keyward_binary():
    path = os.environ.get("KEYWARD_BIN") or os.path.join(chart.ROOT, "target", "debug", "keyward")
    if not os.access(path, os.X_OK):
        if required():
            pytest.fail(f"CI is set but {path} is missing: run `cargo build` first")
        pytest.skip(f"{path} is missing: run `cargo build` first (or set KEYWARD_BIN)")
    return path


_PEM = {}


def redis_pem():
    """A real self-signed certificate and its key (openssl), for the Redis
    TLS files keyward parses at start."""
    if not _PEM:
        with tempfile.TemporaryDirectory() as d:
            cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=redis"],
                           check=True, capture_output=True)
            with open(cert) as c, open(key) as k:
                pem, private = c.read(), k.read()
            _PEM.update({"ca.crt": pem, "tls.crt": pem, "tls.key": private})
    return _PEM


def lay_out_mounts(root, objs, values):
    """Writes, under root, the files the chart mounts under /etc/keyward:
    the config file, the Secret's URLs (the team's existingSecret gets
    example URLs) and TLS files."""
    def write(rel, text):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    for o in objs:
        if o["kind"] == "ConfigMap":
            write("config/keyward.toml", o["data"]["keyward.toml"])
        if o["kind"] == "Secret":
            for key, b64 in (o.get("data") or {}).items():
                write(f"secrets/{key}", base64.b64decode(b64).decode())
    if values["existingSecret"]:
        write("secrets/database-url", "postgres://keyward:example@postgres:5432/keyward\n")
        write("secrets/redis-url", "redis://:example@redis:6379/0\n")
    if not os.path.exists(os.path.join(root, "secrets", "database-url")):
        # The chart would refuse to install; config check only needs a URL.
        write("secrets/database-url", "sqlite:keyward.db\n")
    for name in ("tls.crt", "tls.key", "ca.crt"):
        write(f"tls/{name}", "not checked by config check\n")
        write(f"postgres-tls/{name}", "only its presence is checked\n")
        # keyward parses these at start (the Redis client's TLS settings).
        write(f"redis-tls/{name}", redis_pem()[name])
    if values["redis"]["passwordSecret"]["name"]:
        write(f"redis-auth/{values['redis']['passwordSecret']['key']}", "example\n")
    if values["existingSecret"] and values["database"]["readUrlInExistingSecret"]:
        write("secrets/database-read-url", "postgres://keyward:example@postgres-ro:5432/keyward\n")
    # A real P-256 public key: config check parses the keys file.
    keys = {"public_keys": [{"key_identifier": "example", "key": LEAK_REPORT_PEM, "is_current": True}]}
    write(f"leak-reports/{values['leakReports']['key']}", json.dumps(keys))


def pod_env(container, root):
    env = {"PATH": os.environ.get("PATH", "")}
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = e["value"].replace(MOUNTS, root + "/")
    return env


def check(binary, env):
    return subprocess.run([binary, "config", "check"], env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("label", LABELS)
def test_the_pods_settings_pass_keyward_config_check(label):
    binary = keyward_binary()
    values = dict(chart.values_sets())[label]
    objs = rendered(label).objects
    deployment = next(o for o in objs if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    with tempfile.TemporaryDirectory(prefix="keyward-config-") as root:
        lay_out_mounts(root, objs, values)
        out = check(binary, pod_env(container, root))
        assert out.returncode == 0, f"keyward config check: {out.stdout}{out.stderr}"
        assert out.stdout.startswith("config OK: listen [::]:50051"), out.stdout
        if values["config"]:
            assert "config file" in out.stdout, out.stdout


def test_config_check_refuses_a_table_the_file_does_not_take():
    """The check above would catch the `[cache]` table full-values.yaml once
    had (keyward exited at start with it)."""
    binary = keyward_binary()
    with tempfile.TemporaryDirectory() as root:
        path = os.path.join(root, "keyward.toml")
        with open(path, "w") as f:
            f.write('[cache]\nl1_ttl = "10s"\n')
        out = check(binary, {"KEYWARD_CONFIG": path, "PATH": os.environ.get("PATH", "")})
    assert out.returncode != 0 and "unknown field `cache`" in out.stderr, out.stderr
