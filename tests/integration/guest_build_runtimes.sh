#!/usr/bin/env bash
# guest/build-runtimes packs and pushes official/{hello,base,python} to a throw-away registry in
# kraftkit's layout, reproducibly: a second run (and --check's double pack) gives the same digests.
source "$NUBO_SRC/tests/lib.sh"
NUBO=$NUBO_BUILD/cli/nubo
[ -x "$NUBO" ] || t_skip "$NUBO not built (CLI)"
"$NUBO" pkg --help >/dev/null 2>&1 || t_skip "the CLI has no 'pkg' command yet"
t_start_registry

run() { "$NUBO_SRC/guest/build-runtimes" --build "$NUBO_BUILD" --nubo "$NUBO" --registry "$T_REGISTRY_URL" "$@"; }
# A runtime with no spec: refused before anything is built, naming the ones that exist.
if run --runtimes nosuch --no-push > /dev/null 2> "$T_TMP/bad.log"; then t_fail "--runtimes nosuch was accepted"; fi
grep -q "no runtime 'nosuch' (known: .*base-compat.*node.*redis" "$T_TMP/bad.log" || t_fail "unknown runtime: $(cat "$T_TMP/bad.log")"
run --check > "$T_TMP/first.out" 2> "$T_TMP/first.log" || t_fail "build-runtimes failed"
run > "$T_TMP/second.out" 2> "$T_TMP/second.log" || t_fail "second build-runtimes failed"
diff "$T_TMP/first.out" "$T_TMP/second.out" || t_fail "digests changed between two runs"

ACCEPT='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json'
for ref in hello:latest base:latest python:3.11 python:latest; do
    name=${ref%%:*} tag=${ref#*:}
    want=$(awk -v r="official/$ref" '$1 == r {print $2}' "$T_TMP/first.out")
    [ -n "$want" ] || t_fail "no digest printed for official/$ref"
    got=$(curl -fsSI -H "Accept: $ACCEPT" "$T_REGISTRY_URL/v2/official/$name/manifests/$tag" \
        | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')
    [ "$got" = "$want" ] || t_fail "registry has official/$ref at '$got', build-runtimes said '$want'"
done
# The runtimes carry the kernel args label the agent uses.
grep -rq 'org.nubo.kernel.args' "$NUBO_BUILD/guest/oci/base-latest/blobs" || t_fail "base image lacks org.nubo.kernel.args"
cat "$T_TMP/first.out" >&2
echo "PASS guest_build_runtimes"
