"""Differential harness: the real ``named`` and dnsseal's key manager on the same keys.

A scenario stages a key directory the way BIND's own rollover system tests do (keys made
by ``dnssec-keygen`` with back-dated ``-P/-A`` times, states set by ``dnssec-settime
-g/-k/-r/-z/-d``), then

* copies the staged directory, starts ``named`` on 127.0.0.1 (test-chosen ports, one
  zone, the scenario's ``dnssec-policy``), waits until its key manager has run (the log
  line "next key event"), reads the served DNSKEY / CDS / CDNSKEY sets, who signs the
  DNSKEY RRset and the SOA, and ``rndc dnssec -status``, stops named by its PID and reads
  the ``.state`` and ``.key`` files it wrote;
* runs :func:`dnsseal.keymgr.step` on the copy at the same ``now`` (the second of
  named's key manager run, read from its log) with the policy parsed from the same
  named.conf text;
* compares per-key states, every timing field, lifetime, links, role and TTL, the
  published sets, the signers, the next key event and the status text, and returns every
  difference as a line of text (docs/keymgr-vs-bind.md lists the deliberate ones).
"""

from __future__ import annotations

import calendar
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdatatype

from conftest import free_port, require_tool, run_tool, stop
from dnsseal.crypto import software
from dnsseal.durations import format_bind_time
from dnsseal.keymgr import step
from dnsseal.keymgr.plan import Plan
from dnsseal.keymgr.report import key_status_lines
from dnsseal.keys import algorithms
from dnsseal.keys.model import TIMING_FIELDS, Key, KeyState, PrivateMaterial
from dnsseal.policy import namedconf
from dnsseal.policy.build import lookup
from dnsseal.policy.model import KeySpec, Policy
from dnsseal.storage.keydir import KeyDirectory

ZONE = "example"
ZONE_NAME = dns.name.from_text(ZONE)
RNDC_KEY = 'key "rk" { algorithm hmac-sha256; secret "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"; };'
ZONE_TEXT = "$TTL 300\n@ SOA ns1 host 1 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.0.1\n"
NEXT_EVENT_RE = re.compile(
    r"zone example/IN \(signed\): next key event: (\d{2}-\w{3}-\d{4} \d{2}:\d{2}:\d{2})"
)
LOG_TIME_RE = re.compile(r"^(\d{2}-\w{3}-\d{4} \d{2}:\d{2}:\d{2})\.\d{3} ")
LOADKEYS_INTERVAL = 3600
STATE_ATTRS = ("dnskey", "zrrsig", "krrsig", "ds", "goal")
CHANGE_ATTRS = ("dnskey_change", "zrrsig_change", "krrsig_change", "ds_change")
ROLE_FLAGS = {"ksk": ["-f", "KSK"], "csk": ["-f", "KSK"], "zsk": []}


def bind_time(t: int) -> str:
    return format_bind_time(t)


@dataclass
class Stager:
    """Makes keys in ``keydir`` as BIND's system tests do; times are absolute seconds."""

    keydir: Path
    now: int
    ttl: int = 3600
    made: list[str] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)

    def keygen(
        self,
        role: str,
        *,
        alg: str = "ECDSAP256SHA256",
        publish: int | None = None,
        activate: int | None = None,
        extra: Iterable[str] = (),
    ) -> str:
        """A key made by dnssec-keygen (``publish``/``activate`` absolute, or unset)."""
        args: list[str | Path] = ["dnssec-keygen", "-q", "-K", self.keydir, "-a", alg]
        args += ["-L", str(self.ttl), *ROLE_FLAGS[role]]
        if alg.startswith("RSA"):
            args += ["-b", "1024"]
        if publish is not None:
            args += ["-P", bind_time(publish)]
        if activate is not None:
            args += ["-A", bind_time(activate)]
        args += [*extra, ZONE]
        base = run_tool(args).stdout.strip()
        self.made.append(base)
        self.roles[base] = role
        return base

    def created_like(self, base: str, other: str) -> None:
        """Give ``base`` the creation time of ``other`` (``Created:`` in the .key comment
        and the .private, ``Generated:`` in the .state: each line copied from ``other``'s
        file), for keys staged alike that dnssec-keygen made in different seconds."""
        for suffix, label in (
            (".key", "; Created"),
            (".private", "Created"),
            (".state", "Generated"),
        ):
            path, src = self.keydir / f"{base}{suffix}", self.keydir / f"{other}{suffix}"
            if not path.exists():
                continue
            line = re.search(rf"^{label}: .*$", src.read_text(), re.M)
            assert line is not None, (src, label)
            text = re.sub(
                rf"^{label}: .*$", line.group(0).replace("\\", r"\\"), path.read_text(), flags=re.M
            )
            path.write_text(text)

    def settime(self, base: str, *args: str) -> None:
        """dnssec-settime -s (writes the .state file) with ``args``."""
        run_tool(["dnssec-settime", "-s", "-K", self.keydir, *args, base])
        # The roles, as `dnssec-keygen -k POLICY` writes them in BIND's own tests (a key
        # without them is a KSK or ZSK by its flags, or a CSK only when it is the zone's
        # one DNSKEY: see docs/keymgr-vs-bind.md).
        state = self.keydir / f"{base}.state"
        if state.exists() and "\nKSK:" not in state.read_text():
            role = self.roles[base]
            ksk, zsk = role in ("ksk", "csk"), role in ("zsk", "csk")
            with state.open("a") as f:
                f.write(f"KSK: {'yes' if ksk else 'no'}\nZSK: {'yes' if zsk else 'no'}\n")

    def link(self, predecessor: str, successor: str) -> None:
        """The rollover relationship, written into the .state files as BIND's rollover
        tests do (dnssec-settime has no option for it)."""
        ptag, stag = (int(b.rsplit("+", 1)[1]) for b in (predecessor, successor))
        with (self.keydir / f"{predecessor}.state").open("a") as f:
            f.write(f"Successor: {stag}\n")
        with (self.keydir / f"{successor}.state").open("a") as f:
            f.write(f"Predecessor: {ptag}\n")

    def lifetime(self, base: str, seconds: int) -> None:
        with (self.keydir / f"{base}.state").open("a") as f:
            f.write(f"Lifetime: {seconds}\n")

    def states(
        self,
        base: str,
        *,
        goal: str,
        dnskey: tuple[str, int],
        krrsig: tuple[str, int] | None = None,
        zrrsig: tuple[str, int] | None = None,
        ds: tuple[str, int] | None = None,
        times: Iterable[str] = (),
    ) -> None:
        """Set the key states as ``dnssec-settime -g/-k/-r/-z/-d STATE TIME``."""
        args = ["-g", goal.upper(), "-k", dnskey[0].upper(), bind_time(dnskey[1])]
        for flag, value in (("-r", krrsig), ("-z", zrrsig), ("-d", ds)):
            if value is not None:
                args += [flag, value[0].upper(), bind_time(value[1])]
        self.settime(base, *args, *times)


@dataclass(frozen=True)
class Scenario:
    """A policy (the body of a named.conf ``dnssec-policy`` block) and a staging step."""

    name: str
    policy: str  # the body of dnssec-policy "test" (empty: the zone uses `zone_policy`)
    stage: Callable[[Stager], None]
    ttl: int = 3600
    zone_policy: str = "test"


@dataclass
class BindRun:
    """What named did."""

    now_candidates: list[int]
    next_event: int | None  # absolute
    keys: dict[int, Key]  # tag -> key as named left it
    dnskeys: set[int]
    ksk_signers: set[int]
    zsk_signers: set[int]
    cds: set[int]
    cdnskey: set[int]
    cds_delete: bool
    log: str
    dnskey_rrset_ttl: int | None = None
    status: str = ""  # rndc dnssec -status


def harness_keygen(spec: KeySpec) -> tuple[bytes, PrivateMaterial]:
    return software.generate(algorithms.get(spec.algorithm), spec.bits)


def named_conf(d: Path, port: int, cport: int, policy: str, zone_policy: str = "test") -> str:
    block = f'dnssec-policy "test" {{\n{policy}\n}};' if policy else ""
    return (
        RNDC_KEY
        + f"""
controls {{ inet 127.0.0.1 port {cport} allow {{ 127.0.0.1; }} keys {{ "rk"; }}; }};
options {{ directory "{d}"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
          pid-file "{d}/named.pid"; recursion no; notify no; }};
{block}
zone "{ZONE}" {{ type primary; file "{d}/{ZONE}.db"; dnssec-policy "{zone_policy}";
                key-directory "{d}/keys"; inline-signing yes; }};
"""
    )


def _log_second(line: str) -> int | None:
    m = LOG_TIME_RE.match(line)
    if m is None:
        return None
    return calendar.timegm(time.strptime(m.group(1), "%d-%b-%Y %H:%M:%S"))


def _query(port: int, rdtype: dns.rdatatype.RdataType) -> dns.message.Message | None:
    q = dns.message.make_query(ZONE + ".", rdtype, want_dnssec=True)
    try:
        return dns.query.tcp(q, "127.0.0.1", port=port, timeout=2)
    except (dns.exception.DNSException, OSError):
        return None


def _sets(resp: dns.message.Message | None, rdtype: int) -> tuple[set[int], set[int]]:
    """(key tags of the records of ``rdtype``, key tags of the RRSIGs over them)."""
    tags: set[int] = set()
    signers: set[int] = set()
    if resp is None:
        return tags, signers
    for rrset in resp.answer:
        if rrset.rdtype == rdtype:
            for rd in rrset:
                if rdtype in (dns.rdatatype.DNSKEY, dns.rdatatype.CDNSKEY):
                    tags.add(dns.dnssec.key_id(rd))
                elif rdtype == dns.rdatatype.CDS:
                    tags.add(rd.key_tag)
        elif rrset.rdtype == dns.rdatatype.RRSIG and rrset.covers == rdtype:
            signers |= {rd.key_tag for rd in rrset}
    return tags, signers


def _is_delete(resp: dns.message.Message | None) -> bool:
    if resp is None:
        return False
    return any(
        rrset.rdtype == dns.rdatatype.CDS and any(rd.algorithm == 0 for rd in rrset)
        for rrset in resp.answer
    )


def run_named(root: Path, scenario: Scenario, timeout: float = 30) -> BindRun:
    """Start named on ``root`` (keys in root/keys), wait for its key manager, collect."""
    port, cport = free_port(), free_port()
    conf = root / "named.conf"
    conf.write_text(named_conf(root, port, cport, scenario.policy, scenario.zone_policy))
    (root / f"{ZONE}.db").write_text(ZONE_TEXT)
    run_tool(["named-checkconf", conf])
    logfile = root / "named.log"
    with logfile.open("w") as out:
        proc = subprocess.Popen(
            [require_tool("named"), "-g", "-n", "1", "-c", str(conf)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    lines: list[str] = []
    next_at: int | None = None
    event_line = ""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and next_at is None:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
            lines = logfile.read_text().splitlines(keepends=True)
            for line in lines:
                m = NEXT_EVENT_RE.search(line)
                if m:
                    next_at = _log_second(m.group(1) + ".000 ")
                    event_line = line
                    break
        if next_at is None:
            raise AssertionError("named's key manager did not run:\n" + "".join(lines[-40:]))
        # Let named finish signing, then read what it serves.
        _wait_signed(port, proc)
        dnskey = _query(port, dns.rdatatype.DNSKEY)
        soa = _query(port, dns.rdatatype.SOA)
        cds = _query(port, dns.rdatatype.CDS)
        cdnskey = _query(port, dns.rdatatype.CDNSKEY)
        rndc_conf = root / "rndc.conf"
        rndc_conf.write_text(
            RNDC_KEY + f' options {{ default-key "rk"; default-server 127.0.0.1; '
            f"default-port {cport}; }};"
        )
        status = run_tool(["rndc", "-c", rndc_conf, "dnssec", "-status", ZONE]).stdout
    finally:
        stop(proc)
    lines = logfile.read_text().splitlines(keepends=True)
    log = "".join(lines)
    # named's `now`: the second(s) of the log lines of this key manager run.
    seconds: list[int] = []
    start = max(
        (i for i, x in enumerate(lines) if "reconfiguring zone keys" in x or "keymgr" in x),
        default=0,
    )
    for x in lines[max(0, start - 40) :]:
        if x == event_line:
            s = _log_second(x)
            if s is not None:
                seconds.append(s)
            break
        if "keymgr:" in x or "reconfiguring zone keys" in x:
            s = _log_second(x)
            if s is not None:
                seconds.append(s)
    now_candidates = sorted(set(seconds)) or [int(time.time())]
    keys = {k.tag: k for k in KeyDirectory(root / "keys").keys(ZONE_NAME)}
    dk, ksk_signers = _sets(dnskey, dns.rdatatype.DNSKEY)
    _, zsk_signers = _sets(soa, dns.rdatatype.SOA)
    cds_tags, _ = _sets(cds, dns.rdatatype.CDS)
    cdnskey_tags, _ = _sets(cdnskey, dns.rdatatype.CDNSKEY)
    return BindRun(
        now_candidates=now_candidates,
        next_event=next_at,
        keys=keys,
        dnskeys=dk,
        ksk_signers=ksk_signers,
        zsk_signers=zsk_signers,
        cds=cds_tags if not _is_delete(cds) else set(),
        cdnskey=cdnskey_tags if not _is_delete(cds) else set(),
        cds_delete=_is_delete(cds),
        log=log,
        status=status,
        dnskey_rrset_ttl=next(
            (r.ttl for r in (dnskey.answer if dnskey else []) if r.rdtype == dns.rdatatype.DNSKEY),
            None,
        ),
    )


def _wait_signed(port: int, proc: subprocess.Popen[bytes], timeout: float = 4) -> bool:
    """Wait until the served SOA carries a signature (or the zone stays unsigned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"named exited with {proc.returncode}")
        resp = _query(port, dns.rdatatype.SOA)
        if resp is not None and any(r.rdtype == dns.rdatatype.RRSIG for r in resp.answer):
            time.sleep(0.3)  # DNSKEY/CDS changes are applied in the same transaction
            return True
        time.sleep(0.1)
    return False


@dataclass
class Comparison:
    now: int
    plan: Plan
    bind: BindRun
    diffs: list[str]
    policy: Policy
    staged: set[int] = field(default_factory=set)


def _key_fields(k: Key, tagmap: dict[int, int]) -> dict[str, object]:
    st = k.state or KeyState()
    out: dict[str, object] = {}
    for f in TIMING_FIELDS:
        v = k.timings.get(f.attr)
        out[f.state_tag] = bind_time(v) if v is not None else None
    for a in STATE_ATTRS:
        v = getattr(st, a)
        out[a] = v.value if v is not None else None
    for a in CHANGE_ATTRS:
        v = getattr(st, a)
        out[a] = bind_time(v) if v is not None else None
    out["lifetime"] = st.lifetime
    out["predecessor"] = tagmap.get(st.predecessor, st.predecessor) if st.predecessor else None
    out["successor"] = tagmap.get(st.successor, st.successor) if st.successor else None
    out["ksk"] = st.ksk
    out["zsk"] = st.zsk
    out["ttl"] = k.ttl
    return out


def forgets_rollovers(policy: Policy) -> bool:
    """BIND 9.18's keymgr_key_rollover resets the next key event to 0 ("none") for a
    key line with an unlimited lifetime, dropping the rollover time an earlier line
    with a limited lifetime had set; named then falls back to dnssec-loadkeys-interval."""
    limited = False
    for spec in policy.keys:
        if spec.lifetime:
            limited = True
        elif limited:
            return True
    return False


def compare(
    plan: Plan, bind: BindRun, staged: set[int], policy: Policy, alias: dict[int, int] | None = None
) -> list[str]:
    """Every difference between dnsseal's plan and named's result, as text.  ``alias``
    pairs staged keys under other tags (two keys staged alike, where named's choice
    between them follows its directory order)."""
    diffs: list[str] = []
    ours = {r.key.tag: r.key for r in plan.keys if not r.purge}
    # Keys created in this run get different tags; pair them by role and algorithm.
    tagmap: dict[int, int] = dict(alias or {})
    new_ours = sorted((k for t, k in ours.items() if t not in staged), key=lambda k: k.role)
    new_bind = sorted((k for t, k in bind.keys.items() if t not in staged), key=lambda k: k.role)
    if [(k.role, k.algorithm) for k in new_ours] != [(k.role, k.algorithm) for k in new_bind]:
        diffs.append(
            "new keys: dnsseal "
            f"{[(k.role, k.algorithm) for k in new_ours]} named "
            f"{[(k.role, k.algorithm) for k in new_bind]}"
        )
    else:
        tagmap.update({o.tag: b.tag for o, b in zip(new_ours, new_bind, strict=True)})
    for otag, key in sorted(ours.items()):
        btag = tagmap.get(otag, otag)
        bkey = bind.keys.get(btag)
        if bkey is None:
            if otag in staged:
                diffs.append(f"key {otag}: purged by named, kept by dnsseal")
            continue
        a, b = _key_fields(key, tagmap), _key_fields(bkey, {})
        for name in a:
            if a[name] != b[name]:
                diffs.append(f"key {btag} {name}: dnsseal {a[name]} named {b[name]}")
    for btag in bind.keys:
        if btag in staged and btag not in ours and btag not in tagmap.values():
            diffs.append(f"key {btag}: purged by dnsseal, kept by named")

    def tags(keys: Iterable[Key]) -> set[int]:
        return {tagmap.get(k.tag, k.tag) for k in keys}

    for what, mine, theirs in (
        ("DNSKEY set", tags(plan.dnskeys), bind.dnskeys),
        ("DNSKEY signers", tags(plan.ksk_signers), bind.ksk_signers),
        ("SOA signers", tags(plan.zsk_signers), bind.zsk_signers),
        ("CDS set", tags(plan.cds), bind.cds),
        ("CDNSKEY set", tags(plan.cds), bind.cdnskey),
        ("CDS delete", plan.cds_delete, bind.cds_delete),
    ):
        if mine != theirs:
            diffs.append(f"{what}: dnsseal {mine} named {theirs}")
    # With no key event of its own, named looks at the key directory again after
    # dnssec-loadkeys-interval (60 minutes) and logs that as the next key event.
    ours_next = plan.next_state_event
    if ours_next is None:
        ours_next = plan.now + LOADKEYS_INTERVAL
    if (
        bind.next_event == plan.now + LOADKEYS_INTERVAL
        and ours_next > bind.next_event
        and forgets_rollovers(policy)
    ):
        # named's keymgr_key_rollover lost its next event (docs/keymgr-vs-bind.md,
        # "next key event"): it looks again in an hour; dnsseal keeps the real one.
        ours_next = bind.next_event
    if ours_next != bind.next_event:
        ours_ne = bind_time(ours_next)
        theirs = bind_time(bind.next_event) if bind.next_event else None
        diffs.append(f"next key event: dnsseal {ours_ne} named {theirs}")
    diffs += compare_status(plan, bind, policy, tagmap)
    return diffs


def _status_blocks(text: str) -> dict[str, list[str]]:
    """``rndc dnssec -status`` text as {"key: TAG ...": lines} (named lists keys in its
    directory order); dnsseal's own lines (waiting, private key) left out."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("key: "):
            current = out.setdefault(line, [])
        elif current is not None and line and not line.startswith(("  waiting:", "  private")):
            current.append(" ".join(line.split()))
    return out


def compare_status(plan: Plan, bind: BindRun, policy: Policy, tagmap: dict[int, int]) -> list[str]:
    """`rndc dnssec -status` against dnsseal's rendering of the same keys (keymgr.report,
    as `dnsseal keys status` prints it) at the moment rndc ran."""
    m = re.search(r"current time:\s+(.+)", bind.status)
    if m is None:
        return [f"rndc dnssec -status: no current time in {bind.status!r}"]
    when = calendar.timegm(time.strptime(m.group(1).strip(), "%a %b %d %H:%M:%S %Y"))
    text = "\n".join(
        line for r in plan.keys if not r.purge for line in key_status_lines(r, when, policy)
    )
    text = re.sub(
        r"^key: (\d+) ",
        lambda m: f"key: {tagmap.get(int(m.group(1)), int(m.group(1)))} ",
        text,
        flags=re.M,
    )
    ours, theirs = _status_blocks(text), _status_blocks(bind.status)
    diffs = []
    for head in sorted(set(ours) | set(theirs)):
        if ours.get(head) != theirs.get(head):
            diffs.append(f"status {head}: dnsseal {ours.get(head)} named {theirs.get(head)}")
    return diffs


def run_scenario(
    tmp: Path, scenario: Scenario, *, now: int | None = None, alike: str | None = None
) -> Comparison:
    """Stage, run named and dnsseal, compare (see the module docstring).  ``alike`` names
    a role whose two keys are staged alike: named's choice between them follows its
    directory order, so each candidate time is compared under both pairings."""
    now = int(time.time()) if now is None else now
    root = tmp / "bind"
    keydir = root / "keys"
    keydir.mkdir(parents=True)
    stager = Stager(keydir, now, ttl=scenario.ttl)
    scenario.stage(stager)
    ours_dir = tmp / "ours"
    shutil.copytree(keydir, ours_dir)
    staged = {k.tag for k in KeyDirectory(ours_dir).keys(ZONE_NAME)}
    bind = run_named(root, scenario)
    policy = lookup(scenario.zone_policy, namedconf.parse(named_conf(root, 1, 2, scenario.policy)))
    keys = KeyDirectory(ours_dir).keys(ZONE_NAME)
    aliases: list[dict[int, int] | None] = [None]
    if alike is not None:
        pair = sorted(k.tag for k in keys if k.role == alike)
        assert len(pair) == 2, f"{alike}: {pair}"
        aliases.append({pair[0]: pair[1], pair[1]: pair[0]})
    best: Comparison | None = None
    for t in bind.now_candidates:
        plan = step(policy, keys, None, t, zone=ZONE_NAME, keygen=harness_keygen)
        for alias in aliases:
            diffs = compare(plan, bind, staged, policy, alias=alias)
            if best is None or len(diffs) < len(best.diffs):
                best = Comparison(t, plan, bind, diffs, policy, staged)
    assert best is not None
    return best


def report(c: Comparison) -> str:
    """The differences, with named's keymgr log lines, for an assertion message."""
    keymgr = [x for x in c.bind.log.splitlines() if "keymgr" in x or "next key event" in x]
    return (
        f"now={c.now} ({bind_time(c.now)})\n"
        + "\n".join(c.diffs)
        + "\n--- named:\n"
        + "\n".join(keymgr[-30:])
    )
