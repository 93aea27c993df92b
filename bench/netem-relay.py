#!/usr/bin/env python3
"""Delay and loss without netem (this kernel has no sch_netem), for bench/netns.mjs.

Each benchmark node has a network namespace of its own whose only interface,
eth0, is a TAP device; its twin, a second TAP device in the switch namespace,
is a port of the bridge there. This process owns both ends of every such link
and copies Ethernet frames between them:

  node -> bridge: each frame is dropped with probability --loss, otherwise
                  delivered --delay-ms +/- --jitter-ms (uniform) later, never
                  before the frame ahead of it on the same link (no reordering);
  bridge -> node: delivered at once.

So every frame between two nodes crosses exactly one delaying, lossy hop
(its sender's uplink): 10 +/- 3 ms each way and 1 % loss per frame, ARP
included. Usage (the TAP devices must exist, made by `ip tuntap add`):

  netem-relay.py --delay-ms 10 --jitter-ms 3 --loss 0.01 \\
      NODE_NETNS_PATH:IFNAME:SWITCH_NETNS_PATH:IFNAME ...

It prints "ready" once it holds every device, and on SIGTERM the number of
frames it carried uplink and how many of them it dropped, then exits.
"""
import argparse
import ctypes
import fcntl
import heapq
import os
import random
import selectors
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454ca
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
MAX_QUEUED = 4096  # frames in flight per link; beyond that a frame is dropped, as a full queue would

libc = ctypes.CDLL(None, use_errno=True)


def setns(netns_path):
    fd = os.open(netns_path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f'setns {netns_path}: {os.strerror(err)}')
    finally:
        os.close(fd)


def open_tap(netns_path, ifname):
    """Attaches to the existing TAP device `ifname` in the namespace at netns_path."""
    setns(netns_path)
    fd = os.open('/dev/net/tun', os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', ifname.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--delay-ms', type=float, default=10.0)
    ap.add_argument('--jitter-ms', type=float, default=3.0)
    ap.add_argument('--loss', type=float, default=0.01)
    ap.add_argument('--seed', type=int, default=None)
    ap.add_argument('links', nargs='+')
    a = ap.parse_args()
    rng = random.Random(a.seed)
    own_ns = '/proc/self/ns/net'
    home = os.open(own_ns, os.O_RDONLY)

    sel = selectors.DefaultSelector()
    links = []
    for spec in a.links:
        node_ns, node_if, sw_ns, sw_if = spec.split(':')
        up = open_tap(node_ns, node_if)
        down = open_tap(sw_ns, sw_if)
        link = {'up': up, 'down': down, 'last_due': 0.0, 'queued': 0}
        links.append(link)
        sel.register(up, selectors.EVENT_READ, (link, 'up'))
        sel.register(down, selectors.EVENT_READ, (link, 'down'))
    if libc.setns(home, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), 'setns back')

    stats = {'frames': 0, 'dropped': 0}
    pending = []  # heap of (due, seq, link, frame)
    seq = 0
    def report(_sig, _frame):
        print(f"uplink frames {stats['frames']} dropped {stats['dropped']}", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, report)
    print('ready', flush=True)
    while True:
        timeout = None
        if pending:
            timeout = max(0.0, pending[0][0] - time.monotonic())
        for key, _ in sel.select(timeout):
            link, side = key.data
            fd = key.fileobj
            while True:
                try:
                    frame = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if side == 'down':
                    try:
                        os.write(link['up'], frame)
                    except BlockingIOError:
                        pass  # the node's queue is full: the frame is lost, as on a wire
                    continue
                stats['frames'] += 1
                if rng.random() < a.loss or link['queued'] >= MAX_QUEUED:
                    stats['dropped'] += 1
                    continue
                due = time.monotonic() + (a.delay_ms + rng.uniform(-a.jitter_ms, a.jitter_ms)) / 1000
                due = max(due, link['last_due'])  # a link does not reorder
                link['last_due'] = due
                link['queued'] += 1
                seq += 1
                heapq.heappush(pending, (due, seq, link, frame))
        t = time.monotonic()
        while pending and pending[0][0] <= t:
            _, _, link, frame = heapq.heappop(pending)
            link['queued'] -= 1
            try:
                os.write(link['down'], frame)
            except BlockingIOError:
                pass


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
