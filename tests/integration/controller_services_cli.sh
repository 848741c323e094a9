#!/bin/bash
# The CLI's side of services against the real nubo-controller and fake agents: `nubo run -p`
# sends an inline service group and prints its URL and service rows; `nubo instances list`
# fills the FQDN column; `nubo services create|list|get|rm`.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"
NUBO=$NUBO_BUILD/cli/nubo
[ -x "$NUBO" ] || t_skip "nubo (cli) not built at $NUBO"
export HOME=$T_TMP/home XDG_CACHE_HOME=$T_TMP/cache XDG_CONFIG_HOME=$T_TMP/config
unset NUBO_API NUBO_TOKEN NUBO_REGISTRY NUBO_METRO NUBO_ORG NUBO_PROFILE
cd "$T_TMP"

ctl_start
fake_start 2 --boot-ms 100 --metro fra
index_image admin/hello latest
"$NUBO" login --api "$CTL_URL" --token "$ADMIN" -q || t_fail "login"

# run -p: the inline group is created with the instance; the tree shows url and service
"$NUBO" run --metro=fra -p 443:8080/http+tls --name web --image=admin/hello:latest > run.out 2> run.err \
    || t_fail "run -p failed: $(cat run.err)"
cat run.out >&2
grep -q '^\[●\] Deployed successfully!$' run.out || t_fail "no success title"
SVC=$(sed -n 's/^ ├─* service: //p' run.out)
[[ $SVC =~ ^[a-z]+-[a-z]+-[a-z0-9]{8}$ ]] || t_fail "no service row: $(cat run.out)"
grep -q "^ ├─* url: https://$SVC.fra.nubo.local$" run.out || t_fail "no https url row: $(cat run.out)"
[ ! -s run.err ] || t_fail "run printed a notice: $(cat run.err)"

# only port 80 published: an http:// URL
"$NUBO" run --metro=fra -p 80:8080/http --name plain --image=admin/hello:latest > run80.out 2>&1 \
    || t_fail "run -p 80 failed: $(cat run80.out)"
grep -q '^ ├─* url: http://[a-z0-9-]*.fra.nubo.local$' run80.out || t_fail "no http url: $(cat run80.out)"

# a handler rule violation is one line from the controller, nothing created
if "$NUBO" run --metro=fra -p 8443:8080/http+tls --image=admin/hello:latest > bad.out 2> bad.err; then
    t_fail "a raw-TCP port with http was accepted"
fi
[ "$(wc -l < bad.err)" -eq 1 ] || t_fail "error is not one line: $(cat bad.err)"

# instances list: the FQDN column comes from service_group.domains
"$NUBO" instances list > list.txt
grep -Eq "^web +$SVC.fra.nubo.local +running" list.txt || t_fail "FQDN column: $(cat list.txt)"

# services create / list / get / rm
"$NUBO" -o table services create -n shop -d shop --hard-limit 50 443:8080 > create.out 2>&1 || t_fail "services create: $(cat create.out)"
grep -q "shop.fra.nubo.local" create.out || t_fail "create output: $(cat create.out)"
"$NUBO" services get shop -o json > get.json || t_fail "services get"
python3 - <<'PY' || t_fail "services get -o json: $(cat get.json)"
import json
g = json.load(open('get.json'))[0]
assert g['hard_limit'] == 50, g
ports = sorted((s['port'], s['destination_port'], tuple(s['handlers'])) for s in g['services'])
assert ports == [(80, 443, ('http', 'redirect')), (443, 8080, ('http', 'tls'))], ports
assert g['persistent'] is True, g
PY
"$NUBO" services list > svcs.txt
grep -Eq "^shop +shop.fra.nubo.local +443:8080/http\+tls 80:443/http\+redirect" svcs.txt || t_fail "services list: $(cat svcs.txt)"
grep -q "^$SVC " svcs.txt || t_fail "inline group not listed: $(cat svcs.txt)"
if "$NUBO" services rm "$SVC" 2> rm.err; then t_fail "removed a group with an instance"; fi
grep -q "attached" rm.err || t_fail "rm message: $(cat rm.err)"
"$NUBO" services rm shop -q || t_fail "services rm"
"$NUBO" instances rm web -q 2>/dev/null || "$NUBO" instances delete web -q || t_fail "instance rm"
"$NUBO" services list > svcs2.txt
! grep -q "^$SVC " svcs2.txt || t_fail "inline group outlived its instance: $(cat svcs2.txt)"
# certificates create / list / rm
if command -v openssl >/dev/null; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout k.pem -out c.pem -days 2 -subj /CN=www.example.com 2>/dev/null
    # global flags before the command: the subcommand is found behind their values
    "$NUBO" --api "$CTL_URL" --token "$ADMIN" certificates create -n ex --cn www.example.com \
        --chain c.pem --key k.pem > cc.out 2>&1 || t_fail "certificates create: $(cat cc.out)"
    "$NUBO" certificates list > cl.txt
    grep -Eq '^ex +www.example.com ' cl.txt || t_fail "certificates list: $(cat cl.txt)"
    if "$NUBO" certificates create -n bad --cn api.example.org --chain c.pem --key k.pem 2> cb.err; then
        t_fail "a certificate for the wrong cn was accepted"
    fi
    [ "$(wc -l < cb.err)" -eq 1 ] || t_fail "cert error is not one line: $(cat cb.err)"
    "$NUBO" certificates rm ex -q || t_fail "certificates rm"
fi
t_log "controller services cli: ok"
