#!/usr/bin/python3
"""A userspace IPIP node for tests: this kernel has no ipip module, so a TUN device stands
in for Calico's tunl0 and a raw protocol-4 socket carries the outer packets.
usage: ipip_peer.py <tun-name> <local-underlay-ip> <remote-underlay-ip> <seconds>
  remote -> us: raw socket (outer IPv4, protocol 4) -> strip outer header -> TUN
  us -> remote: TUN (inner IPv4) -> raw sendto(remote): the kernel adds the outer header"""
import fcntl, os, select, socket, struct, sys, time

name, local, remote, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
raw.bind((local, 0))
print("ready", flush=True)
end, decap, encap = time.time() + seconds, 0, 0
while time.time() < end:
    ready, _, _ = select.select([tun, raw], [], [], 0.5)
    if raw in ready:
        pkt, (src, _) = raw.recvfrom(65535)  # raw IPv4 sockets return the outer header
        if src == remote and pkt[9] == 4:
            os.write(tun, pkt[(pkt[0] & 0x0F) * 4 :])
            decap += 1
    if tun in ready:
        inner = os.read(tun, 65535)
        if inner[0] >> 4 == 4:
            raw.sendto(inner, (remote, 0))
            encap += 1
    sys.stdout.write(f"\rdecap={decap} encap={encap}   ")
    sys.stdout.flush()
