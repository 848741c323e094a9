#!/usr/bin/env python3
"""The distribution token flow for tests that talk to a registry by hand: a request answered
401 with a Bearer challenge is sent again with a token from the challenge's realm, asked with
the given nubo token (as Bearer) or none. As a program, one request:

  regclient.py [--token T] [--accept A] [--data-file F] [--content-type C] METHOD URL

prints the HTTP status on the first line and the body after it; exits 0 whatever the status.
"""
import argparse
import json
import os
import re
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request


# The token realm is the controller, on https with the dev cluster's own CA: trust the CA the
# tests hand to curl and the CLI (lib_cluster.sh exports both), else the system's.
_CA = os.environ.get("NUBO_CA") or os.environ.get("CURL_CA_BUNDLE")
_CTX = ssl.create_default_context(cafile=_CA) if _CA else None


def _challenge(header):
    if not header or not header.lower().startswith("bearer "):
        return None
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def fetch_token(challenge, token):
    q = {"service": challenge.get("service", "")}
    scopes = challenge.get("scope", "").split()
    query = urllib.parse.urlencode(q) + "".join(
        "&scope=" + urllib.parse.quote(s, safe="") for s in scopes)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(challenge["realm"] + "?" + query, headers=headers)
    with urllib.request.urlopen(req, context=_CTX) as r:
        return json.load(r)["token"]


def request(method, url, token=None, data=None, headers=None):
    """One request with the token flow: returns (status, headers, body bytes)."""
    headers = dict(headers or {})
    for attempt in range(2):
        req = urllib.request.Request(url, method=method, data=data, headers=headers)
        try:
            with urllib.request.urlopen(req, context=_CTX) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            ch = _challenge(e.headers.get("WWW-Authenticate"))
            if e.code != 401 or ch is None or attempt == 1:
                return e.code, e.headers, e.read()
            try:
                headers["Authorization"] = "Bearer " + fetch_token(ch, token)
            except urllib.error.HTTPError as te:
                return te.code, te.headers, te.read()
    raise AssertionError("unreachable")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--token")
    ap.add_argument("--accept")
    ap.add_argument("--data-file")
    ap.add_argument("--content-type")
    ap.add_argument("method")
    ap.add_argument("url")
    a = ap.parse_args()
    headers = {}
    if a.accept:
        headers["Accept"] = a.accept
    if a.content_type:
        headers["Content-Type"] = a.content_type
    data = open(a.data_file, "rb").read() if a.data_file else None
    if data is None and a.method in ("POST", "PUT", "PATCH"):
        data = b""
    status, _, body = request(a.method, a.url, a.token, data, headers)
    sys.stdout.write(f"{status}\n")
    sys.stdout.flush()
    sys.stdout.buffer.write(body)


if __name__ == "__main__":
    main()
