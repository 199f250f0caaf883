"""Just enough rtnetlink to wire one endpoint without spawning ``ip`` (every build RUN pays for it):
a veth pair with its peer created inside a namespace, hairpin on its bridge port, links up, an IPv4
address, a default route.

A netlink socket talks to the network namespace it was created in, so a socket made by a thread that
entered a namespace configures that namespace from any thread afterwards.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_SETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 19, 20, 24
AF_BRIDGE, IFLA_PROTINFO, IFLA_BRPORT_MODE, NLA_F_NESTED = 7, 12, 4, 0x8000
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
SIOCGIFINDEX = 0x8933
IFF_UP = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_OIF, RTA_GATEWAY = 4, 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, flags, change)


class Netlink:
    """One NETLINK_ROUTE socket (of the namespace it was opened in); every request is acknowledged."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, kind: int, body: bytes, flags: int = 0) -> None:
        self.seq += 1
        header = struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, self.seq, 0)
        self.sock.send(header + body)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, msg_type, _, seq, _ = struct.unpack_from("=IHHII", data, offset)
                if msg_type == NLMSG_ERROR and seq == self.seq:
                    code = -struct.unpack_from("=i", data, offset + 16)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return
                offset += (length + 3) & ~3

    def add_veth(self, name: str, peer: str, *, peer_mac: bytes, peer_netns_fd: int, master: int) -> None:
        """``ip link add NAME master M up type veth peer name PEER address MAC netns FD``."""
        peer_info = _ifinfo() + _attr(IFLA_IFNAME, peer.encode() + b"\0") + _attr(IFLA_ADDRESS, peer_mac) \
            + _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
        linkinfo = _attr(IFLA_INFO_KIND, b"veth\0") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_info))
        body = _ifinfo(0, IFF_UP, IFF_UP) + _attr(IFLA_IFNAME, name.encode() + b"\0") \
            + _attr(IFLA_MASTER, struct.pack("=I", master)) + _attr(IFLA_LINKINFO, linkinfo)
        self.request(RTM_NEWLINK, body, NLM_F_CREATE | NLM_F_EXCL)

    def set_hairpin(self, index: int) -> None:
        """``bridge link set dev X hairpin on``: a bridge port may send a frame back where it came from,
        which a container reaching its own published port needs once br_netfilter bridges the DNATed frame."""
        body = struct.pack("=BxHiII", AF_BRIDGE, 0, index, 0, 0) \
            + _attr(IFLA_PROTINFO | NLA_F_NESTED, _attr(IFLA_BRPORT_MODE, b"\x01"))
        self.request(RTM_SETLINK, body)

    def index(self, name: str) -> int:
        """The interface index of ``name`` in the socket's namespace (SIOCGIFINDEX)."""
        answer = fcntl.ioctl(self.sock.fileno(), SIOCGIFINDEX, struct.pack("=16sI", name.encode(), 0))
        return struct.unpack_from("=I", answer, 16)[0]

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, _ifinfo(index, IFF_UP, IFF_UP))

    def add_address(self, index: int, address: str, prefix: int, broadcast: str) -> None:
        packed = socket.inet_aton(address)
        body = struct.pack("=BBBBI", socket.AF_INET, prefix, 0, RT_SCOPE_UNIVERSE, index) \
            + _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed) + _attr(IFA_BROADCAST, socket.inet_aton(broadcast))
        self.request(RTM_NEWADDR, body, NLM_F_CREATE | NLM_F_EXCL)

    def add_default_route(self, gateway: str, index: int) -> None:
        body = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                           RTN_UNICAST, 0) + _attr(RTA_GATEWAY, socket.inet_aton(gateway)) \
            + _attr(RTA_OIF, struct.pack("=I", index))
        self.request(RTM_NEWROUTE, body, NLM_F_CREATE | NLM_F_EXCL)


__all__ = ["Netlink"]
