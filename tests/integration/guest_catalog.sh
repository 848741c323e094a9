#!/usr/bin/env bash
# Every runtime of the catalog (guest/runtimes/*/runtime.toml) built from Debian packages by
# mkruntime.py and booted once under qemu microvm/TCG in a test-owned network namespace, one
# at a time, with a small app appended the way `nubo build` appends it: each must answer
# (HTTP, redis PING, memcached version) or print its interpreter's greeting. Prints size and
# boot-to-listening per runtime. Then the bad inputs: a missing cmd binary, a dynamic binary
# on base, a spec naming a package Debian does not have, an unknown runtime name.
source "$NUBO_SRC/tests/lib.sh"
t_need_root
command -v qemu-system-x86_64 >/dev/null || t_skip "qemu-system-x86_64 missing (deploy/install-deps installs qemu-system-x86)"
command -v curl >/dev/null || t_skip "curl missing"

RT=$NUBO_BUILD/guest/runtimes
SPECS=$NUBO_SRC/guest/runtimes
mapfile -t ALL < <(ls "$SPECS"/*/runtime.toml | awk -F/ '{print $(NF-1)}')
mkdir -p "$NUBO_BUILD/guest"
# One runtime at a time (-j1), under the lock build-runtimes and the other guest tests take.
targets=()
for r in "${ALL[@]}"; do targets+=("guest_runtime_$r"); done
# The package cache the build was configured with (deploy/run-tests: /var/cache/nubo/runtimes).
CACHE=$(sed -n 's/^GUEST_RT_CACHE:PATH=//p' "$NUBO_BUILD/CMakeCache.txt")
CACHE=${CACHE:-$RT/cache}
t_log "building ${#ALL[@]} runtimes (Debian downloads cached in $CACHE)"
flock "$NUBO_BUILD/guest/build.lock" cmake --build "$NUBO_BUILD" --target "${targets[@]}" -j1 \
    > "$T_TMP/build.log" 2>&1 || { tail -20 "$T_TMP/build.log"; t_fail "cannot build the runtimes (see build.log)"; }
MKCPIO=$RT/guest_mkcpio
KERNEL=$RT/base/vmlinuz
[ -f "$RT/base/vmlinux" ] && KERNEL=$RT/base/vmlinux
KHZ=$(awk '/^cpu MHz/ {printf "%d", $4 * 1000; exit}' /proc/cpuinfo)
KARGS="$(cat "$SPECS/kernel-args") tsc_early_khz=${KHZ:-2000000}"

t_netns cat
ip -n "$T_NS" link add br0 type bridge
ip -n "$T_NS" addr add 10.79.0.1/24 dev br0
ip -n "$T_NS" link set br0 up
GUEST=10.79.0.2

# What an image must not carry, and where apps look for interpreters and servers.
for r in "${ALL[@]}"; do
    c=$RT/$r/contents.txt
    [ -s "$c" ] || t_fail "$r: no contents.txt"
    ! grep -Eq '^/usr/share/(doc|man|info)/|^/var/lib/dpkg|/apt/' "$c" || t_fail "$r carries docs, man pages or apt: $(grep -E '^/usr/share/(doc|man|info)/|dpkg|apt' "$c" | head -3)"
done
for pair in node:/usr/bin/node node:/usr/local/bin/node python:/usr/bin/python3 python:/usr/local/bin/python3 \
            ruby:/usr/bin/ruby ruby:/usr/local/bin/ruby php:/usr/bin/php php:/usr/local/bin/php \
            perl:/usr/bin/perl perl:/usr/local/bin/perl lua:/usr/bin/lua lua:/usr/local/bin/lua \
            java:/usr/bin/java java:/usr/local/bin/java nginx:/usr/sbin/nginx nginx:/usr/bin/nginx \
            nginx:/usr/local/sbin/nginx redis:/usr/bin/redis-server redis:/usr/local/bin/redis-server \
            memcached:/usr/bin/memcached memcached:/usr/local/bin/memcached haproxy:/usr/sbin/haproxy \
            haproxy:/usr/local/sbin/haproxy caddy:/usr/bin/caddy caddy:/usr/local/bin/caddy \
            mariadb:/usr/sbin/mariadbd mariadb:/usr/local/bin/mariadbd; do
    r=${pair%%:*}
    [ -f "$RT/$r/contents.txt" ] || continue
    grep -qx "${pair#*:}" "$RT/$r/contents.txt" || t_fail "$r: ${pair#*:} missing"
done

# The image's config.User (pkg.args --user X), "" when it declares none.
image_user() {
    local args=() i
    mapfile -d '' -t args < "$RT/$1/pkg.args"
    for ((i = 0; i < ${#args[@]}; i++)); do
        [ "${args[i]}" = --user ] && { echo "${args[i + 1]}"; return; }
    done
    echo ""
}

# The image's own cmd (pkg.args --arg ...), for runtimes booted without an app cmd.
image_cmd() {
    local args=() out=() i
    mapfile -d '' -t args < "$RT/$1/pkg.args"
    for ((i = 0; i < ${#args[@]}; i++)); do
        [ "${args[i]}" = --arg ] && out+=("${args[i + 1]}")
    done
    printf '%s\n' "${out[@]}"
}

# boot NAME MEM APP_CPIO|- PORT|- CMD...: boots in the netns; sets QPID, LOG, START_US.
boot() {
    local name=$1 mem=$2 app=$3 port=$4; shift 4
    local initrd=$RT/$name/initrd.cpio line="" a user
    if [ "$app" != - ]; then
        cat "$RT/$name/initrd.cpio" "$app" > "$T_TMP/$name-initrd.cpio"
        initrd=$T_TMP/$name-initrd.cpio
    fi
    # Quote every argument as the agent does: "…" with \" and \\ escaped.
    for a in "$@"; do
        a=${a//\\/\\\\}
        line+=" \"${a//\"/\\\"}\""
    done
    # The image's config.User reaches /init as the agent passes it (nubo.user=, before "--").
    user=$(image_user "$name")
    ip -n "$T_NS" link del tap0 2>/dev/null || true
    ip -n "$T_NS" tuntap add dev tap0 mode tap
    ip -n "$T_NS" link set tap0 master br0
    ip -n "$T_NS" link set tap0 up
    LOG=$T_TMP/$name.log
    START_US=${EPOCHREALTIME/./}
    ip netns exec "$T_NS" qemu-system-x86_64 -M microvm -accel tcg -nodefaults -no-user-config \
        -display none -serial stdio -no-reboot -m "$mem" -device virtio-rng-device \
        -kernel "$KERNEL" -initrd "$initrd" \
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-device,netdev=n0 \
        -append "$KARGS${user:+ nubo.user=$user} netdev.ip=$GUEST/24:10.79.0.1:10.79.0.1 --$line" > "$LOG" 2>&1 &
    QPID=$!
    t_track_pid "$QPID"
}

# Until the guest accepts on PORT (or qemu ends): prints ms from qemu start.
wait_listening() {
    local port=$1 limit=$2 end=$((SECONDS + $2))
    while [ $SECONDS -lt $end ] && kill -0 "$QPID" 2>/dev/null; do
        if ip netns exec "$T_NS" timeout 2 bash -c "exec 3<>/dev/tcp/$GUEST/$port" 2>/dev/null; then
            echo $(( (${EPOCHREALTIME/./} - START_US) / 1000 ))
            return 0
        fi
        sleep 0.2
    done
    return 1
}

stop() { kill "$QPID" 2>/dev/null || true; wait "$QPID" 2>/dev/null || true; }

cpio_of() { # OUT SPEC-LINES...
    local out=$1; shift
    printf '%s\n' "$@" | "$MKCPIO" "$out" || t_fail "mkcpio $out"
}

# --- the apps
EX=$NUBO_SRC/examples
cc -O2 -static -DLINKAGE='"static"' -o "$T_TMP/http_static" "$EX/http-c/server.c" || t_fail "cc -static"
cc -O2 -o "$T_TMP/http_dynamic" "$EX/http-c/server.c" || t_fail "cc"
cpio_of "$T_TMP/c-static.cpio" "file /http_server 0755 $T_TMP/http_static"
cpio_of "$T_TMP/c-dynamic.cpio" "file /http_server 0755 $T_TMP/http_dynamic"
cpio_of "$T_TMP/python.cpio" "dir /src 0755" "file /src/server.py 0644 $EX/http-python/server.py"
cpio_of "$T_TMP/node.cpio" "dir /usr 0755" "dir /usr/src 0755" "file /usr/src/server.js 0644 $EX/http-node/server.js"
cpio_of "$T_TMP/nginx.cpio" "dir /etc 0755" "dir /etc/nginx 0755" \
    "file /etc/nginx/nginx.conf 0644 $EX/nginx/rootfs/etc/nginx/nginx.conf" "dir /wwwroot 0755" \
    "file /wwwroot/index.html 0644 $EX/nginx/rootfs/wwwroot/index.html"
cpio_of "$T_TMP/redis.cpio" "dir /etc 0755" "dir /etc/redis 0755" \
    "file /etc/redis/redis.conf 0644 $EX/redis/rootfs/etc/redis/redis.conf"
mkdir -p "$T_TMP/app"
cat > "$T_TMP/app/server.pl" <<'EOF'
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die "listen: $!";
print "listening on :8080\n";
while (my $c = $s->accept) {
    my $req = <$c>;
    print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nHello from nubo! (Perl $^V)\n";
    close $c;
}
EOF
cat > "$T_TMP/app/server.rb" <<'EOF'
require "socket"
server = TCPServer.new("0.0.0.0", 8080)
puts "listening on :8080"
$stdout.flush
loop do
  c = server.accept
  c.gets
  c.print "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nHello from nubo! (Ruby #{RUBY_VERSION})\n"
  c.close
end
EOF
printf '<?php echo "Hello from nubo! (PHP " . PHP_VERSION . ")\\n";\n' > "$T_TMP/app/index.php"
printf 'print("Hello from nubo! (" .. _VERSION .. ")")\n' > "$T_TMP/app/hello.lua"
cpio_of "$T_TMP/scripts.cpio" "dir /app 0755" "file /app/server.pl 0644 $T_TMP/app/server.pl" \
    "file /app/server.rb 0644 $T_TMP/app/server.rb" "file /app/index.php 0644 $T_TMP/app/index.php" \
    "file /app/hello.lua 0644 $T_TMP/app/hello.lua"
JAVA_APP=-
if command -v javac >/dev/null; then
    mkdir -p "$T_TMP/java"
    cat > "$T_TMP/java/Server.java" <<'EOF'
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
public class Server {
    public static void main(String[] args) throws Exception {
        HttpServer s = HttpServer.create(new InetSocketAddress(8080), 16);
        s.createContext("/", x -> {
            byte[] b = ("Hello from nubo! (Java " + System.getProperty("java.version") + ")\n").getBytes();
            x.sendResponseHeaders(200, b.length);
            x.getResponseBody().write(b);
            x.close();
        });
        s.start();
        System.out.println("listening on :8080");
    }
}
EOF
    javac --release 17 -d "$T_TMP/java" "$T_TMP/java/Server.java" 2> "$T_TMP/javac.log" \
        && cpio_of "$T_TMP/java.cpio" "dir /app 0755" "file /app/Server.class 0644 $T_TMP/java/Server.class" \
        && JAVA_APP=$T_TMP/java.cpio
fi

# --- one boot per runtime: NAME MEM APP PORT PROBE EXPECT CMD...
#   PROBE: http | redis | memcached | greeting (the server's first bytes) | console (EXPECT is then a console line, no port)
REPORT=$T_TMP/report.txt
check() {
    local name=$1 mem=$2 app=$3 port=$4 probe=$5 expect=$6; shift 6
    # NUBO_CATALOG_ONLY="java mariadb": boot only those (a developer's re-run; CI boots all).
    if [ -n "${NUBO_CATALOG_ONLY:-}" ] && ! grep -qw -- "$name" <<<"$NUBO_CATALOG_ONLY"; then
        return 0
    fi
    [ -f "$RT/$name/initrd.cpio" ] || t_fail "$name: no initrd"
    if [ $# -eq 0 ]; then mapfile -t cmd < <(image_cmd "$name"); set -- "${cmd[@]}"; fi
    boot "$name" "$mem" "$app" "$port" "$@"
    local ms got=""
    if [ "$probe" = console ]; then
        t_wait_for 180 grep -q "$expect" "$LOG" || { tail -20 "$LOG"; t_fail "$name: no '$expect' on the console"; }
        ms=$(( (${EPOCHREALTIME/./} - START_US) / 1000 ))
        t_wait_for 60 grep -q '^NUBO_EXIT 0' "$LOG" || { tail -10 "$LOG"; t_fail "$name: did not exit 0"; }
        got=$(grep -m1 "$expect" "$LOG")
    else
        ms=$(wait_listening "$port" 240) || { tail -20 "$LOG"; t_fail "$name: nothing listened on $port"; }
        case $probe in
            # The first request may be slow under TCG (the JVM loads its HTTP classes then).
            http) got=$(ip netns exec "$T_NS" curl -sS --max-time 90 "http://$GUEST:$port/" 2>&1) || true ;;
            redis) got=$(ip netns exec "$T_NS" timeout 10 bash -c \
                "exec 3<>/dev/tcp/$GUEST/$port; printf 'PING\r\n' >&3; head -c 7 <&3") || true ;;
            memcached) got=$(ip netns exec "$T_NS" timeout 10 bash -c \
                "exec 3<>/dev/tcp/$GUEST/$port; printf 'version\r\n' >&3; head -1 <&3") || true ;;
            greeting) got=$(ip netns exec "$T_NS" timeout 10 bash -c \
                "exec 3<>/dev/tcp/$GUEST/$port; head -c 40 <&3 | tr -c '[:print:]' ' '") || true ;;
        esac
        grep -q "$expect" <<<"$got" || { tail -20 "$LOG"; t_fail "$name: expected '$expect', got '$got'"; }
    fi
    stop
    local size
    size=$(du -m "$RT/$name/initrd.cpio" | cut -f1)
    printf '%-12s %5s MiB %8s ms  %s\n' "$name" "$size" "$ms" "$(head -c 60 <<<"${got//$'\r'/}" | head -1)" | tee -a "$REPORT"
}

printf '%-12s %9s %11s  %s\n' runtime initrd listening answer | tee "$REPORT"
check base 128 "$T_TMP/c-static.cpio" 8080 http 'Hello from nubo! (C, static)' /http_server
check base-compat 128 "$T_TMP/c-dynamic.cpio" 8080 http 'Hello from nubo! (C, dynamic)' /http_server
check python 256 "$T_TMP/python.cpio" 8080 http 'Hello from nubo! (Python 3.11' /usr/local/bin/python3 /src/server.py
check node 512 "$T_TMP/node.cpio" 8080 http 'Hello from nubo! (Node.js v18' /usr/bin/node /usr/src/server.js
check nginx 128 "$T_TMP/nginx.cpio" 8080 http 'Hello from nubo!' /usr/bin/nginx -c /etc/nginx/nginx.conf
check redis 128 "$T_TMP/redis.cpio" 6379 redis '+PONG' /usr/bin/redis-server /etc/redis/redis.conf
check memcached 128 - 11211 memcached 'VERSION 1.6'
check haproxy 128 - 8080 http 'haproxy on nubo'
check caddy 256 - 8080 http 'Caddy on nubo'
check perl 256 "$T_TMP/scripts.cpio" 8080 http 'Hello from nubo! (Perl v5.36' /usr/local/bin/perl /app/server.pl
check ruby 256 "$T_TMP/scripts.cpio" 8080 http 'Hello from nubo! (Ruby 3.1' /usr/local/bin/ruby /app/server.rb
check php 256 "$T_TMP/scripts.cpio" 8080 http 'Hello from nubo! (PHP 8.2' /usr/local/bin/php -S 0.0.0.0:8080 -t /app
check lua 128 "$T_TMP/scripts.cpio" - console 'Hello from nubo! (Lua 5.1)' /usr/local/bin/lua /app/hello.lua
if [ "$JAVA_APP" != - ]; then
    check java 768 "$JAVA_APP" 8080 http 'Hello from nubo! (Java 17' /usr/local/bin/java -cp /app Server
else
    check java 768 - - console 'openjdk version "17' /usr/bin/java -version
fi
check mariadb 512 - 3306 greeting '10.11.*MariaDB'

# --- bad input
t_log "bad input: a cmd binary that is not there"
boot base 128 - - /no/such/app --flag
t_wait_for 120 grep -q '^NUBO_EXIT' "$LOG" || t_fail "no NUBO_EXIT for a missing binary"
grep -q 'nubo-init: cannot run /no/such/app: No such file or directory' "$LOG" || t_fail "no console line naming /no/such/app"
grep -q '^NUBO_EXIT 127' "$LOG" || t_fail "missing binary: expected NUBO_EXIT 127"
! grep -q 'Kernel panic' "$LOG" || t_fail "missing binary panicked the kernel"
stop

t_log "bad input: a dynamically linked program on base"
boot base 128 "$T_TMP/c-dynamic.cpio" - /http_server
t_wait_for 120 grep -q '^NUBO_EXIT' "$LOG" || t_fail "no NUBO_EXIT for a dynamic binary on base"
grep -q 'cannot run /http_server: its ELF interpreter .*base-compat' "$LOG" || t_fail "no console line about the missing interpreter: $(grep nubo-init "$LOG" | tail -2)"
grep -q '^NUBO_EXIT 127' "$LOG" || t_fail "dynamic binary on base: expected NUBO_EXIT 127"
stop

t_log "bad input: a spec naming a package Debian does not have"
mkdir -p "$T_TMP/specs/bogus"
cp -r "$SPECS/base" "$T_TMP/specs/base"
printf 'tags = ["latest"]\npackages = ["nubo-no-such-package-xyz"]\n' > "$T_TMP/specs/bogus/runtime.toml"
PY=$(sed -n 's/^GUEST_RT_PYTHON:FILEPATH=//p' "$NUBO_BUILD/CMakeCache.txt")
if "${PY:-python3}" "$SPECS/mkruntime.py" --specs "$T_TMP/specs" --out "$T_TMP/rtout" --cache "$CACHE" \
    --init "$RT/init" --mkcpio "$MKCPIO" bogus > "$T_TMP/bogus.log" 2>&1; then
    t_fail "a spec with a nonexistent package built"
fi
grep -q 'nubo-no-such-package-xyz' "$T_TMP/bogus.log" || t_fail "the builder's error does not name the package: $(cat "$T_TMP/bogus.log")"
[ "$(grep -c . "$T_TMP/bogus.log")" = 1 ] || t_fail "the builder's error is not one line: $(cat "$T_TMP/bogus.log")"
if "${PY:-python3}" "$SPECS/mkruntime.py" --specs "$SPECS" --out "$T_TMP/rtout" --cache "$CACHE" \
    --init "$RT/init" --mkcpio "$MKCPIO" nosuchruntime > "$T_TMP/unknown.log" 2>&1; then
    t_fail "an unknown runtime built"
fi
grep -q "no runtime 'nosuchruntime' (known: .*node.*)" "$T_TMP/unknown.log" || t_fail "unknown runtime: $(cat "$T_TMP/unknown.log")"

cat "$REPORT"
echo "PASS guest_catalog"
