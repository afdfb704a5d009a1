#!/usr/bin/env python3
"""Prints the figures of the criterion benches as the tables of BENCHMARKS.md.

    python3 scripts/bench-table.py [CRITERION_DIR]

Reads what `cargo bench` left in CRITERION_DIR (by default target/criterion):
criterion's own estimates (<bench>/new/estimates.json: the median of every bench;
criterion writes `parse/header` as `parse_header`) and the paired overheads that the
router and app benches write beside them (<bench>/paired.json: the median over the
samples of the time through the setup minus the time through bare, measured side by
side, in nanoseconds and relative to the bare time). Prints the medians, the overheads
over bare and the goals with their ratios; the Tower and actix-web goals are read from
the relative overheads, which cancel the machine's drift in speed from one bench to the
next.
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join("target", "criterion")


def load(group, bench, name):
    directory = {("parse", "header"): "parse_header", ("parse", "header-owned"): "parse_header-owned",
                 ("sha256", "secret"): "sha256_secret"}.get((group, bench))
    if directory is None:
        directory = os.path.join(group.replace("/", "_"), bench)
    try:
        with open(os.path.join(root, directory, *name)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def median(group, bench):
    e = load(group, bench, ("new", "estimates.json"))
    return None if e is None else e["median"]["point_estimate"]


def paired(group, bench):
    p = load(group, bench, ("paired.json",))
    if p is None:
        return None, None
    return p.get("paired_overhead_ns"), p.get("paired_overhead_relative")


def ns(v):
    return "–" if v is None else f"{v:,.1f} ns"


rows = [
    ("parse", "header"), ("parse", "header-owned"), ("sha256", "secret"),
    ("verify/memory", "1"), ("verify/memory", "1000"), ("verify/memory", "1000000"),
    ("router", "bare"), ("router", "bearer-auth"), ("router", "bearer-auth-layer"),
    ("router", "tower-http-static"), ("router", "tower-http-static-layer"),
    ("router", "floor"), ("router", "floor-layer"), ("router", "tower-http-hashed"),
    ("router-floor", "sha256-secret"),
    ("router-refused", "bearer-auth"), ("router-refused", "tower-http-hashed"),
    ("router-refused", "floor"),
    ("app", "bare"), ("app", "bearer-auth"), ("app", "actix-web-httpauth"),
    ("app", "actix-web-httpauth-static"),
    ("app-refused", "bearer-auth"), ("app-refused", "actix-web-httpauth"),
]
m = {}
over = {}
over_ns = {}
print("| bench | median | overhead over bare, paired | the same, relative to bare |")
print("|---|---:|---:|---:|")
for group, bench in rows:
    m[(group, bench)] = median(group, bench)
    absolute, relative = paired(group, bench)
    over[(group, bench)] = relative
    over_ns[(group, bench)] = absolute
    note = " (bare against itself: the noise)" if absolute is not None and bench == "bare" else ""
    a = "" if absolute is None else ns(absolute)
    r = "" if relative is None else f"{100 * relative:+.1f}%{note}"
    print(f"| `{group}/{bench}` | {ns(m[(group, bench)])} | {a} | {r} |")


def ratio(a, b):
    return None if a is None or b is None or b <= 0 else a / b


def plus(a, b):
    return None if a is None or b is None else a + b


def verify_ratio(n):
    p = load("verify/memory", n, ("paired.json",))
    return None if p is None else 1 + p["paired_relative_to_one_key"]


def scaling():
    p = load("scaling", "bearer-auth", ("scaling.json",))
    return None if p is None else p["bearer_auth_over_bare"]


sha = m.get(("router-floor", "sha256-secret"))
goals = [
    ("Tower, `route_layer`: our overhead / (tower-http static's + `sha256/secret`), in ns",
     ratio(over_ns.get(("router", "bearer-auth")),
           plus(over_ns.get(("router", "tower-http-static")), sha)), 1.3, "le"),
    ("Tower, `layer`: the same",
     ratio(over_ns.get(("router", "bearer-auth-layer")),
           plus(over_ns.get(("router", "tower-http-static-layer")), sha)), 1.3, "le"),
    ("Tower, `route_layer`: our overhead / the floor's (relative to bare; no goal)",
     ratio(over.get(("router", "bearer-auth")), over.get(("router", "floor"))), None, "le"),
    ("Tower, `layer`: the same (no goal)",
     ratio(over.get(("router", "bearer-auth-layer")), over.get(("router", "floor-layer"))), None, "le"),
    ("actix-web: our overhead / actix-web-httpauth's with a constant-time static compare",
     ratio(over.get(("app", "bearer-auth")), over.get(("app", "actix-web-httpauth-static"))), 1.0, "le"),
    ("actix-web: our overhead / actix-web-httpauth's hashed lookup (no goal)",
     ratio(over.get(("app", "bearer-auth")), over.get(("app", "actix-web-httpauth"))), None, "le"),
    ("verify at 1,000,000 keys / at 1 key (paired)", verify_ratio("1000000"), 1.10, "le"),
    ("verify at 1,000 keys / at 1 key (paired; no goal)", verify_ratio("1000"), None, "le"),
    ("refused (401): our overhead / tower-http hashed lookup's",
     ratio(over.get(("router-refused", "bearer-auth")),
           over.get(("router-refused", "tower-http-hashed"))), 1.0, "le"),
    ("every core / one core, ours / bare's (`scaling`)", scaling(), 0.95, "ge"),
]
print()
print("| goal | ratio | target | |")
print("|---|---:|---:|---|")
for name, r, target, sense in goals:
    if target is None or r is None:
        verdict = ""
    elif sense == "le":
        verdict = "met" if r <= target else "missed"
    else:
        verdict = "met" if r >= target else "missed"
    rs = "–" if r is None else f"{r:.2f}"
    ts = "–" if target is None else (f"≤ {target:.2f}" if sense == "le" else f"≥ {target:.2f}")
    print(f"| {name} | {rs} | {ts} | {verdict} |")
