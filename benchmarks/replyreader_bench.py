"""Reply parsing: dnspython's ``dns.message.from_wire`` against dnsseal's ``read_reply``.

Builds the signed hierarchy of ``resolve_bench.py`` (dnssec-keygen/dnssec-signzone), serves
it with one ``named`` on a free loopback port, records the upstream replies of one cold
resolution of ``www.leafb.bench. A`` (8 replies, about 2.5 KB), stops the named, and then
parses those replies in a loop with each reader, alternating (--rounds), reporting the CPU
time (``process_time``) per set of replies.  Both readers must build the same messages
(checked on the first pass).  Example::

    PYTHONPATH=src python benchmarks/replyreader_bench.py --loops 500 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import dns.message
import dns.name
import dns.rdata

from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.replyreader import read_reply
from dnsseal.resolver.transport import network_transport
from dnsseal.validator.anchors import AnchorSet, TrustAnchor
from dnsseal.validator.iterator import Config
from resolve_bench import COLD_NAME, build, start_named, stop


def record(port: int, root_ds: str) -> list[bytes]:
    anchors = AnchorSet((TrustAnchor(dns.name.root, (dns.rdata.from_text("IN", "DS", root_ds),)),))
    config = Config((("127.0.0.1", port),), anchors, port=port)
    net = network_transport()
    replies: list[bytes] = []

    async def keep(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        data = await net(server, wire, tcp)
        replies.append(data)
        return data

    result = asyncio.run(Resolver(config, keep).resolve(COLD_NAME, "A"))
    if result.verdict.security.value != "secure":
        raise RuntimeError(f"the recorded resolution is not secure: {result.verdict}")
    return replies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--loops", type=int, default=500, help="parses of the replies per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="replyreader-bench-") as tmp:
        files, root_ds = build(Path(tmp))
        named = start_named(Path(tmp), files)
        try:
            replies = record(named.port, root_ds)
        finally:
            stop(named)
    for wire in replies:
        if dns.message.from_wire(wire).to_text() != read_reply(wire).to_text():
            raise RuntimeError("the readers disagree on a recorded reply")
    readers = {"dns.message.from_wire": dns.message.from_wire, "read_reply": read_reply}
    times: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(args.rounds):
        for name, read in readers.items():
            t0 = time.process_time()
            for _ in range(args.loops):
                for wire in replies:
                    read(wire)
            times[name].append((time.process_time() - t0) / args.loops * 1000)
    size = sum(len(w) for w in replies)
    print(f"{len(replies)} replies, {size} octets; CPU ms per set (median of {args.rounds}):")
    for name, ms in times.items():
        print(f"  {name:24} {statistics.median(ms):.3f}")
    old, new = (statistics.median(ms) for ms in times.values())
    print(f"  speed-up x{old / new:.2f}")


if __name__ == "__main__":
    main()
