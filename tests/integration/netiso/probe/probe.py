# A hostile tenant's guest (run as root): tries to reach its neighbour, the node's gateway and
# host addresses, poisons ARP and sends frames with forged sources, printing one PROBE line
# per try. "reached" = something answered (connect or refusal); "blocked" = nothing came back.
# Then it serves HTTP on 8080 so the node can show it still reaches the guest.
import errno
import fcntl
import os
import socket
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NEIGHBOUR = os.environ["NEIGHBOUR"]
GATEWAY = os.environ["GATEWAY"]
TARGETS = [
    ("neighbour", NEIGHBOUR, 8080),
    ("gateway-port", GATEWAY, int(os.environ.get("GATEWAY_PORT", "7777"))),
    ("host-address", os.environ["HOSTADDR"], 7778),
    ("outside", os.environ["OUTSIDE"], 7779),
]


def say(*words):
    print("PROBE", *words, flush=True)


def ifaddr(name, req):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return fcntl.ioctl(s.fileno(), req, struct.pack("256s", name.encode()[:15]))


def mac_of_ip(ip):
    # the agent's scheme (02:6e + the IPv4 bytes): a hostile tenant can read it off its own NIC
    return bytes([0x02, 0x6E]) + socket.inet_aton(ip)


def tcp(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(4)
    try:
        s.connect((ip, port))
        return "reached"
    except ConnectionRefusedError:
        return "reached"  # a RST came back: the packet got there
    except OSError as e:
        return f"blocked ({errno.errorcode.get(e.errno, e.errno) if e.errno else 'timeout'})"
    finally:
        s.close()


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def udp_frame(src_mac, dst_mac, src_ip, dst_ip, dport, payload):
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp


def arp_reply(src_mac, dst_mac, claimed_ip, target_mac, target_ip):
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, src_mac, socket.inet_aton(claimed_ip),
                      target_mac, socket.inet_aton(target_ip))
    return dst_mac + src_mac + b"\x08\x06" + arp


def gateway_mac():
    with open("/proc/net/arp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[0] == GATEWAY and cols[3] != "00:00:00:00:00:00":
                return bytes.fromhex(cols[3].replace(":", ""))
    return b"\xff" * 6


print(f"PROBE uid={os.getuid()}", flush=True)
me_ip = socket.inet_ntoa(ifaddr("eth0", 0x8915)[20:24])  # SIOCGIFADDR
me_mac = ifaddr("eth0", 0x8927)[18:24]  # SIOCGIFHWADDR
say("self", me_ip, me_mac.hex(":"))
for name, ip, port in TARGETS:
    say("tcp", name, f"{ip}:{port}", tcp(ip, port))

# plain UDP to the neighbour (its app prints whatever arrives)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    u.sendto(b"plain-udp-from-probe", (NEIGHBOUR, 9999))

try:
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    raw.bind(("eth0", 0))
except PermissionError:
    say("raw denied")
    raw = None
if raw:
    gw_mac = gateway_mac()
    n_mac = mac_of_ip(NEIGHBOUR)
    bcast = b"\xff" * 6
    frames = {
        # ARP poisoning: "the neighbour's address is at my MAC", to the gateway and broadcast
        "arp-spoof": [arp_reply(me_mac, gw_mac, NEIGHBOUR, gw_mac, GATEWAY),
                      arp_reply(me_mac, bcast, NEIGHBOUR, bcast, NEIGHBOUR)],
        # forged source IP (own MAC), to the neighbour and to the gateway
        "forged-ip": [udp_frame(me_mac, n_mac, GATEWAY, NEIGHBOUR, 9999, b"forged-ip"),
                      udp_frame(me_mac, gw_mac, NEIGHBOUR, GATEWAY, 7780, b"forged-ip")],
        # forged source MAC and IP: pretend to be the neighbour
        "forged-mac-ip": [udp_frame(n_mac, gw_mac, NEIGHBOUR, GATEWAY, 7780, b"forged-mac-ip"),
                          udp_frame(n_mac, bcast, NEIGHBOUR, NEIGHBOUR, 9999, b"forged-mac-ip")],
    }
    for name, fs in frames.items():
        sent = 0
        for _ in range(3):
            for fr in fs:
                sent += raw.send(fr)
        say("raw", name, "sent", sent)
say("done")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"probe {me_ip}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
