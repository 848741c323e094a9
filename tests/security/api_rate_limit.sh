#!/bin/bash
# Issue 11, observation 4 (the part about one tenant slowing the rest): a user who floods the
# API past [controller] rate_limit_per_s gets 429 with Retry-After and a one-line envelope,
# at once, while another user and the admin keep getting 200; the flooder is served again
# once its bucket refills.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

ctl_start "[controller]
rate_limit_per_s = 1
rate_limit_burst = 5"
new_user() { api POST /v1/users "{\"name\":\"$1\"}"; expect 200 "create user $1"; jget 'd["data"]["users"][0]["token"]'; }
ALICE=$(new_user alice)
BOB=$(new_user bob)

# 40 requests on one connection: far more than the burst, far faster than 1 per second
urls=(); for _ in $(seq 40); do urls+=("$CTL_URL/v1/instances"); done
curl -sS -H "Authorization: Bearer $ALICE" -w '%{http_code}\n' -o /dev/null "${urls[@]}" > "$T_TMP/codes"
ok=$(grep -c '^200$' "$T_TMP/codes" || true)
limited=$(grep -c '^429$' "$T_TMP/codes" || true)
[ "$((ok + limited))" = 40 ] || t_fail "unexpected answers: $(sort "$T_TMP/codes" | uniq -c | tr '\n' ' ')"
[ "$limited" -ge 20 ] || t_fail "only $limited of 40 flooding requests were limited"
[ "$ok" -ge 5 ] || t_fail "the burst of 5 was not served ($ok answered 200)"
t_log "alice: $ok served, $limited answered 429"

# the refusal: 429, Retry-After, a one-line envelope naming the user
limited_reply() { [ "$(curl -sS -D "$T_TMP/h" -o "$T_TMP/b" -w '%{http_code}' -H "Authorization: Bearer $ALICE" "$CTL_URL/v1/instances")" = 429 ]; }
t_wait_for 30 limited_reply || t_fail "alice, still sending faster than 1/s, is never limited"
grep -qi '^Retry-After: [0-9]' "$T_TMP/h" || t_fail "no Retry-After: $(cat "$T_TMP/h")"
BODY=$(cat "$T_TMP/b"); expect_envelope_error
grep -q 'alice' "$T_TMP/b" || t_fail "the refusal does not name the user: $BODY"

# the others are not slowed down by alice's flood
api GET /v1/instances "" "$BOB"; expect 200 "bob while alice is limited"
for _ in $(seq 10); do api GET /v1/instances; expect 200 "the admin is not rate limited"; done

# alice is served again once her bucket refills
alice_served() { [ "$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ALICE" "$CTL_URL/v1/instances")" = 200 ]; }
t_wait_for 30 alice_served || t_fail "alice never served again"
t_log "rate limit ok: 429 with Retry-After for the flooder only, served again after refill"
