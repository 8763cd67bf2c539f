"""What a tool in the agents layer's client namespace tries to reach besides the gateway, one
JSON line per attempt on stdout (flushed), until killed:

  {"kind": "dns", "name": "statsig.anthropic.com", "type": 1}   a name looked up
  {"kind": "tcp", "to": "1.2.3.4:443"}                           a connection attempted

Runs inside that namespace (tests/agents/run.py starts it there): a DNS server on
127.0.0.1:53 (the namespace's resolv.conf names it) that answers every query NXDOMAIN, so a
name never resolves and nothing reaches the real resolver; and a TCP listener that the
namespace's nat rules REDIRECT every outgoing TCP connection except the gateway's to; it
reads the original destination (SO_ORIGINAL_DST) and closes. The gateway is addressed by IP,
so a tool that stays on it looks up no name at all. Usage: escape_watch.py TCP_PORT"""

import json
import socket
import struct
import sys
import threading

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def qname(packet):
    """(name, qtype) of a DNS query's first question (RFC 1035 4.1.2; queries carry no
    compression pointers)."""
    labels, i = [], 12
    while packet[i]:
        n = packet[i]
        labels.append(packet[i + 1:i + 1 + n].decode(errors="replace"))
        i += 1 + n
    return ".".join(labels), struct.unpack("!H", packet[i + 1:i + 3])[0], i + 5


def dns(s):
    while True:
        packet, peer = s.recvfrom(1500)
        try:
            name, qtype, end = qname(packet)
        except (IndexError, struct.error):
            continue
        emit(kind="dns", name=name, type=qtype)
        # The query echoed back as a response (QR, RD and RA set) with RCODE 3, NXDOMAIN,
        # its question only.
        flags = 0x8000 | (struct.unpack("!H", packet[2:4])[0] & 0x0100) | 0x0080 | 3
        s.sendto(packet[:2] + struct.pack("!HHHHH", flags, 1, 0, 0, 0) + packet[12:end], peer)


def tcp(s):
    while True:
        conn, _ = s.accept()
        raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        dport, addr = struct.unpack("!H", raw[2:4])[0], socket.inet_ntoa(raw[4:8])
        emit(kind="tcp", to=f"{addr}:{dport}")
        conn.close()


if __name__ == "__main__":
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 53))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", int(sys.argv[1])))
    listener.listen(64)
    threading.Thread(target=dns, args=(udp,), daemon=True).start()
    emit(kind="ready")
    tcp(listener)
