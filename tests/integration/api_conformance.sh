#!/bin/bash
# Every response body of the platform operations nubo implements, validated against the public
# OpenAPI description (tests/fixtures/openapi) on the real nubo-controller with fake agents;
# the SDK-over-spec exceptions are listed in tests/tools/api_conformance.py (and README).
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"
python3 -c 'import jsonschema, yaml' 2>/dev/null ||
    t_skip "python3-jsonschema or python3-yaml missing (deploy/install-deps)"
command -v openssl >/dev/null || t_skip "openssl missing"

ctl_start
fake_start 2 --boot-ms 100
index_image admin/hello latest

D=$T_TMP/pki
t_signed_cert "$D" leaf DNS:www.example.com 'DNS:*.example.com'

python3 "$NUBO_SRC/tests/tools/api_conformance.py" "$NUBO_SRC/tests/fixtures/openapi/platform-0.6.0.yaml" \
    "$CTL_URL" "$ADMIN" "$D" > "$T_TMP/conformance.txt" 2>&1 && rc=0 || rc=$?
cat "$T_TMP/conformance.txt" >&2
[ "$rc" = 0 ] || t_fail "responses differ from the OpenAPI description (see above)"
t_log "api conformance: ok"
