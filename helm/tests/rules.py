"""Rules every rendered values set must keep. Each takes the values and the
rendered objects and returns what is wrong, in words (empty: it holds)."""

import re


def pod_specs(objs):
    for o in objs:
        kind = o["kind"]
        if kind in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            yield f"{kind}/{o['metadata']['name']}", o["spec"]["template"]["spec"]
        elif kind == "Pod":
            yield f"Pod/{o['metadata']['name']}", o["spec"]


def hook(o):
    return (o.get("metadata", {}).get("annotations") or {}).get("helm.sh/hook", "")


def env_of(container):
    return {e["name"]: e for e in container.get("env") or []}


def rule_pod_security(v, objs):
    """Every pod and container: non-root, read-only root filesystem, no
    privilege escalation, all capabilities dropped, RuntimeDefault seccomp,
    no service account token."""
    errs = []
    for pid, spec in pod_specs(objs):
        if spec.get("automountServiceAccountToken") is not False:
            errs.append(f"{pid}: automountServiceAccountToken is not false")
        pod = spec.get("securityContext") or {}
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            sc = c.get("securityContext") or {}
            cid = f"{pid} container {c['name']}"
            if sc.get("readOnlyRootFilesystem") is not True:
                errs.append(f"{cid}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                errs.append(f"{cid}: allowPrivilegeEscalation is not false")
            if not (sc.get("runAsNonRoot") is True or (pod.get("runAsNonRoot") is True and sc.get("runAsNonRoot") is not False)):
                errs.append(f"{cid}: runAsNonRoot is not true")
            if sc.get("runAsUser", pod.get("runAsUser")) == 0:
                errs.append(f"{cid}: runs as uid 0")
            caps = sc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                errs.append(f"{cid}: capabilities.drop lacks ALL")
            if caps.get("add"):
                errs.append(f"{cid}: adds capabilities {caps['add']}")
            if sc.get("privileged"):
                errs.append(f"{cid}: privileged")
            seccomp = (sc.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                errs.append(f"{cid}: seccompProfile is {seccomp!r}, not RuntimeDefault")
    return errs


def the(objs, kind, hooked=False):
    found = [o for o in objs if o["kind"] == kind and bool(hook(o)) == hooked]
    return found[0] if len(found) == 1 else None


def rule_probes(v, objs):
    """Startup, liveness, readiness: native gRPC on 50051 (readiness asks for
    keyward.v1.KeyService); tcpSocket instead when TLS is on."""
    errs = []
    c = the(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    for name in ("startupProbe", "livenessProbe", "readinessProbe"):
        p = c.get(name)
        if not p:
            errs.append(f"no {name}")
            continue
        if v["tls"]["enabled"]:
            if "grpc" in p or "tcpSocket" not in p:
                errs.append(f"{name}: with TLS on it must be tcpSocket (gRPC probes cannot do TLS)")
        else:
            if "grpc" not in p:
                errs.append(f"{name} is not a native grpc probe: {p}")
            elif p["grpc"].get("port") != 50051:
                errs.append(f"{name}: grpc port {p['grpc'].get('port')} is not 50051")
    if not v["tls"]["enabled"] and (c.get("readinessProbe") or {}).get("grpc", {}).get("service") != "keyward.v1.KeyService":
        errs.append("readinessProbe does not check keyward.v1.KeyService")
    return errs


def rule_checksum(v, objs):
    """Config (ConfigMap + chart Secret) changes roll the pods."""
    ann = the(objs, "Deployment")["spec"]["template"]["metadata"].get("annotations") or {}
    if not re.fullmatch(r"[0-9a-f]{64}", str(ann.get("checksum/config", ""))):
        return ["the pod template has no checksum/config annotation"]
    return []


def rule_optional_objects(v, objs):
    """Each optional object exists exactly when its flag is on."""
    want = {
        ("HorizontalPodAutoscaler", False): v["autoscaling"]["enabled"],
        ("PodDisruptionBudget", False): v["podDisruptionBudget"]["enabled"],
        ("NetworkPolicy", False): 2 if v["networkPolicy"]["enabled"] else 0,
        ("NetworkPolicy", True): v["networkPolicy"]["enabled"] and v["migration"]["enabled"],
        ("ServiceMonitor", False): v["serviceMonitor"]["enabled"] and v["metrics"]["enabled"],
        ("ConfigMap", False): bool(v["config"]),
        ("Secret", False): not v["existingSecret"],
        ("Secret", True): v["migration"]["enabled"] and not v["existingSecret"],
        ("Job", True): v["migration"]["enabled"],
        ("ServiceAccount", False): v["serviceAccount"]["create"],
        ("Pod", True): True,
        ("Deployment", False): True,
        ("Service", False): True,
    }
    have = {}
    for o in objs:
        key = (o["kind"], bool(hook(o)))
        have[key] = have.get(key, 0) + 1
    errs = []
    for key, on in want.items():
        n = have.get(key, 0)
        label = key[0] + (" (hook)" if key[1] else "")
        if on and n != int(on):
            errs.append(f"{label}: expected {int(on)}, rendered {n}")
        if not on and n:
            errs.append(f"{label}: expected none (its flag is off), rendered {n}")
    for key in have:
        if key not in want:
            errs.append(f"unexpected object {key[0]}{' (hook)' if key[1] else ''}")
    d = the(objs, "Deployment")
    if ("replicas" in d["spec"]) == v["autoscaling"]["enabled"]:
        errs.append("Deployment.spec.replicas must be set exactly when autoscaling is off")
    return errs


def rule_deployment_runtime(v, objs):
    """Drain vs grace period, listen addresses, Secret-sourced URLs,
    KEYWARD_NO_MIGRATE, KEYWARD_CONFIG, topology spread."""
    errs = []
    spec = the(objs, "Deployment")["spec"]["template"]["spec"]
    c = spec["containers"][0]
    env = env_of(c)
    val = lambda k: (env.get(k) or {}).get("value")
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace <= v["drainTimeoutSeconds"] + v["preStopSleepSeconds"]:
        errs.append(f"terminationGracePeriodSeconds {grace} is not longer than preStop + drain")
    if val("KEYWARD_DRAIN_TIMEOUT") != f"{v['drainTimeoutSeconds']}s":
        errs.append(f"KEYWARD_DRAIN_TIMEOUT {val('KEYWARD_DRAIN_TIMEOUT')!r} != drainTimeoutSeconds")
    if val("KEYWARD_LISTEN") != "[::]:50051":
        errs.append(f"KEYWARD_LISTEN is {val('KEYWARD_LISTEN')!r}, not the dual-stack [::]:50051")
    if v["metrics"]["enabled"] and val("KEYWARD_METRICS_LISTEN") != "[::]:9090":
        errs.append(f"KEYWARD_METRICS_LISTEN is {val('KEYWARD_METRICS_LISTEN')!r}, not [::]:9090")
    if ("KEYWARD_METRICS_LISTEN" in env) != v["metrics"]["enabled"]:
        errs.append("KEYWARD_METRICS_LISTEN must be set exactly when metrics.enabled")
    secret = v["existingSecret"] or None
    redis = bool(v["redis"]["inExistingSecret"] if secret else v["redis"]["url"])
    errs += secret_files(spec, c, {"KEYWARD_DATABASE_URL_FILE": "database-url",
                                   **({"KEYWARD_REDIS_URL_FILE": "redis-url"} if redis else {})},
                         secret or the(objs, "Secret")["metadata"]["name"])
    if not redis and "KEYWARD_REDIS_URL_FILE" in env:
        errs.append("KEYWARD_REDIS_URL_FILE is set but no Secret has redis-url")
    if v["migration"]["enabled"]:
        if val("KEYWARD_NO_MIGRATE") != "true":
            errs.append("KEYWARD_NO_MIGRATE is not \"true\" although the hook Job migrates")
    elif "KEYWARD_NO_MIGRATE" in env:
        errs.append("KEYWARD_NO_MIGRATE is set although no hook Job migrates")
    if ("KEYWARD_CONFIG" in env) != bool(v["config"]):
        errs.append("KEYWARD_CONFIG must be set exactly when config is")
    if val("KEYWARD_CONSOLE") != str(v["console"]["enabled"]).lower():
        errs.append(f"KEYWARD_CONSOLE {val('KEYWARD_CONSOLE')!r} is not console.enabled")
    if val("KEYWARD_CONSOLE_SESSION_TTL") != v["console"]["sessionTtl"]:
        errs.append("KEYWARD_CONSOLE_SESSION_TTL is not console.sessionTtl")
    if v["tracing"]["otlpEndpoint"] and val("OTEL_EXPORTER_OTLP_ENDPOINT") != v["tracing"]["otlpEndpoint"]:
        errs.append("OTEL_EXPORTER_OTLP_ENDPOINT is not tracing.otlpEndpoint")
    tsc = spec.get("topologySpreadConstraints") or []
    if v["topologySpreadConstraints"] and not tsc:
        errs.append("no topologySpreadConstraints")
    for t in tsc:
        if not t.get("labelSelector"):
            errs.append(f"topologySpreadConstraint on {t.get('topologyKey')} has no labelSelector")
    return errs


def rule_migration_hook(v, objs):
    """The hook Job runs `keyward migrate` with KEYWARD_DATABASE_URL from a
    Secret that exists before it: existingSecret, or a hook Secret created
    earlier (lower weight)."""
    if not v["migration"]["enabled"]:
        return []
    errs = []
    job = the(objs, "Job", hooked=True)
    ann = job["metadata"]["annotations"]
    if ann.get("helm.sh/hook") != "pre-install,pre-upgrade":
        errs.append(f"the migration Job's hook is {ann.get('helm.sh/hook')!r}")
    if "before-hook-creation" not in ann.get("helm.sh/hook-delete-policy", ""):
        errs.append("the migration Job lacks the before-hook-creation delete policy")
    c = job["spec"]["template"]["spec"]["containers"][0]
    if c.get("args") != ["migrate"]:
        errs.append(f"the migration Job runs {c.get('args')}, not migrate")
    jspec = job["spec"]["template"]["spec"]
    vols = {x["name"]: (x.get("secret") or {}).get("secretName") for x in jspec.get("volumes") or []}
    mounted = [vols.get(m["name"]) for m in c.get("volumeMounts") or []
               if (env_of(c).get("KEYWARD_DATABASE_URL_FILE") or {}).get("value", "").startswith(m["mountPath"] + "/")]
    ref = {"name": mounted[0] if mounted else None}
    errs += secret_files(jspec, c, {"KEYWARD_DATABASE_URL_FILE": "database-url"}, ref["name"])
    if v["existingSecret"]:
        if ref.get("name") != v["existingSecret"]:
            errs.append("the migration Job does not read existingSecret")
    else:
        hs = [o for o in objs if o["kind"] == "Secret" and hook(o) and o["metadata"]["name"] == ref.get("name")]
        if not hs:
            errs.append(f"the migration Job reads Secret {ref.get('name')!r}, which is not a hook: it would not exist yet on install")
        else:
            sa = hs[0]["metadata"]["annotations"]
            if "pre-install" not in sa.get("helm.sh/hook", "") or "pre-upgrade" not in sa.get("helm.sh/hook", ""):
                errs.append("the hook Secret is not pre-install,pre-upgrade")
            if int(sa.get("helm.sh/hook-weight", 0)) >= int(ann.get("helm.sh/hook-weight", 0)):
                errs.append("the hook Secret's weight is not lower than the Job's")
            if v["database"]["url"] and "database-url" not in (hs[0].get("data") or {}):
                errs.append("the hook Secret has no database-url")
    if job["spec"]["template"]["spec"].get("serviceAccountName") == (the(objs, "ServiceAccount") or {}).get("metadata", {}).get("name"):
        errs.append("the migration Job uses the chart's ServiceAccount, which does not exist yet during pre-install")
    return errs


def rule_service(v, objs):
    """gRPC port named grpc with appProtocol grpc; metrics port iff metrics."""
    errs = []
    ports = {p["name"]: p for p in the(objs, "Service")["spec"]["ports"]}
    if ports.get("grpc", {}).get("appProtocol") != "grpc":
        errs.append("the Service has no port named grpc with appProtocol grpc")
    if ("metrics" in ports) != v["metrics"]["enabled"]:
        errs.append("the Service must have a metrics port exactly when metrics.enabled")
    return errs


def rule_tls(v, objs):
    """TLS Secret mounted read-only as a whole directory (no subPath, so
    renewals show up), KEYWARD_TLS_* set; nothing of it without TLS."""
    errs = []
    spec = the(objs, "Deployment")["spec"]["template"]["spec"]
    c = spec["containers"][0]
    env = env_of(c)
    if v["tls"]["enabled"]:
        vols = [x for x in spec.get("volumes") or [] if (x.get("secret") or {}).get("secretName") == v["tls"]["secretName"]]
        if not vols:
            errs.append("no volume from tls.secretName")
        for m in c.get("volumeMounts") or []:
            if vols and m["name"] == vols[0]["name"]:
                if "subPath" in m:
                    errs.append("the TLS mount uses subPath: renewed certificates would never appear")
                if not m.get("readOnly"):
                    errs.append("the TLS mount is not readOnly")
                d = m["mountPath"]
                if (env.get("KEYWARD_TLS_CERT") or {}).get("value") != f"{d}/tls.crt" or (env.get("KEYWARD_TLS_KEY") or {}).get("value") != f"{d}/tls.key":
                    errs.append("KEYWARD_TLS_CERT/KEYWARD_TLS_KEY do not point into the TLS mount")
        if ("KEYWARD_TLS_CLIENT_CA" in env) != v["tls"]["clientCA"]["enabled"]:
            errs.append("KEYWARD_TLS_CLIENT_CA must be set exactly when tls.clientCA.enabled")
    else:
        errs += [f"{k} set without TLS" for k in env if k.startswith("KEYWARD_TLS_")]
    return errs


def rule_redis_access(v, objs):
    """With Redis on: the password Secret and the Redis TLS Secret mounted
    read-only, KEYWARD_REDIS_PASSWORD_FILE / KEYWARD_REDIS_TLS_* pointing
    into them, no password in the environment; nothing of them otherwise."""
    errs = []
    spec = the(objs, "Deployment")["spec"]["template"]["spec"]
    c = spec["containers"][0]
    env = env_of(c)
    r = v["redis"]
    on = bool(r["url"]) if not v["existingSecret"] else r["inExistingSecret"]
    mounts = {m["name"]: m for m in c.get("volumeMounts") or []}
    vols = {x["name"]: x for x in spec.get("volumes") or []}
    want = {}
    if on and r["passwordSecret"]["name"]:
        want["redis-auth"] = (r["passwordSecret"]["name"], {"KEYWARD_REDIS_PASSWORD_FILE": r["passwordSecret"]["key"]})
    if on and r["tls"]["secretName"]:
        files = {"KEYWARD_REDIS_TLS_CA": "ca.crt"}
        if r["tls"]["clientCert"]:
            files |= {"KEYWARD_REDIS_TLS_CERT": "tls.crt", "KEYWARD_REDIS_TLS_KEY": "tls.key"}
        want["redis-tls"] = (r["tls"]["secretName"], files)
    for name, (secret, files) in want.items():
        if (vols.get(name, {}).get("secret") or {}).get("secretName") != secret:
            errs.append(f"no volume {name} from Secret {secret}")
        m = mounts.get(name)
        if not m or not m.get("readOnly"):
            errs.append(f"{name} is not mounted read-only")
            continue
        for var, file in files.items():
            if (env.get(var) or {}).get("value") != f"{m['mountPath']}/{file}":
                errs.append(f"{var} does not point at {file} in the {name} mount")
    for var in ("KEYWARD_REDIS_PASSWORD_FILE", "KEYWARD_REDIS_TLS_CA", "KEYWARD_REDIS_TLS_CERT", "KEYWARD_REDIS_TLS_KEY"):
        if var in env and not any(var in files for _, files in want.values()):
            errs.append(f"{var} set though its Secret is not in use")
    if ("KEYWARD_REDIS_USERNAME" in env) != bool(on and r["username"]):
        errs.append("KEYWARD_REDIS_USERNAME must be set exactly when Redis is on and redis.username is")
    if "KEYWARD_REDIS_PASSWORD" in env:
        errs.append("a Redis password in the environment")
    return errs


def rule_leak_reports(v, objs):
    """The leak-report keys file mounted read-only from the Secret or
    ConfigMap named, KEYWARD_LEAK_REPORT_KEYS pointing at it; nothing of it
    (so POST /leaks/github is 404) when neither is named."""
    errs = []
    spec = the(objs, "Deployment")["spec"]["template"]["spec"]
    c = spec["containers"][0]
    env = env_of(c)
    lr = v["leakReports"]
    if not (lr["secretName"] or lr["configMapName"]):
        if "KEYWARD_LEAK_REPORT_KEYS" in env:
            errs.append("KEYWARD_LEAK_REPORT_KEYS set without leakReports")
        return errs
    def source(x):
        if lr["secretName"]:
            return (x.get("secret") or {}).get("secretName") == lr["secretName"]
        return (x.get("configMap") or {}).get("name") == lr["configMapName"]
    vols = [x for x in spec.get("volumes") or [] if source(x)]
    if not vols:
        return ["no volume from leakReports.secretName or leakReports.configMapName"]
    mounts = [m for m in c.get("volumeMounts") or [] if m["name"] == vols[0]["name"]]
    if len(mounts) != 1 or not mounts[0].get("readOnly") or "subPath" in mounts[0]:
        errs.append("the leak-report keys must be mounted once, readOnly, without subPath")
    elif (env.get("KEYWARD_LEAK_REPORT_KEYS") or {}).get("value") != f"{mounts[0]['mountPath']}/{lr['key']}":
        errs.append("KEYWARD_LEAK_REPORT_KEYS does not point at the mounted keys file")
    return errs


def rule_networkpolicy(v, objs):
    """Only labelled clients on the gRPC port, only the scraper on metrics."""
    if not v["networkPolicy"]["enabled"]:
        return []
    errs = []
    np_ = server_policy(objs)
    rules = np_["spec"].get("ingress") or []
    if np_["spec"].get("policyTypes") != ["Ingress"]:
        errs.append(f"policyTypes is {np_['spec'].get('policyTypes')}")
    by_port = {}
    for r in rules:
        for p in r.get("ports") or []:
            by_port.setdefault(p["port"], []).append(r)
        if not r.get("ports") or not r.get("from"):
            errs.append("an ingress rule without ports or peers admits too much")
    grpc = [peer for r in by_port.get("grpc", []) for peer in r["from"]]
    labels = v["networkPolicy"]["clientPodLabels"]
    if not any(p.get("podSelector", {}).get("matchLabels") == labels and "namespaceSelector" not in p for p in grpc):
        errs.append("the gRPC port does not admit client-labelled pods of the namespace")
    for ns in v["networkPolicy"]["clientNamespaces"]:
        if not any(p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == ns
                   and p.get("podSelector", {}).get("matchLabels") == labels for p in grpc):
            errs.append(f"the gRPC port does not admit client-labelled pods of namespace {ns}")
    if v["metrics"]["enabled"]:
        if "metrics" not in by_port:
            errs.append("no rule for the metrics port")
    elif "metrics" in by_port:
        errs.append("a metrics rule without metrics")
    if set(by_port) - {"grpc", "metrics"}:
        errs.append(f"unexpected ports {set(by_port) - {'grpc', 'metrics'}}")
    return errs


def rule_numbers(v, objs):
    """Helm reads numbers as float64 and prints 1000000 as 1e+06: every
    number must come out as an integer, and numeric env values as digits."""
    errs = []

    def walk(x, where):
        if isinstance(x, float):
            errs.append(f"{where} is a float ({x})")
        elif isinstance(x, dict):
            for k, y in x.items():
                walk(y, f"{where}.{k}")
        elif isinstance(x, list):
            for i, y in enumerate(x):
                walk(y, f"{where}[{i}]")
        elif isinstance(x, str) and re.fullmatch(r"[0-9.]+e[+-][0-9]+s?", x):
            errs.append(f"{where} is {x!r} (scientific notation)")

    for o in objs:
        walk(o, f"{o['kind']}/{o['metadata']['name']}")
    return errs


def rule_selectors(v, objs):
    """Every selector of the server (Deployment, Service, PDB, NetworkPolicy,
    topology spread, ServiceMonitor) picks the server's pods and neither the
    migration pod nor the test pod."""
    errs = []
    d = the(objs, "Deployment")
    server = d["spec"]["template"]["metadata"]["labels"]
    others = {}
    for pid, spec in pod_specs(objs):
        if not pid.startswith("Deployment/"):
            o = next(o for o in objs if f"{o['kind']}/{o['metadata']['name']}" == pid)
            others[pid] = (o["spec"]["template"]["metadata"]["labels"] if o["kind"] == "Job" else o["metadata"]["labels"])
    sels = {"Deployment.spec.selector": d["spec"]["selector"]["matchLabels"],
            "Service.spec.selector": the(objs, "Service")["spec"]["selector"]}
    for t in d["spec"]["template"]["spec"].get("topologySpreadConstraints") or []:
        sels[f"topologySpread {t['topologyKey']}"] = (t.get("labelSelector") or {}).get("matchLabels", {})
    pdb = the(objs, "PodDisruptionBudget")
    if pdb:
        sels["PodDisruptionBudget"] = pdb["spec"]["selector"]["matchLabels"]
    if v["networkPolicy"]["enabled"]:
        sels["NetworkPolicy"] = server_policy(objs)["spec"]["podSelector"]["matchLabels"]
    sm = the(objs, "ServiceMonitor")
    if sm and not set(sm["spec"]["selector"]["matchLabels"].items()) <= set(the(objs, "Service")["metadata"]["labels"].items()):
        errs.append("the ServiceMonitor does not select the Service")
    for name, sel in sels.items():
        if not sel or not set(sel.items()) <= set(server.items()):
            errs.append(f"{name} {sel} does not select the server pods")
        for pid, labels in others.items():
            if sel and set(sel.items()) <= set(labels.items()):
                errs.append(f"{name} {sel} also selects {pid}")
    return errs


def server_policy(objs):
    """The NetworkPolicy of the server pods."""
    found = [o for o in objs if o["kind"] == "NetworkPolicy" and not hook(o)
             and o["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") == "server"]
    assert len(found) == 1, f"{len(found)} NetworkPolicies select the server pods"
    return found[0]


def secret_files(spec, container, files, secret_name):
    """Each KEYWARD_*_FILE variable points at its key in a read-only mount of
    Secret `secret_name`; no URL is in the environment (checkov CKV_K8S_35)."""
    errs = []
    env = env_of(container)
    for name in ("KEYWARD_DATABASE_URL", "KEYWARD_REDIS_URL"):
        if name in env:
            errs.append(f"{name} is in the environment; the URL must come as a file")
    for e in env.values():
        if (e.get("valueFrom") or {}).get("secretKeyRef"):
            errs.append(f"{e['name']} reads a Secret into the environment")
    vols = {x["name"]: x.get("secret") or {} for x in spec.get("volumes") or []}
    for var, key in files.items():
        path = (env.get(var) or {}).get("value")
        if not path:
            errs.append(f"{var} is not set")
            continue
        mounts = [m for m in container.get("volumeMounts") or [] if path == f"{m['mountPath']}/{key}"]
        if not mounts:
            errs.append(f"{var}={path} is not the file {key} of a mounted volume")
            continue
        m = mounts[0]
        vol = vols.get(m["name"])
        if vol is None or vol.get("secretName") != secret_name:
            errs.append(f"{var} is not read from Secret {secret_name!r}")
        elif vol.get("items") and key not in [i["key"] for i in vol["items"]]:
            errs.append(f"{var}: the volume does not project {key}")
        if not m.get("readOnly") or "subPath" in m:
            errs.append(f"{var}: the Secret mount is not a read-only directory")
    return errs


def rule_every_pod_has_a_networkpolicy(v, objs):
    """With networkPolicy.enabled, every pod the chart makes (server,
    migration Job, test pod) is selected by a NetworkPolicy that exists when
    the pod does (a hook pod's policy is a hook of the same event, earlier)."""
    if not v["networkPolicy"]["enabled"]:
        return []
    errs = []
    for o in objs:
        if o["kind"] not in ("Deployment", "Job", "Pod"):
            continue
        labels = o["metadata"]["labels"] if o["kind"] == "Pod" else o["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in objs if p["kind"] == "NetworkPolicy"
                    and set(p["spec"]["podSelector"].get("matchLabels", {}).items()) <= set(labels.items())]
        pid = f"{o['kind']}/{o['metadata']['name']}"
        if not covering:
            errs.append(f"no NetworkPolicy selects {pid}")
        elif "pre-install" in hook(o) and not any("pre-install" in hook(p) and
                                                  int(p["metadata"]["annotations"].get("helm.sh/hook-weight", 0))
                                                  < int(o["metadata"]["annotations"].get("helm.sh/hook-weight", 0))
                                                  for p in covering):
            errs.append(f"the NetworkPolicy of {pid} does not exist yet when it runs on pre-install")
    return errs


def rule_like_helm_template(v, objs):
    """Namespaced objects carry the release namespace, as `helm template`
    prints them; the ServiceMonitor looks in that namespace."""
    errs = []
    for o in objs:
        if o["metadata"].get("namespace") != "default":
            errs.append(f"{o['kind']}/{o['metadata']['name']} has namespace {o['metadata'].get('namespace')!r}")
    sm = the(objs, "ServiceMonitor")
    if sm and sm["spec"]["namespaceSelector"].get("matchNames") != ["default"]:
        errs.append(f"the ServiceMonitor looks in {sm['spec']['namespaceSelector'].get('matchNames')}")
    return errs


RULES = [rule_numbers, rule_selectors, rule_pod_security, rule_probes, rule_checksum, rule_optional_objects,
         rule_deployment_runtime, rule_migration_hook, rule_service, rule_tls, rule_redis_access, rule_leak_reports,
         rule_networkpolicy, rule_every_pod_has_a_networkpolicy, rule_like_helm_template]


def broken_rules(values, objs):
    """'rule: problem' for each broken rule; a rule that trips over a missing
    object or field is broken too."""
    problems = []
    for rule in RULES:
        try:
            errs = rule(values, objs)
        except Exception as e:
            errs = [f"{type(e).__name__}: {e}"]
        problems += [f"{rule.__name__[5:]}: {e}" for e in errs]
    return problems
