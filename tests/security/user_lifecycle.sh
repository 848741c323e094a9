#!/bin/bash
# Issue 11, observation 8: users can be deleted (refused while they own objects, forced by an
# admin), tokens listed, revoked (refused at once) and made to expire (refused with a clear
# line); /metrics wants a token (an admin's, or a metrics-only one that reads nothing else);
# an agent's message that names host paths reaches the tenant without them.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

ctl_start
fake_start 1
new_user() { api POST /v1/users "{\"name\":\"$1\"}"; expect 200 "create user $1"; jget 'd["data"]["users"][0]["token"]'; }
ACME=$(new_user acme)
BOB=$(new_user bob)

# /metrics: no token 401, a tenant 403, the admin 200; a metrics token reads it and nothing else
CODE=$(curl -sS -o "$T_TMP/m" -w '%{http_code}' "$CTL_URL/metrics"); BODY=$(cat "$T_TMP/m")
[ "$CODE" = 401 ] || t_fail "/metrics without a token: $CODE"
expect_envelope_error
api GET /metrics "" "$ACME"; expect 403 "/metrics for a tenant"
api POST /v1/users/acme/tokens '{"scope":"metrics"}' "$ACME"; expect 403 "a tenant's metrics token"
api POST /v1/users/me/tokens '{"scope":"metrics"}'; expect 200 "metrics token"
SCRAPE=$(jget 'd["data"]["users"][0]["token"]')
CODE=$(curl -sS -o "$T_TMP/m" -w '%{http_code}' -H "Authorization: Bearer $SCRAPE" "$CTL_URL/metrics")
[ "$CODE" = 200 ] && grep -q '^nubo_nodes{state="ready"} 1' "$T_TMP/m" || t_fail "scrape token: $CODE"
api GET /v1/instances "" "$SCRAPE"; expect 403 "a metrics token listing instances"
grep -q 'metrics token' <<< "$BODY" || t_fail "unclear refusal: $BODY"

# acme owns an instance (on its own image) and a volume: delete is refused, nothing changes
index_image acme/web latest
api POST /v1/instances '{"autostart":true,"image":"acme/web:latest","name":"web","env":{"K":"v"}}' "$ACME"
expect 200 "acme's instance"
api POST /v1/volumes '{"name":"data","size_mb":16}' "$ACME"
api DELETE /v1/users/acme "" "$ACME"; expect 403 "a user deleting itself"
api DELETE /v1/users/acme; expect 409 "delete a user who owns things"
grep -q '1 instance(s).*force=true' <<< "$BODY" || t_fail "the refusal does not say what it owns: $BODY"
api GET /v1/instances/web "" "$ACME"; expect 200 "acme still works after the refusal"

# tokens: list (own only), a second token, revoke it: refused at once; bob sees none of acme's
api POST /v1/users/me/tokens '{}' "$ACME"; expect 200 "second token"
SECOND=$(jget 'd["data"]["users"][0]["token"]'); SECOND_ID=$(jget 'd["data"]["users"][0]["token_id"]')
api GET /v1/users/me/tokens "" "$ACME"; expect 200 "list tokens"
[ "$(jget 'len(d["data"]["tokens"])')" = 2 ] || t_fail "acme's tokens: $BODY"
! grep -q "$SECOND" <<< "$BODY" || t_fail "a list shows a secret"
api GET /v1/users/acme/tokens "" "$BOB"; expect 404 "bob lists acme's tokens"
api DELETE "/v1/users/acme/tokens/$SECOND_ID" "" "$BOB"; expect 404 "bob revokes acme's token"
api GET /v1/instances "" "$SECOND"; expect 200 "second token works"
api DELETE "/v1/users/me/tokens/$SECOND_ID" "" "$ACME"; expect 200 revoke
api GET /v1/instances "" "$SECOND"; expect 401 "revoked token"

# expiry: an admin's short token, refused once past with a line naming when
api POST /v1/users/bob/tokens '{"ttl_s":1}'; expect 200 "expiring token"
SHORT=$(jget 'd["data"]["users"][0]["token"]')
api POST /v1/users/bob/tokens '{"expires_at":"2001-01-01T00:00:00Z"}'; expect 400 "a past expiry"
expired() { api GET /v1/instances "" "$SHORT"; [ "$CODE" = 401 ]; }
t_wait_for 10 expired || t_fail "the token did not expire: $CODE $BODY"
grep -q 'expired at' <<< "$BODY" || t_fail "unclear expiry: $BODY"

# a host path in an agent's message never reaches the tenant
NODE_TOK=$(cat "$T_TMP/fake-state/fake-0.token")
WEB=$(api GET /v1/instances/web "" "$ACME"; jget 'd["data"]["instances"][0]["uuid"]')
curl -fsS -H "Authorization: Bearer $NODE_TOK" -o /dev/null -d "{\"instances\":[{\"uuid\":\"$WEB\",\"state\":\"stopped\",\"start_seq\":99,\"message\":\"cannot create /var/lib/nubo-agent/cache/tmp/x.y/kernel.tar: No space left\"}]}" \
    "$CTL_URL/agent/v1/status" || t_fail "status report"
api GET /v1/instances/web "" "$ACME"
! grep -q '/var/lib' <<< "$BODY" || t_fail "a host path reached the tenant: $BODY"

# forced: acme and everything it owns go; its token is refused
api DELETE '/v1/users/acme?force=true'; expect 200 "forced delete"
api GET /v1/instances "" "$ACME"; expect 401 "a deleted user's token"
api GET /v1/users; ! grep -q '"acme"' <<< "$BODY" || t_fail "acme still listed"
api GET /v1/volumes; [ "$(jget 'len(d["data"]["volumes"])')" = 0 ] || t_fail "volume left: $BODY"
api GET /v1/nodes; [ "$(jget 'd["data"]["nodes"][0]["instances"]')" = 0 ] || t_fail "instance left: $BODY"
api DELETE /v1/users/bob; expect 200 "delete a user who owns nothing"
t_log "user lifecycle ok"
