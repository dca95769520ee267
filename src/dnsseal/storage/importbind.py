"""``dnsseal import-bind``: a BIND ``named.conf`` turned into ``dnsseal.toml``.

Reads the whole file with :mod:`dnsseal.policy.bindconf` (``include`` followed; a relative
include is relative to the including file's directory, then to ``directory``) and maps:

* ``options``: ``directory`` (base of relative paths), ``key-directory`` (used in place:
  the keys and their ``.state`` files are adopted as they are), ``listen-on`` /
  ``listen-on-v6`` (plain addresses, ``port``), and the zone defaults ``allow-transfer``,
  ``also-notify``, ``parental-agents``, ``checkds``, ``dnssec-policy``;
* ``dnssec-policy`` blocks: written as ``[policy.NAME]`` tables to a policies file beside
  the output (the same checks as ``dnsseal policy check``);
* ``key`` (TSIG), ``acl``, ``primaries`` / ``masters`` and ``parental-agents`` lists;
* every ``zone``: a primary with ``dnssec-policy`` is signed inline from its ``file``; a
  primary without one (or with ``none``) is served as it is (``presigned``); a secondary
  with ``dnssec-policy`` becomes a zone with ``primaries`` (dnsseal signs what it
  transfers, as BIND does); a plain secondary becomes a zone with ``primaries`` and no
  policy (served exactly as transferred, signed or not), its TSIG keys kept.

Everything else is skipped with one note per item saying why (``controls``, ``logging``,
``statistics-channels``, views, options with no meaning here).  Paths in the output are
absolute, so the config works wherever it is written.
"""

from __future__ import annotations

import json
import logging
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dnsseal.errors import FileFormatError, OptionError, StorageError
from dnsseal.policy import bindconf, namedconf, tomlfmt
from dnsseal.policy.bindconf import Block, Statement, Token
from dnsseal.policy.build import PolicyErrors
from dnsseal.policy.model import Policy
from dnsseal.storage import atomic
from dnsseal.storage.files import read_text
from dnsseal.storage.serverconfig import TSIG_ALGORITHMS, copy_name, ensure_dir, parse_config

log = logging.getLogger(__name__)

__all__ = ["Imported", "import_named_conf", "write_imported"]

BUILTIN_POLICIES = ("default", "insecure")
BUILTIN_ACLS = {"any": ["any"], "none": ["none"], "localhost": ["127.0.0.1", "::1"]}
ZONE_DEFAULTS = (
    "allow-transfer",
    "also-notify",
    "parental-agents",
    "checkds",
    "dnssec-policy",
    "serial-update-method",
    "allow-update",
    "update-policy",
)
# Zone options whose meaning dnsseal has on its own (no note: the result is the same).
QUIET_ZONE = {"type", "file", "inline-signing", "key-directory", "notify", "masterfile-format"}
# Top-level statements with no meaning for dnsseal, and why.
SKIPPED_TOP = {
    "controls": "dnsseal's control channel is the unix socket server.control (`dnsseal ctl`)",
    "statistics-channels": "dnsseal has no statistics channel",
    "logging": "dnsseal logs to stderr (`dnsseal -v serve`)",
    "trust-anchors": "trust anchors are for resolvers (`dnsseal resolver`)",
    "managed-keys": "trust anchors are for resolvers (`dnsseal resolver`)",
    "trusted-keys": "trust anchors are for resolvers (`dnsseal resolver`)",
    "server": "per-server options are not supported",
    "tls": "DNS over TLS is not supported",
    "http": "DNS over HTTPS is not supported",
    "key-store": "key stores are used through the dnssec-policy blocks that name them",
}


@dataclass(slots=True)
class Imported:
    """What the import made: the TOML text, the policies' TOML (None: no custom policy)
    and one note per item skipped or changed."""

    config: str
    policies: str | None
    notes: list[str] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    # zone name -> BIND's copy of a transferred zone: its serial files are linked into
    # the state directory, where dnsseal's copy lives, so the serial continues from them
    transferred: dict[str, Path] = field(default_factory=dict)


def _q(text: str) -> str:
    return json.dumps(text)  # a TOML basic string


def _list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


class _Importer:
    def __init__(self, main: Path, policies_file: str, state_dir: str) -> None:
        self.main = main.resolve()
        self.directory = self.main.parent
        self.policies_file = policies_file
        self.state_dir = state_dir
        self.notes: list[str] = []
        self.keys: dict[str, tuple[str, str]] = {}
        self.acls: dict[str, list[str]] = {}
        self.remotes: dict[str, list[str]] = {}  # primaries / parental-agents lists
        self.defaults: dict[str, Statement] = {}
        self.policy_names: set[str] = set()
        self.transferred: dict[str, Path] = {}

    def note(self, st: Statement | None, text: str) -> None:
        self.notes.append(f"{st.where}: {text}" if st is not None else text)

    # -- reading -----------------------------------------------------------------------

    def read(self, name: str, including: str) -> tuple[str, str]:
        path = Path(name)
        if not path.is_absolute():
            first = Path(including).parent / path
            path = first if first.exists() else self.directory / path
        path = path.resolve()
        return read_text(path), str(path)

    def run(self) -> Imported:
        statements = bindconf.parse(read_text(self.main), str(self.main), self.read)
        options = next((s for s in statements if s.name == "options"), None)
        key_dir: Path | None = None
        listen: list[str] = []
        if options is not None:
            key_dir = self._options(options, listen)
        else:
            listen += ["0.0.0.0@53", "::@53"]  # BIND's defaults
        if not listen:
            self.note(options, "named listens nowhere (listen-on { none; }): dnsseal on "
                      "127.0.0.1@53 and ::1@53 instead")  # fmt: skip
        for st in statements:
            self._top(st)
        policies_text = self._policies(statements)
        zones = [s for s in statements if s.name == "zone"]
        zone_tables: list[str] = []
        names: list[str] = []
        for st in zones:
            table = self._zone(st, key_dir)
            if table is not None:
                zone_tables.append(table[1])
                names.append(table[0])
        server = [
            "[server]",
            f"listen = {_list(listen or ['127.0.0.1@53', '::1@53'])}",
            f"control = {_q('dnsseal.sock')}",
            f"state-dir = {_q(self.state_dir)}",
            f"key-directory = {_q(str(key_dir or self.directory))}",
        ]
        if policies_text is not None:
            server.append(f"policies = {_q(self.policies_file)}")
        parts = [
            f"# Imported from {self.main} by `dnsseal import-bind`.\n",
            "\n".join(server) + "\n",
        ]
        for name, (alg, secret) in self.keys.items():
            parts.append(f"[key.{_q(name)}]\nalgorithm = {_q(alg)}\nsecret = {_q(secret)}\n")
        if self.acls:
            lines = ["[acl]"] + [f"{_q(n)} = {_list(items)}" for n, items in self.acls.items()]
            parts.append("\n".join(lines) + "\n")
        parts += zone_tables
        if self.notes:
            parts.append(
                "# Notes from the import:\n"
                + "".join(f"#   {' '.join(n.split())}\n" for n in self.notes)
            )
        return Imported("\n".join(parts), policies_text, self.notes, names, self.transferred)

    # -- options -----------------------------------------------------------------------

    def _path(self, text: str) -> Path:
        p = Path(text)
        return p if p.is_absolute() else self.directory / p

    def _options(self, options: Statement, listen: list[str]) -> Path | None:
        directory = options.find("directory")
        if directory is not None and directory.args:
            self.directory = self._path(directory.args[0])
        key_dir: Path | None = None
        port = 53
        for st in options.block or ():
            if st.name == "port" and st.args and st.args[0].isdigit():
                port = int(st.args[0])
        for st in options.block or ():
            name = st.name
            if name in {"directory", "port"}:
                continue
            if name == "key-directory" and st.args:
                key_dir = self._path(st.args[0])
            elif name in ("listen-on", "listen-on-v6"):
                listen += self._listen(st, port, v6=name.endswith("v6"))
            elif name in ZONE_DEFAULTS:
                self.defaults[name] = st
            elif name in {"dnssec-validation", "recursion"}:
                if st.args and st.args[0].lower() not in ("no", "false", "0"):
                    self.note(st, f"{name}: dnsseal serves authoritative data only (skipped)")
            else:
                self.note(st, f"option {name!r} has no meaning in dnsseal (skipped)")
        # BIND listens on every address of a family unless told otherwise.
        if options.find("listen-on") is None:
            listen.insert(0, f"0.0.0.0@{port}")
        if options.find("listen-on-v6") is None:
            listen.append(f"::@{port}")
        return key_dir

    def _listen(self, st: Statement, port: int, *, v6: bool) -> list[str]:
        words = list(st.args)
        if len(words) >= 2 and words[0] == "port" and words[1].isdigit():
            port = int(words[1])
        out = []
        for item in st.block or ():
            text = " ".join(w.text for w in item.words)
            if text == "any":
                out.append(f"{'::' if v6 else '0.0.0.0'}@{port}")
            elif text == "none":
                continue
            elif ":" in text or text.replace(".", "").isdigit():
                if "/" in text:
                    self.note(item, f"{st.name}: network {text!r} is not an address (skipped)")
                else:
                    out.append(f"{text}@{port}")
            else:
                self.note(item, f"{st.name}: {text!r} is not an address (skipped)")
        return out

    # -- top-level statements ----------------------------------------------------------

    def _top(self, st: Statement) -> None:
        name = st.name
        if name in ("options", "zone", "dnssec-policy"):
            return
        if name == "key":
            self._key(st)
        elif name == "acl" and st.args:
            self.acls[st.args[0]] = self._aml(st, st.block or (), f"acl {st.args[0]}")
        elif name in ("primaries", "masters", "parental-agents") and st.args:
            self.remotes[st.args[0]] = self._remotes(st, st.block or (), self._port(st))
        elif name == "view":
            self.note(st, f"view {' '.join(st.args)}: views are not supported yet (skipped "
                      "with every zone in it)")  # fmt: skip
        elif name in SKIPPED_TOP:
            self.note(st, f"{name}: {SKIPPED_TOP[name]} (skipped)")
        else:
            self.note(st, f"statement {name!r} has no meaning in dnsseal (skipped)")

    def _key(self, st: Statement) -> None:
        if len(st.args) != 1:
            raise FileFormatError(st.source, st.line, "key needs exactly one name")
        alg = st.find("algorithm")
        secret = st.find("secret")
        if alg is None or secret is None or not alg.args or not secret.args:
            raise FileFormatError(st.source, st.line, "key needs an algorithm and a secret")
        algorithm = alg.args[0].lower()
        if algorithm not in TSIG_ALGORITHMS:
            self.note(st, f"key {st.args[0]}: algorithm {algorithm!r} not supported (skipped)")
            return
        self.keys[st.args[0]] = (algorithm, secret.args[0])

    def _aml(self, st: Statement, items: Iterable[Statement], what: str) -> list[str]:
        """An address match list as ACL elements (``!``, ``key NAME``, networks, names)."""
        out: list[str] = []
        for item in items:
            words = [w.text for w in item.words]
            if item.block is not None or not words:
                self.note(item, f"{what}: nested lists are not supported (element skipped)")
                continue
            neg = words[0].startswith("!")
            first = words[0].lstrip("!") or (words[1] if len(words) > 1 else "")
            rest = words[1:] if words[0] != "!" else words[2:]
            prefix = "!" if neg else ""
            if first == "key" and rest:
                out.append(f"{prefix}key {rest[0]}")
            elif first in BUILTIN_ACLS:
                out += [prefix + e for e in BUILTIN_ACLS[first]]
                if first == "localhost":
                    self.note(item, f"{what}: 'localhost' taken as 127.0.0.1 and ::1")
            elif first == "localnets":
                self.note(item, f"{what}: 'localnets' is not supported (element skipped)")
            elif first in self.acls:
                out.append(prefix + first)
            elif first.lower() in ("geoip", "port", "transport"):
                self.note(item, f"{what}: {first!r} is not supported (element skipped)")
            else:
                out.append(prefix + first)
        return out

    def _port(self, st: Statement) -> int:
        args = list(st.args)
        if "port" in args and args.index("port") + 1 < len(args):
            value = args[args.index("port") + 1]
            if value.isdigit():
                return int(value)
        return 53

    def _remotes(self, st: Statement, items: Iterable[Statement], port: int) -> list[str]:
        """``addr [port N] [key K]`` entries, named lists expanded."""
        out: list[str] = []
        for item in items:
            words = [w.text for w in item.words]
            if not words:
                continue
            if words[0] in self.remotes:
                out += self.remotes[words[0]]
                continue
            addr, extra, i = words[0], {"port": str(port)}, 1
            while i + 1 < len(words):
                extra[words[i].lower()] = words[i + 1]
                i += 2
            if "tls" in extra:
                self.note(item, f"{st.name}: DNS over TLS to {addr} is not supported")
            line = f"{addr} port {extra['port']}"
            if "key" in extra:
                line += f" key {extra['key']}"
            out.append(line)
        return out

    # -- dnssec-policy -----------------------------------------------------------------

    def _policies(self, statements: list[Statement]) -> str | None:
        """The dnssec-policy blocks as TOML (None: there are none).  Each block is read by
        :mod:`dnsseal.policy.namedconf` with the key-store blocks it may name; a problem
        names the file and line of its block."""
        stores = [s for s in statements if s.name == "key-store"]
        blocks = [s for s in statements if s.name == "dnssec-policy"]
        policies: list[Policy] = []
        for st in blocks:
            name = st.args[0] if st.args else ""
            self.policy_names.add(name)
            where = f"{st.where}: dnssec-policy {name}"
            try:
                policies += namedconf.parse(bindconf.unparse([*stores, st]), where).values()
            except FileFormatError as e:
                raise FileFormatError(
                    st.source, st.line, f"dnssec-policy {name}: {e.message}"
                ) from None
            except PolicyErrors as e:
                problems = "; ".join(str(p) for p in e.errors)
                raise OptionError(where, problems) from None
        return tomlfmt.format(policies) if policies else None

    # -- zones -------------------------------------------------------------------------

    def _opt(self, zone: Statement, name: str) -> Statement | None:
        own = zone.find(name)
        return own if own is not None else self.defaults.get(name)

    def _zone(self, st: Statement, key_dir: Path | None) -> tuple[str, str] | None:
        if not st.args:
            raise FileFormatError(st.source, st.line, "zone needs a name")
        zname = st.args[0]
        if len(st.args) > 1 and st.args[1].upper() not in ("IN", "INTERNET"):
            self.note(st, f"zone {zname}: class {st.args[1]} is not served (skipped)")
            return None
        where = f"zone {zname}"
        ztype = st.find("type")
        kind = ztype.args[0].lower() if ztype is not None and ztype.args else ""
        kind = {"master": "primary", "slave": "secondary"}.get(kind, kind)
        if kind not in ("primary", "secondary"):
            self.note(st, f"{where}: type {kind or '(none)'} is not served by dnsseal (skipped)")
            return None
        pol = self._opt(st, "dnssec-policy")
        policy = pol.args[0] if pol is not None and pol.args else None
        if policy == "none":
            policy = None
        if (
            policy is not None
            and policy not in BUILTIN_POLICIES
            and (policy not in self.policy_names)
        ):
            raise OptionError(f"{st.where}: {where}", f"dnssec-policy {policy!r} is not defined")
        zkd = st.find("key-directory")
        if zkd is not None and zkd.args and self._path(zkd.args[0]) != key_dir:
            self.note(zkd, f"{where}: its own key-directory is not supported; dnsseal uses "
                      "server.key-directory for every zone (move its key files there)")  # fmt: skip
        lines = [f"[zone.{_q(zname.rstrip('.') or '.')}]"]
        if kind == "primary":
            file = st.find("file")
            if file is None or not file.args:
                self.note(st, f"{where}: a primary without a file (skipped)")
                return None
            path = self._path(file.args[0])
            lines.append(f"file = {_q(str(path))}")
            for jnl in (Path(f"{path}.jnl"),):
                if jnl.exists():
                    self.note(st, f"{where}: {jnl} holds dynamic updates not yet in {path}: "
                              "run `rndc sync -clean` before stopping named")  # fmt: skip
            if policy is None:
                lines.append("presigned = true")
                self.note(st, f"{where}: no dnssec-policy: served as it is (presigned)")
        else:
            prim = st.find("primaries") or st.find("masters")
            remotes = self._remotes(prim, prim.block or (), self._port(prim)) if prim else []
            if not remotes:
                self.note(st, f"{where}: a secondary without primaries (skipped)")
                return None
            for r in remotes:
                key = r.split(" key ")[1] if " key " in r else None
                if key is not None and key not in self.keys:
                    raise OptionError(f"{prim.where if prim else st.where}: {where}",
                                      f"unknown TSIG key {key!r}")  # fmt: skip
            lines.append(f"primaries = {_list(remotes)}")
            file = st.find("file")
            if policy is None:  # a plain secondary: served as transferred
                self.note(
                    st,
                    f"{where}: a secondary: transferred anew from its primaries at the first "
                    "start (dnsseal keeps its copy in server.state-dir)",
                )
                notify_acl = st.find("allow-notify")
                if notify_acl is not None:
                    self.note(
                        notify_acl,
                        f"{where}: allow-notify: NOTIFY is taken from the primaries' "
                        "addresses (with their key when they have one)",
                    )
            elif file is not None and file.args:
                self.transferred[zname.rstrip(".")] = self._path(file.args[0])
        if policy is not None:
            lines.append(f"dnssec-policy = {_q(policy)}")
        lines += self._zone_lists(st, where, policy)
        for opt in st.block or ():
            if opt.name in QUIET_ZONE or opt.name in ZONE_DEFAULTS or opt.name in (
                "primaries", "masters", "allow-notify"
            ):  # fmt: skip
                continue
            self.note(opt, f"{where}: option {opt.name!r} has no meaning in dnsseal (skipped)")
        return zname, "\n".join(lines) + "\n"

    def _zone_lists(self, st: Statement, where: str, policy: str | None) -> list[str]:
        lines: list[str] = []
        xfr = self._opt(st, "allow-transfer")
        if xfr is not None:
            lines.append(f"allow-transfer = {_list(self._aml(xfr, xfr.block or (), where))}")
        upd = self._opt(st, "allow-update")
        upol = self._opt(st, "update-policy")
        if upol is not None and upol.block is None:
            self.note(upol, f"{where}: update-policy {' '.join(upol.args)} is not supported "
                      "(skipped)")  # fmt: skip
        elif upol is not None and policy is not None:
            rules = [" ".join(_word(w) for w in r.words) for r in upol.block or ()]
            lines.append(f"update-policy = {_list(rules)}")
        elif upd is not None:
            items = self._aml(upd, upd.block or (), where)
            if items and items != ["none"] and policy is None:
                self.note(upd, f"{where}: dynamic update needs an inline-signed zone (skipped)")
            elif items and items != ["none"]:
                lines.append(f"allow-update = {_list(items)}")
        notify = self._opt(st, "also-notify")
        if notify is not None:
            remotes = self._remotes(notify, notify.block or (), self._port(notify))
            keys = {r.split(" key ")[1] for r in remotes if " key " in r}
            lines.append(f"also-notify = {_list(_at(r) for r in remotes)}")
            if len(keys) > 1:
                self.note(notify, f"{where}: also-notify with several keys: only "
                          f"{sorted(keys)[0]} is used")  # fmt: skip
            if keys:
                lines.append(f"notify-key = {_q(sorted(keys)[0])}")
        agents = self._opt(st, "parental-agents")
        if agents is not None:
            remotes = self._remotes(agents, agents.block or (), self._port(agents))
            if any(" key " in r for r in remotes):
                self.note(agents, f"{where}: parental-agents are asked without TSIG")
            lines.append(f"parental-agents = {_list(_at(r) for r in remotes)}")
        checkds = self._opt(st, "checkds")
        if checkds is not None and checkds.args and policy is not None:
            value = checkds.args[0].lower()
            value = {"true": "yes", "false": "no"}.get(value, value)
            lines.append(f"checkds = {_q(value)}")
        method = self._opt(st, "serial-update-method")
        if method is not None and method.args and method.args[0].lower() != "increment":
            value = method.args[0].lower()
            if value in ("unixtime", "date") and policy is not None:
                lines.append(f"serial-update-method = {_q(value)}")
            else:
                self.note(method, f"{where}: serial-update-method {method.args[0]}: "
                          "dnsseal increments the serial (continuing from BIND's)")  # fmt: skip
        return lines


def _word(tok: Token | Block) -> str:
    return tok.text if isinstance(tok, Token) else ""


def _at(remote: str) -> str:
    """``addr port N [key K]`` -> ``addr@N`` (the endpoint form of also-notify)."""
    words = remote.split()
    return f"{words[0]}@{words[2]}"


def import_named_conf(path: Path, policies_file: str, state_dir: str) -> Imported:
    """Read ``path`` (and its includes) and build the dnsseal config.  ``policies_file``
    and ``state_dir`` are written into it as given.  Raises FileFormatError (named.conf
    syntax, with file:line), StorageError (a file cannot be read), OptionError (a zone
    naming an undefined policy or key)."""
    return _Importer(path, policies_file, state_dir).run()


def write_imported(result: Imported, output: Path, policies: Path) -> None:
    """Check the config as ``serve -c`` does (in a scratch directory, with its policies
    file), then write it and the policies file, each atomically: nothing is written when
    the check fails.  Raises OptionError (by option path) or StorageError."""
    with tempfile.TemporaryDirectory() as scratch:
        draft = Path(scratch) / output.name
        try:
            if result.policies is not None:
                (Path(scratch) / policies.name).write_text(result.policies)
            draft.write_text(result.config)
        except OSError as e:
            raise StorageError(scratch, e.strerror or str(e)) from None
        try:
            load_config_at(draft, output.parent.resolve(), output)
        except OptionError as e:
            # name the files as they will be, not the scratch copies
            where = e.option.replace(str(scratch), str(output.parent))
            raise OptionError(where, e.message.replace(str(scratch), str(output.parent))) from None
    try:
        if result.policies is not None:
            atomic.replace(policies, result.policies.encode())
        atomic.replace(output, result.config.encode())
    except OSError as e:
        raise StorageError(str(output), e.strerror or str(e)) from None
    state = output.parent / tomllib.loads(result.config)["server"]["state-dir"]
    link_transferred(result.transferred, state)


def link_transferred(transferred: dict[str, Path], state: Path) -> None:
    """For each zone dnsseal will transfer in and sign, link BIND's signed copy and its
    journal beside dnsseal's copy (``STATE/NAME.xfr.signed``), where the inline signer
    looks for the serial served before.  Raises StorageError."""
    if not transferred:
        return
    ensure_dir(state)
    for name, bind_file in transferred.items():
        for suffix in (".signed", ".signed.jnl"):
            target = Path(f"{bind_file}{suffix}")
            link = state / f"{copy_name(name)}.xfr{suffix}"
            if not target.exists():
                continue
            try:
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(target)
            except OSError as e:
                raise StorageError(str(link), e.strerror or str(e)) from None


def load_config_at(path: Path, base: Path, source: Path) -> None:
    """Check the config in ``path`` as if it were ``source`` in ``base`` (its policies
    file read from beside ``path``).  Raises OptionError."""
    data = tomllib.loads(path.read_text())
    server = data.get("server", {})
    if isinstance(server, dict) and isinstance(server.get("policies"), str):
        server["policies"] = str(path.parent / server["policies"])
    parse_config(data, base, source)
