#!/bin/bash
# Issue 11, observation 1 replayed against a real docker-registry with token auth, the
# controller as its token service: with bob's token (a second user) or none, pushing to
# alice/* or official/*, overwriting alice's tag, deleting her manifest, pulling her manifest
# and layers, and listing _catalog are all refused and change nothing; alice pushes, pulls and
# pulls official/*, and deletes her own once no instance is pinned to it; the admin pushes
# official/* and lists the catalog; the controller resolves alice's tag with a token it signs
# itself. Docker login's Basic works too.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

NUBO=$NUBO_BUILD/cli/nubo
[ -x "$NUBO" ] || t_skip "the nubo CLI is not built"
command -v openssl >/dev/null || t_skip "openssl missing"
export XDG_CONFIG_HOME=$T_TMP/config # no profile: each push names its token or has none
KERNEL=$(type -P true)

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=nubo test registry tokens" \
    -keyout "$T_TMP/token.key" -out "$T_TMP/token.crt" 2> /dev/null || t_fail "openssl req"
CTL_PORT=$(t_free_port)
t_start_registry "auth:
  token:
    realm: http://127.0.0.1:$CTL_PORT/registry/token
    service: nubo-registry
    issuer: nubo-controller
    rootcertbundle: $T_TMP/token.crt"
REG=$T_REGISTRY_URL
CTL_REGISTRY_URL=$REG
ctl_start "token_key_file = $T_TMP/token.key"
fake_start 1

new_user() { api POST /v1/users "{\"name\":\"$1\"}"; expect 200 "create user $1"; jget 'd["data"]["users"][0]["token"]'; }
ALICE=$(new_user alice)
BOB=$(new_user bob)

# as TOKEN METHOD PATH [curl args]: the registry's answer through the token flow (401 with a
# Bearer challenge -> a token from its realm asked with TOKEN -> the request again); STATUS
# holds the last HTTP status (the token service's when it refused). curl, not python: fast.
as() {
    local tok=$1 m=$2 p=$3; shift 3
    local args=(-sS -X "$m" -o "$T_TMP/rc.out" -D "$T_TMP/rc.h" -w '%{http_code}' "$@")
    if [ "$m" = POST ] || [ "$m" = PUT ]; then args+=(--data-binary ''); fi
    STATUS=$(curl "${args[@]}" "$REG$p") || t_fail "curl $m $p"
    local ch; ch=$(tr -d '\r' < "$T_TMP/rc.h" | sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: Bearer //p')
    if [ "$STATUS" = 401 ] && [ -n "$ch" ]; then
        local realm service scope
        realm=$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$ch")
        service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$ch")
        scope=$(sed -n 's/.*scope="\([^"]*\)".*/\1/p' <<<"$ch")
        STATUS=$(curl -sS -G -o "$T_TMP/rc.out" -w '%{http_code}' ${tok:+-H "Authorization: Bearer $tok"} \
            --data-urlencode "service=$service" --data-urlencode "scope=$scope" "$realm") || t_fail "curl $realm"
        if [ "$STATUS" = 200 ]; then
            local jwt; jwt=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' "$T_TMP/rc.out")
            STATUS=$(curl "${args[@]}" -H "Authorization: Bearer $jwt" "$REG$p") || t_fail "curl $m $p"
        fi
    fi
    cat "$T_TMP/rc.out"
}
refused() { # what TOKEN METHOD PATH [args]
    local what=$1; shift
    as "$@" > /dev/null
    [ "$STATUS" = 401 ] || [ "$STATUS" = 403 ] || t_fail "$what: expected 401/403, got $STATUS: $(cat "$T_TMP/rc.out")"
}
ACCEPT=(-H "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json")
digest_of() { # TOKEN REPO TAG: the manifest digest the registry holds
    as "$1" GET "/v2/$2/manifests/$3" "${ACCEPT[@]}" > "$T_TMP/m.json"
    [ "$STATUS" = 200 ] || t_fail "GET $2:$3 as owner: $STATUS"
    echo "sha256:$(sha256sum < "$T_TMP/m.json" | cut -d' ' -f1)"
}
push() { # TOKEN REF ARG
    NUBO_API=$CTL_URL NUBO_TOKEN=$1 "$NUBO" pkg --kernel "$KERNEL" --arg "$3" --output "$2" --push \
        --registry "$REG" -q > "$T_TMP/push.log" 2>&1
}

# --- positive paths: owner pushes and pulls; admin pushes official/*; users pull official/*
push "$ALICE" alice/app:v1 /bin/alice || t_fail "alice cannot push alice/app:v1: $(cat "$T_TMP/push.log")"
push "$ADMIN" official/base:v1 /bin/base || t_fail "admin cannot push official/base:v1: $(cat "$T_TMP/push.log")"
A1=$(digest_of "$ALICE" alice/app v1)
digest_of "$BOB" official/base v1 > /dev/null
# a pushed reference is an index (or a manifest): the first manifest it names
first_manifest() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["manifests"][0]["digest"] if "manifests" in d else "")' "$1"; }
MAN=$(first_manifest "$T_TMP/m.json")
as "$ALICE" GET /v2/alice/app/manifests/v1 "${ACCEPT[@]}" > "$T_TMP/ai.json"
AMAN=$(first_manifest "$T_TMP/ai.json")
[ -n "$AMAN" ] && [ -n "$MAN" ] || t_fail "the pushed references are not indexes"
as "$ALICE" GET "/v2/alice/app/manifests/$AMAN" -H "Accept: application/vnd.oci.image.manifest.v1+json" > "$T_TMP/am.json"
[ "$STATUS" = 200 ] || t_fail "alice cannot read her manifest: $STATUS"
LAYER=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$T_TMP/am.json")
as "$ALICE" GET "/v2/alice/app/blobs/$LAYER" > /dev/null
[ "$STATUS" = 200 ] || t_fail "alice cannot pull her layer: $STATUS"
as "$ALICE" GET "/v2/official/base/manifests/$MAN" -H "Accept: application/vnd.oci.image.manifest.v1+json" > /dev/null
[ "$STATUS" = 200 ] || t_fail "alice cannot pull official/base: $STATUS"
# the controller pulls alice's image with a token it signs for itself
api POST /v1/instances '{"image":"alice/app:v1","name":"pinned","autostart":false}' "$ALICE"
expect 200 "alice creates from her image (controller resolves through the token service)"
[ "$(jget 'd["data"]["instances"][0]["image"]')" = "alice/app@$A1" ] || t_fail "not pinned to $A1: $BODY"
t_log "positive paths ok: alice/app@$A1, official/base pulled by bob and alice, controller resolved"

# --- observation 1, each refused
push "$BOB" alice/app:v1 /bin/evil && t_fail "bob overwrote alice/app:v1"
msg=$(cat "$T_TMP/push.log")
[ "$(grep -c . <<<"$msg")" = 1 ] || t_fail "bob's refused push is not one line: $msg"
grep -q "refused access\|nubo login" <<<"$msg" || t_fail "bob's refused push does not say why: $msg"
push "$BOB" alice/other:v1 /bin/evil && t_fail "bob pushed into alice/"
push "$BOB" official/hello:x /bin/evil && t_fail "bob pushed official/hello:x"
push "$ALICE" official/base:v1 /bin/evil && t_fail "alice (no admin) overwrote official/base:v1"
push "" alice/app:v1 /bin/evil && t_fail "an anonymous push overwrote alice/app:v1"
refused "bob starts an upload into alice/app" "$BOB" POST /v2/alice/app/blobs/uploads/
refused "anonymous upload into official/hello" "" POST /v2/official/hello/blobs/uploads/
refused "bob deletes alice's manifest" "$BOB" DELETE "/v2/alice/app/manifests/$A1"
refused "anonymous delete" "" DELETE "/v2/alice/app/manifests/$A1"
refused "bob deletes official/base" "$BOB" DELETE "/v2/official/base/manifests/$MAN"
refused "bob pulls alice's manifest" "$BOB" GET /v2/alice/app/manifests/v1 "${ACCEPT[@]}"
refused "bob pulls alice's layer" "$BOB" GET "/v2/alice/app/blobs/$LAYER"
refused "anonymous pull of alice's layer" "" GET "/v2/alice/app/blobs/$LAYER"
refused "bob lists the catalog" "$BOB" GET /v2/_catalog
refused "alice lists the catalog" "$ALICE" GET /v2/_catalog
refused "anonymous catalog" "" GET /v2/_catalog
[ "$(digest_of "$ALICE" alice/app v1)" = "$A1" ] || t_fail "alice/app:v1 changed"
as "$ADMIN" GET /v2/_catalog > "$T_TMP/catalog.json"
[ "$STATUS" = 200 ] || t_fail "the admin cannot list the catalog: $STATUS"
repos=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["repositories"]))' "$T_TMP/catalog.json")
[ "$repos" = "alice/app official/base" ] || t_fail "catalog after the refused pushes: $repos"
t_log "observation 1 refused: pushes (other owner, official, overwrite, anonymous), deletes, pulls, catalog"

# --- the token service itself: no credential is a 401 naming nubo login with a Basic challenge;
# bob's token for alice's repository grants nothing; docker login's Basic is accepted
code=$(curl -sS -D "$T_TMP/h" -o "$T_TMP/b" -w '%{http_code}' "$CTL_URL/registry/token?service=nubo-registry&scope=repository:alice/app:pull")
[ "$code" = 401 ] || t_fail "token without credential: $code"
grep -qi '^WWW-Authenticate: Basic' "$T_TMP/h" || t_fail "no Basic challenge: $(cat "$T_TMP/h")"
grep -q 'nubo login' "$T_TMP/b" || t_fail "the refusal does not say what to do: $(cat "$T_TMP/b")"
claims() { python3 -c '
import base64, json, sys
t = json.load(sys.stdin)["token"].split(".")[1]
print(json.dumps(json.loads(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)))["access"]))'; }
got=$(curl -fsS -H "Authorization: Bearer $BOB" "$CTL_URL/registry/token?service=nubo-registry&scope=repository:alice/app:pull,push,delete" | claims)
[ "$got" = "[]" ] || t_fail "bob got a grant on alice/app: $got"
got=$(curl -fsS -u "docker:$ALICE" "$CTL_URL/registry/token?service=nubo-registry&scope=repository:alice/app:pull,push&scope=repository:official/base:pull,push" | claims)
[ "$got" = '[{"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}, {"type": "repository", "name": "official/base", "actions": ["pull"]}]' ] \
    || t_fail "alice's grants: $got"

# --- the owner deletes her own, but not while an instance is pinned to it
refused "alice deletes the digest her instance is pinned to" "$ALICE" DELETE "/v2/alice/app/manifests/$A1"
[ "$(digest_of "$ALICE" alice/app v1)" = "$A1" ] || t_fail "alice/app:v1 deleted under its instance"
api DELETE /v1/instances/pinned "" "$ALICE"
expect 200 "delete the pinned instance"
as "$ALICE" DELETE "/v2/alice/app/manifests/$A1" > /dev/null
[ "$STATUS" = 202 ] || t_fail "alice cannot delete her manifest once nothing uses it: $STATUS"
t_log "token service ok; owner delete refused while pinned, then ok"
