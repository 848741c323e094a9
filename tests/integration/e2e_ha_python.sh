#!/bin/bash
# Issue 17's "Done when" with the seed's workflow (README's quickstart): on `nubo-devcluster up
# --ha`, `nubo build` + push + `nubo run` of examples/http-python, answering on its HTTPS URL
# through the metro's ingress; kill -9 of the leader; after the takeover the app still answers,
# and a changed app pushed as a new tag reaches the new leader (the registry's notification,
# through the devcluster's HAProxy, counted on that controller), is pulled by the agent (a
# registry token from the controller list) and answers through the ingress. The registry's
# token realm is asked as a client other than nubo's would (docker, kraft: the realm the 401
# names, with the user's token as the password): it must not name the dead controller.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
t_need_ingress
t_cluster_up fra:1 --ha
t_cluster_runtimes --runtimes python # official/python (and hello, always built)
D=$NUBO_DEVCLUSTER_DIR
C1=https://$NUBO_DEVCLUSTER_API C2=https://$NUBO_DEVCLUSTER_API2 LB=https://$NUBO_DEVCLUSTER_API_LB
REG=http://$NUBO_DEVCLUSTER_REGISTRY
[ -s "$D/ingress/fra/ingress.pid" ] || t_fail "the fra ingress did not start (see $T_TMP/cluster-up.log)"

leads_through_lb() { [ "$(role_of "$LB" | cut -d' ' -f3)" = "$1" ]; }
# what the app's URL answers through HAProxy (TLS from the cluster's CA)
app_get() { # url
    local fqdn=${1#https://}
    curl -fsS --max-time 10 --resolve "$fqdn:443:$ADDR" "$1"
}
app_says() { app_get "$1" | grep -q "$2"; }
# nubo run of an image; prints the URL row of its output
run_app() { # image
    local out
    out=$("$NUBO" run --metro=fra -p 443:8080/http+tls -m 512MiB --image="$1" 2>&1) || { t_log "$out"; return 1; }
    grep -Eq 'state: (running|standby)$' <<<"$out" || { t_log "$out"; return 1; }
    sed -n 's/.*─ url: //p' <<<"$out"
}
# registry_events requests the controller at $1 answered 2xx (its /metrics, admin token)
events_2xx() {
    curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$1/metrics" |
        sed -n 's/^nubo_api_requests_total{route="registry_events",code="2xx"} //p' | grep . || echo 0
}
# As docker or kraft: a manifest GET, the realm of its 401, a token from there (Basic
# demo:<user token>), the GET again with it.
pull_as_other_client() { # repo tag
    local h realm service tok
    h=$(curl -sS -o /dev/null -D - -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json' \
        "$REG/v2/$1/manifests/$2" | tr -d '\r' | grep -i '^www-authenticate:') || return 1
    realm=$(sed -E 's/.*realm="([^"]*)".*/\1/' <<<"$h")
    service=$(sed -E 's/.*service="([^"]*)".*/\1/' <<<"$h")
    tok=$(curl -fsS --max-time 5 -u "demo:$USER_TOKEN" "$realm?service=$service&scope=repository:$1:pull" |
        t_json 'd["token"]') || { t_log "no token from the realm $realm"; return 1; }
    curl -fsS -o /dev/null -H "Authorization: Bearer $tok" \
        -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json' \
        "$REG/v2/$1/manifests/$2"
}

# --- 1. the first controller leads, HAProxy sends to it
t_wait_for 30 is_leader "$C1" || t_fail "the first controller does not lead: $(role_of "$C1")"
t_wait_for 30 is_follower "$C2" || t_fail "the second controller does not follow: $(role_of "$C2")"
t_wait_for 30 leads_through_lb "$C1" || t_fail "HAProxy ($LB) does not reach the leader: $(role_of "$LB")"
LEADER_PID=$(cat "$D/controller/controller.pid")

# --- 2. the seed's workflow: build + push, run, the URL answers
app=$T_TMP/http-python
cp -r "$NUBO_SRC/examples/http-python" "$app"
t_cluster_build "$app" demo/http-python:v1
URL1=$(run_app demo/http-python:v1) || t_fail "nubo run demo/http-python:v1 failed"
[[ $URL1 == https://*.fra.nubo.local ]] || t_fail "no https URL for the published port: '$URL1'"
t_wait_for 60 app_says "$URL1" 'Hello from nubo!' || t_fail "$URL1 does not answer through the ingress: $(app_get "$URL1" 2>&1)"
pull_as_other_client demo/http-python v1 || t_fail "a client following the registry's token realm cannot pull v1"
t_log "v1 answers on $URL1; realm $(grep -h 'realm:' "$D/registry/tcp.yml")"

# --- 3. kill -9 of the leader; the follower takes over, HAProxy follows it
kill -9 "$LEADER_PID"
t_log "leader killed (kill -9 $LEADER_PID)"
t_wait_for 60 is_leader "$C2" || t_fail "the follower did not take over: $(role_of "$C2")"
t_wait_for 30 leads_through_lb "$C2" || t_fail "HAProxy ($LB) does not reach the new leader: $(role_of "$LB" 2>&1)"
t_log "$C2 leads: $(role_of "$C2")"

# the running app answers on (the ingress watches the new leader; a standby guest is woken by it)
t_wait_for 60 app_says "$URL1" 'Hello from nubo!' || t_fail "$URL1 no longer answers after the takeover: $(app_get "$URL1" 2>&1)"

# --- 4. a changed app, pushed as a new tag and run, through the new leader only
EV0=$(events_2xx "$C2")
sed -i 's/Hello from nubo!/Hello again from nubo!/' "$app/server.py"
t_cluster_build "$app" demo/http-python:v2
# the registry's push notification reached the new leader (through HAProxy)
events_arrived() { [ "$(events_2xx "$C2")" -gt "$EV0" ]; }
t_wait_for 30 events_arrived || t_fail "no registry notification reached the new leader (registry_events 2xx stays $EV0)"
# another client's pull: the realm the registry names answers without the dead controller
pull_as_other_client demo/http-python v2 || t_fail "a client following the registry's token realm cannot pull v2 after the takeover"
URL2=$(run_app demo/http-python:v2) || t_fail "nubo run demo/http-python:v2 on the new leader failed"
t_wait_for 60 app_says "$URL2" 'Hello again from nubo!' || t_fail "$URL2 (v2) does not answer through the ingress: $(app_get "$URL2" 2>&1)"
app_says "$URL1" 'Hello from nubo!' || t_fail "$URL1 (v1) stopped answering"
t_log "PASS: python workflow across a leader kill (v1 on $URL1 kept answering, v2 on $URL2 pushed, pulled and answering via the new leader)"
