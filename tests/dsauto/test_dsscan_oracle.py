"""`dnsseal dsscan` against BIND's `dnssec-cds`: the same child data and DS file must give
the same new DS set (or, where dnssec-cds refuses, no change).

Children are signed by dnssec-keygen / dnssec-signzone and served presigned by one dnsseal
instance on 127.0.0.1 and 127.0.0.2; the parent (signed the same way) by another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest

from conftest import free_port, require_tool, run_tool, stop

PARENT = "parent.test."
DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
pytestmark = pytest.mark.interop


def _keygen(d: Path, origin: str, ksk: bool = True) -> str:
    args = ["dnssec-keygen", "-q", "-a", "ECDSAP256SHA256", *(["-f", "KSK"] if ksk else [])]
    return run_tool([*args, origin], cwd=d).stdout.strip()


def _record(d: Path, key: str, kind: str, digest: int = 2) -> str:
    if kind == "CDNSKEY":
        text = (d / f"{key}.key").read_text()
        line = next(x for x in text.splitlines() if x and not x.startswith(";"))
        return line.replace(" DNSKEY ", " CDNSKEY ")
    flag = "-C" if kind == "CDS" else ""
    args = ["dnssec-dsfromkey", *([flag] if flag else []), "-a", str(digest), f"{key}.key"]
    return run_tool(args, cwd=d).stdout.strip()


@dataclass
class Scenario:
    name: str
    cds: list[tuple[int, int]]  # (key index, digest)
    cdnskey: list[int]
    delete: bool = False
    digests: tuple[str, ...] = ("SHA-256",)
    stranger: bool = False  # the CDS/CDNSKEY name a key outside the DNSKEY RRset


SCENARIOS = [
    Scenario("roll", [(1, 2)], [1]),
    Scenario("twodigests", [(0, 2), (0, 4)], [0], digests=("SHA-256", "SHA-384")),
    Scenario("cdnskeyonly", [], [1]),
    Scenario("sha384only", [(1, 4)], [1]),  # no accepted CDS digest: CDNSKEY is used
    Scenario("delete", [], [], delete=True),
    Scenario("stranger", [(2, 2)], [2], stranger=True),
]


def _child(
    base: Path, sc: Scenario, addrs: tuple[str, str] = ("127.0.0.1", "127.0.0.2")
) -> tuple[str, Path, str]:
    """Sign child ``sc.name``.parent.test.; returns origin, signed file, DS of key 0.  Also
    signs ``zone-b.signed``: the same zone and keys without CDS/CDNSKEY."""
    origin = f"{sc.name}.{PARENT}"
    d = base / sc.name
    d.mkdir()
    keys = [_keygen(d, origin), _keygen(d, origin)]
    _keygen(d, origin, ksk=False)
    other = d / "other"
    other.mkdir()
    keys.append(_keygen(other, origin))
    if sc.name in ("twodigests",):
        (d / f"{keys[1]}.key").unlink()  # one KSK only
        (d / f"{keys[1]}.private").unlink()
    extra = []
    if sc.delete:
        extra = [f"{origin} 0 IN CDS 0 0 0 00", f"{origin} 0 IN CDNSKEY 0 3 0 AA=="]
    for idx, digest in sc.cds:
        kd = other if idx == 2 else d
        extra.append(_record(kd, keys[idx], "CDS", digest))
    for idx in sc.cdnskey:
        kd = other if idx == 2 else d
        extra.append(_record(kd, keys[idx], "CDNSKEY"))
    head = (
        f"$ORIGIN {origin}\n$TTL 300\n@ SOA ns1 hostmaster 1 60 30 600 60\n"
        f"@ NS ns1\n@ NS ns2\nns1 A {addrs[0]}\nns2 A {addrs[1]}\nwww A 192.0.2.1\n"
    )
    (d / "zone.db").write_text(head + "\n".join(extra) + "\n")
    (d / "zone-b.db").write_text(head)
    for name in ("zone", "zone-b"):
        run_tool(
            [
                "dnssec-signzone",
                "-q",
                "-S",
                "-K",
                ".",
                "-o",
                origin,
                "-f",
                f"{name}.signed",
                "-s",
                "now-1h",
                "-e",
                "now+30d",
                f"{name}.db",
            ],
            cwd=d,
        )
    ds0 = _record(d, keys[0], "DS")
    return origin, d / "zone.signed", ds0


def _serve(
    d: Path, listen: list[str], zones: dict[str, Path], port: int
) -> subprocess.Popen[bytes]:
    lines = ["[server]", f"listen = {json.dumps(listen)}", ""]
    for origin, path in zones.items():
        lines += [f'[zone."{origin}"]', f'file = "{path}"', "presigned = true", ""]
    (d / "dnsseal.toml").write_text("\n".join(lines))
    with (d / "out.txt").open("wb") as out:
        proc = subprocess.Popen(
            [*DNSSEAL, "serve", "-c", str(d / "dnsseal.toml")], stdout=out, stderr=out
        )
    try:
        _wait(listen[0].split("@")[0], port, next(iter(zones)), proc)
    except Exception:
        stop(proc)
        raise RuntimeError((d / "out.txt").read_text()) from None
    return proc


def _wait(host: str, port: int, zone: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    q = dns.message.make_query(zone, dns.rdatatype.SOA)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if dns.query.udp(q, host, port=port, timeout=0.3).answer:
                return
        except (dns.exception.Timeout, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no answer for {zone} on {host}@{port}")


SPLIT = Scenario("split", [(1, 2)], [1])


@dataclass
class Lab:
    base: Path
    parent_port: int
    child_port: int
    ds0: dict[str, str]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("dsscan")
    children = {sc.name: _child(base, sc) for sc in SCENARIOS}
    split = _child(base, SPLIT, ("127.0.0.3", "127.0.0.4"))
    parent_lines = [f"$ORIGIN {PARENT}", "$TTL 300", "@ SOA ns hostmaster 1 60 30 600 60"]
    parent_lines += ["@ NS ns", "ns A 127.0.0.1"]
    for origin, _, ds0 in [*children.values(), split]:
        a, b = ("127.0.0.3", "127.0.0.4") if origin == split[0] else ("127.0.0.1", "127.0.0.2")
        parent_lines += [f"{origin} NS ns1.{origin}", f"{origin} NS ns2.{origin}"]
        parent_lines += [f"ns1.{origin} A {a}", f"ns2.{origin} A {b}", ds0]
    pdir = base / "parent"
    pdir.mkdir()
    (pdir / "parent.db").write_text("\n".join(parent_lines) + "\n")
    _keygen(pdir, PARENT)
    _keygen(pdir, PARENT, ksk=False)
    run_tool(
        [
            "dnssec-signzone",
            "-q",
            "-S",
            "-K",
            ".",
            "-o",
            PARENT,
            "-f",
            "parent.signed",
            "-s",
            "now-1h",
            "-e",
            "now+30d",
            "parent.db",
        ],
        cwd=pdir,
    )
    pport, cport = free_port(), free_port()
    parent = _serve(pdir, [f"127.0.0.1@{pport}"], {PARENT: pdir / "parent.signed"}, pport)
    cdir = base / "children"
    cdir.mkdir()
    try:
        child = _serve(
            cdir,
            [f"127.0.0.1@{cport}", f"127.0.0.2@{cport}"],
            {o: p for o, p, _ in children.values()},
            cport,
        )
    except Exception:
        stop(parent)
        raise
    procs = [parent, child]
    try:
        # One zone, two servers that disagree: ns1 serves the CDS, ns2 does not.
        for host, fname in (("127.0.0.3", "zone.signed"), ("127.0.0.4", "zone-b.signed")):
            sdir = base / f"split-{host}"
            sdir.mkdir()
            procs.append(
                _serve(sdir, [f"{host}@{cport}"], {split[0]: split[1].parent / fname}, cport)
            )
        ds0 = {n: c[2] for n, c in children.items()}
        ds0["split"] = split[2]
        yield Lab(base, pport, cport, ds0)
    finally:
        for p in procs:
            stop(p)


def _ds_rdatas(text: str) -> set[str]:
    out = set()
    for line in text.splitlines():
        parts = line.split()
        if "DS" in parts:
            i = parts.index("DS")
            out.add(" ".join(parts[i + 1 : i + 4]) + " " + "".join(parts[i + 4 :]).upper())
    return out


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_dsscan_matches_dnssec_cds(lab: Lab, sc: Scenario) -> None:
    origin = f"{sc.name}.{PARENT}"
    work = lab.base / f"run-{sc.name}"
    work.mkdir()
    (work / "bind").mkdir()
    (work / "ours").mkdir()
    for sub in ("bind", "ours"):
        (work / sub / f"dsset-{origin}").write_text(lab.ds0[sc.name] + "\n")
    # dnssec-cds reads what dig shows of the child apex.
    dig = run_tool(
        [
            "dig",
            "+dnssec",
            "+noall",
            "+answer",
            "-p",
            str(lab.child_port),
            "@127.0.0.1",
            origin,
            "DNSKEY",
            origin,
            "CDNSKEY",
            origin,
            "CDS",
        ]
    )
    (work / "child.txt").write_text(dig.stdout)
    cds_args = [a for d in sc.digests for a in ("-a", d)]
    bind = run_tool(
        [
            "dnssec-cds",
            *cds_args,
            "-s",
            "-86400",
            "-i",
            "-f",
            "child.txt",
            "-d",
            f"bind/dsset-{origin}",
            origin,
        ],
        cwd=work,
        check=False,
    )
    env = dict(os.environ)
    ours = subprocess.run(
        [*DNSSEAL, "dsscan", "--parent", PARENT, "--server", f"127.0.0.1@{lab.parent_port}"]
        + ["--query-port", str(lab.child_port), "--dsset-dir", str(work / "ours"), "--json"]
        + ["-s", "-86400"]
        + [a for d in sc.digests for a in ("--digest", d)]
        + [origin],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert ours.returncode == 0, ours.stdout + ours.stderr
    decision = json.loads(ours.stdout.strip().splitlines()[-1])
    servers = {s["server"] for s in decision["servers"]}
    assert servers == {
        f"ns1.{origin} 127.0.0.1@{lab.child_port}",
        f"ns2.{origin} 127.0.0.2@{lab.child_port}",
    }
    bind_ds = _ds_rdatas((work / "bind" / f"dsset-{origin}").read_text())
    ours_ds = _ds_rdatas((work / "ours" / f"dsset-{origin}").read_text())
    if sc.stranger:
        assert bind.returncode != 0, "dnssec-cds accepted a DS set that breaks the chain"
        assert decision["action"] == "keep"
        assert "break the chain" in decision["reason"]
        assert ours_ds == _ds_rdatas(lab.ds0[sc.name])
        return
    assert bind.returncode == 0, bind.stderr
    if sc.delete and all(d.split()[1] == "0" for d in bind_ds):
        # BIND 9.18's dnssec-cds predates RFC 8078 DELETE: it skips the CDS (digest type 0
        # is not accepted) and hashes the DELETE CDNSKEY "0 3 0 AA==" into a DS with
        # algorithm 0.  RFC 8078 s4 says: remove the DS set.
        bind_ds = set()
    assert ours_ds == bind_ds, (decision, bind.stderr)
    assert decision["action"] == ("delete" if sc.delete else "set"), decision
    # Replay protection: both stamp the dsset file with the signatures' inception.
    stamps = {int((work / sub / f"dsset-{origin}").stat().st_mtime) for sub in ("bind", "ours")}
    assert stamps == {decision["inception"]}, (stamps, decision["inception"])
    if sc.delete:
        assert ours_ds == set()


def test_dsscan_update_refused_changes_nothing(lab: Lab, tmp_path: Path) -> None:
    """--update on a parent that refuses updates: a one-line error naming the server, and
    nothing else changes."""
    origin = f"roll.{PARENT}"
    proc = subprocess.run(
        [
            *DNSSEAL,
            "dsscan",
            "--parent",
            PARENT,
            "--server",
            f"127.0.0.1@{lab.parent_port}",
            "--query-port",
            str(lab.child_port),
            "--update",
            origin,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert f"UPDATE to 127.0.0.1@{lab.parent_port} refused" in proc.stderr
    assert "Traceback" not in proc.stderr
    q = dns.message.make_query(origin, dns.rdatatype.DS)
    r = dns.query.udp(q, "127.0.0.1", port=lab.parent_port, timeout=3)
    assert _ds_rdatas("\n".join(rr.to_text() for rr in r.answer)) == _ds_rdatas(lab.ds0["roll"])


def test_servers_that_disagree_change_nothing(lab: Lab) -> None:
    """RFC 9975: ns2 serves no CDS while ns1 serves a new one: no change, and the decision
    names the server.  (dnssec-cds, fed ns1's answers alone, would accept the roll.)"""
    origin = f"split.{PARENT}"
    work = lab.base / "run-split"
    work.mkdir()
    (work / f"dsset-{origin}").write_text(lab.ds0["split"] + "\n")
    proc = subprocess.run(
        [
            *DNSSEAL,
            "dsscan",
            "--parent",
            PARENT,
            "--server",
            f"127.0.0.1@{lab.parent_port}",
            "--query-port",
            str(lab.child_port),
            "--dsset-dir",
            str(work),
            "--json",
            origin,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    decision = json.loads(proc.stdout)
    assert decision["action"] == "keep"
    assert decision["reason"].startswith(
        f"ns2.{origin} 127.0.0.4@{lab.child_port} serves CDS none but ns1.{origin} "
        f"127.0.0.3@{lab.child_port} serves CDS "
    ), decision
    assert _ds_rdatas((work / f"dsset-{origin}").read_text()) == _ds_rdatas(lab.ds0["split"])
    dig = run_tool(
        [
            "dig",
            "+dnssec",
            "+noall",
            "+answer",
            "-p",
            str(lab.child_port),
            "@127.0.0.3",
            origin,
            "DNSKEY",
            origin,
            "CDNSKEY",
            origin,
            "CDS",
        ]
    )
    (work / "ns1.txt").write_text(dig.stdout)
    (work / "bind").mkdir()
    (work / "bind" / f"dsset-{origin}").write_text(lab.ds0["split"] + "\n")
    bind = run_tool(
        ["dnssec-cds", "-s", "-86400", "-f", "ns1.txt", "-d", f"bind/dsset-{origin}", origin],
        cwd=work,
    )
    assert _ds_rdatas(bind.stdout) != _ds_rdatas(lab.ds0["split"])


def test_parent_check_names_the_server_that_disagrees(lab: Lab) -> None:
    args = [*DNSSEAL, "parent-check", "--server", f"127.0.0.1@{lab.parent_port}"]
    args += ["--query-port", str(lab.child_port)]
    bad = subprocess.run(
        [*args, f"split.{PARENT}"], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"the parent keeps the DS set: ns2.split.{PARENT} 127.0.0.4@" in bad.stdout
    good = subprocess.run(
        [*args, f"roll.{PARENT}"], capture_output=True, text=True, timeout=60, check=False
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert "the parent would set the DS set" in good.stdout
    assert f"ns1.roll.{PARENT} 127.0.0.1@{lab.child_port}: CDS " in good.stdout


def test_replayed_signatures_are_refused_like_dnssec_cds(lab: Lab) -> None:
    """The dsset file says a change was accepted an hour from now: signatures made before
    that are a replay.  dnssec-cds (default: the file's time) and dsscan both refuse."""
    origin = f"roll.{PARENT}"
    work = lab.base / "run-replay"
    work.mkdir()
    later = int(time.time()) + 3600
    for sub in ("bind", "ours"):
        (work / sub).mkdir()
        path = work / sub / f"dsset-{origin}"
        path.write_text(lab.ds0["roll"] + "\n")
        os.utime(path, (later, later))
    dig = run_tool(
        [
            "dig",
            "+dnssec",
            "+noall",
            "+answer",
            "-p",
            str(lab.child_port),
            "@127.0.0.1",
            origin,
            "DNSKEY",
            origin,
            "CDNSKEY",
            origin,
            "CDS",
        ]
    )
    (work / "child.txt").write_text(dig.stdout)
    bind = run_tool(
        ["dnssec-cds", "-i", "-f", "child.txt", "-d", f"bind/dsset-{origin}", origin],
        cwd=work,
        check=False,
    )
    ours = subprocess.run(
        [
            *DNSSEAL,
            "dsscan",
            "--parent",
            PARENT,
            "--server",
            f"127.0.0.1@{lab.parent_port}",
            "--query-port",
            str(lab.child_port),
            "--dsset-dir",
            str(work / "ours"),
            "--json",
            origin,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bind.returncode != 0, bind.stdout
    decision = json.loads(ours.stdout)
    assert decision["action"] == "keep" and "replay protection" in decision["reason"]
    for sub in ("bind", "ours"):
        text = (work / sub / f"dsset-{origin}").read_text()
        assert _ds_rdatas(text) == _ds_rdatas(lab.ds0["roll"])


TSIG_SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM="


def test_dsscan_update_changes_an_inline_signed_parent(lab: Lab, tmp_path: Path) -> None:
    """--update with TSIG on a parent that takes updates (dnsseal, inline-signed): the DS
    set the parent serves afterwards is the one decided (and the one dnssec-cds computes
    in test_dsscan_matches_dnssec_cds[roll])."""
    origin = f"roll.{PARENT}"
    port = free_port()
    (tmp_path / "parent.db").write_text((lab.base / "parent" / "parent.db").read_text())
    (tmp_path / "dnsseal.toml").write_text(
        f"""[server]
listen = ["127.0.0.1@{port}"]
state-dir = "state"
key-directory = "keys"

[key.ddns]
algorithm = "hmac-sha256"
secret = "{TSIG_SECRET}"

[zone."{PARENT}"]
file = "parent.db"
dnssec-policy = "default"
allow-update = ["key ddns"]
"""
    )
    with (tmp_path / "out.txt").open("wb") as out:
        proc = subprocess.Popen(
            [*DNSSEAL, "serve", "-c", "dnsseal.toml"], cwd=tmp_path, stdout=out, stderr=out
        )
    try:
        _wait("127.0.0.1", port, PARENT, proc)
        base = [*DNSSEAL, "dsscan", "--parent", PARENT, "--server", f"127.0.0.1@{port}"]
        base += ["--query-port", str(lab.child_port), "--json"]
        dry = subprocess.run(
            [*base, "--dry-run", origin], capture_output=True, text=True, timeout=60, check=False
        )
        want = json.loads(dry.stdout)["ds"]
        assert len(want) == 1
        run = subprocess.run(
            [*base, "--update", "--key", f"hmac-sha256:ddns:{TSIG_SECRET}", origin],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert json.loads(run.stdout)["applied"] == f"UPDATE sent to 127.0.0.1@{port}"
        q = dns.message.make_query(origin, dns.rdatatype.DS)
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=3)
        served = {rd.to_text() for rr in r.answer if rr.rdtype == dns.rdatatype.DS for rd in rr}
        assert served == set(want)
        assert [rr.ttl for rr in r.answer if rr.rdtype == dns.rdatatype.DS] == [3600]
        again = subprocess.run(
            [*base, origin], capture_output=True, text=True, timeout=60, check=False
        )
        assert "already matches" in json.loads(again.stdout)["reason"]
    finally:
        stop(proc)


def test_dsscan_update_changes_a_bind_parent(lab: Lab, tmp_path: Path) -> None:
    """The parent served elsewhere is BIND (named, dnssec-policy, allow-update with TSIG):
    dsscan --update changes it, and named then serves the DS set decided."""
    origin = f"roll.{PARENT}"
    port = free_port()
    (tmp_path / "keys").mkdir()
    (tmp_path / "parent.db").write_text((lab.base / "parent" / "parent.db").read_text())
    conf = tmp_path / "named.conf"
    conf.write_text(
        f"""
key "ddns" {{ algorithm hmac-sha256; secret "{TSIG_SECRET}"; }};
options {{
    directory "{tmp_path}";
    pid-file "{tmp_path}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
zone "{PARENT}" {{
    type primary;
    file "parent.db";
    key-directory "keys";
    dnssec-policy "default";
    allow-update {{ key "ddns"; }};
}};
"""
    )
    run_tool(["named-checkconf", conf])
    named = subprocess.Popen(
        [require_tool("named"), "-f", "-c", str(conf)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait("127.0.0.1", port, PARENT, named)
        base = [*DNSSEAL, "dsscan", "--parent", PARENT, "--server", f"127.0.0.1@{port}"]
        base += ["--query-port", str(lab.child_port), "--json"]
        dry = subprocess.run(
            [*base, "--dry-run", origin], capture_output=True, text=True, timeout=60, check=False
        )
        assert dry.returncode == 0, dry.stdout + dry.stderr
        want = json.loads(dry.stdout)["ds"]
        run = subprocess.run(
            [*base, "--update", "--key", f"hmac-sha256:ddns:{TSIG_SECRET}", origin],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        dig = run_tool(["dig", "+noall", "+answer", "-p", str(port), "@127.0.0.1", origin, "DS"])
        assert _ds_rdatas(dig.stdout) == _ds_rdatas("\n".join(f"x DS {d}" for d in want))
    finally:
        stop(named)
