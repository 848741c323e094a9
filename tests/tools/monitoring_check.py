#!/usr/bin/env python3
"""Check deploy/monitoring against a live controller's /metrics text: every metric name the
Grafana dashboard's queries and the Prometheus sample use is a series the controller exports,
and the dashboard loads into a stock Grafana as is (an import input for its data source, one
schemaVersion, unique panel ids).

usage: monitoring_check.py DEPLOY_MONITORING_DIR METRICS_TEXT [--samples]
--samples: each name must have a sample line (not only its # TYPE line)."""
import json
import re
import sys

NAME = re.compile(r"\bnubo_[a-z0-9_]+\b")


def exported(text, samples_only):
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE ") and not samples_only:
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "histogram":
                names.update(name + s for s in ("_bucket", "_sum", "_count"))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def dashboard_queries(d):
    out = []

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ("expr", "query", "definition") and isinstance(v, str):
                    out.append(v)
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(d)
    return out


def main():
    mon, metrics = sys.argv[1], sys.argv[2]
    have = exported(open(metrics).read(), "--samples" in sys.argv[3:])
    errs = []
    d = json.load(open(f"{mon}/grafana-nubo.json"))
    if not isinstance(d.get("schemaVersion"), int):
        errs.append("dashboard: no integer schemaVersion")
    inputs = [i for i in d.get("__inputs", []) if i.get("pluginId") == "prometheus"]
    if [i.get("name") for i in inputs] != ["DS_PROMETHEUS"]:
        errs.append("dashboard: __inputs must declare the DS_PROMETHEUS data source")
    ids = []
    for p in d.get("panels", []):
        ids.append(p.get("id"))
        ds = p.get("datasource")
        if p.get("type") != "row" and ds != {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}:
            errs.append(f"panel {p.get('title')!r}: datasource {ds!r} is not ${{DS_PROMETHEUS}}")
        if p.get("type") != "row" and not p.get("targets"):
            errs.append(f"panel {p.get('title')!r}: no query")
    if len(ids) != len(set(ids)) or None in ids:
        errs.append("dashboard: panel ids missing or repeated")
    used = {}
    for q in dashboard_queries(d):
        for n in NAME.findall(q):
            used.setdefault(n, "grafana-nubo.json")
    for line in open(f"{mon}/prometheus.yml"):
        line = line.split("#", 1)[0]
        for n in NAME.findall(line):
            used.setdefault(n, "prometheus.yml")
    # the sample's keep rule is a regex over names, not a name
    used.pop("nubo_", None)
    if len(used) < 10:
        errs.append(f"only {len(used)} metric names found in the dashboard: parsing broke?")
    for n, where in sorted(used.items()):
        if n not in have:
            errs.append(f"{where}: {n} is not in the controller's /metrics")
    for e in errs:
        print(e)
    print(f"{len(used)} metric names checked, {len(errs)} problems")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
