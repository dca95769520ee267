"""``keys timeline --svg`` checked by its structure: the date axis, the "now" line, one
labelled bar per record state per key, hatched future keys, DS markers where the JSON
events say, a legend clear of every bar; and rendered to PNG by Chromium."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require_tool
from dnsseal.cli.main import cli
from dnsseal.durations import parse_bind_time
from dnsseal.keymgr import timeline as tline

NS = "{http://www.w3.org/2000/svg}"
POLICY = """
[policy.kz]
keys = [
  { role = "ksk", lifetime = "P1Y", algorithm = "ECDSAP256SHA256" },
  { role = "zsk", lifetime = "P60D", algorithm = "ECDSAP256SHA256" },
]
"""
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def dnsseal(*args: str | Path) -> str:
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def classes(e: ET.Element) -> set[str]:
    return set(e.get("class", "").split())


def box(e: ET.Element) -> Box:
    x, y = float(e.get("x", 0)), float(e.get("y", 0))
    return x, y, x + float(e.get("width", 0)), y + float(e.get("height", 0))


def overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def drawn(tmp: Path) -> tuple[ET.Element, dict[str, object], Path, int]:
    """Keys made a month ago, then the timeline from now over 400 days."""
    (tmp / "p.toml").write_text(POLICY)
    keydir = tmp / "k"
    keydir.mkdir()
    common = ("example", "-K", keydir, "-p", "kz", "-c", tmp / "p.toml")
    dnsseal("keys", "run", *common, "--now", "20260101000000")
    svg = tmp / "t.svg"
    out = dnsseal("keys", "timeline", *common, "--now", "20260201000000", "--until", "P400D",
                  "--assume-ds-after", "PT2H", "--json", "--svg", svg)  # fmt: skip
    return ET.parse(svg).getroot(), json.loads(out), svg, parse_bind_time("20260201000000")


def test_timeline_svg_structure(tmp_path: Path) -> None:
    root, doc, _, now = drawn(tmp_path)
    # the date axis: ticks left to right in date order, each label the date of its tick
    axis = next(g for g in root.iter(f"{NS}g") if "axis" in classes(g))
    ticks = [t for t in axis.iter(f"{NS}line") if "tick" in classes(t)]
    labels = [t for t in axis.iter(f"{NS}text") if "tick-label" in classes(t)]
    assert len(ticks) >= 4 and len(ticks) == len(labels)
    epochs = [int(t.get("data-epoch", 0)) for t in ticks]
    xs = [float(t.get("x1", 0)) for t in ticks]
    assert epochs == sorted(epochs) and xs == sorted(xs) and len(set(xs)) == len(xs)
    for lab, t in zip(labels, epochs, strict=True):
        assert lab.text == time.strftime("%Y-%m", time.gmtime(t)), (lab.text, t)
        assert time.gmtime(t).tm_mday == 1  # month ticks on the first of the month

    def x_of(t: int) -> float:  # the axis's own scale, from its first and last tick
        return xs[0] + (t - epochs[0]) * (xs[-1] - xs[0]) / (epochs[-1] - epochs[0])

    # the "now" line at now's place on that scale
    (line,) = [e for e in root.iter(f"{NS}line") if "now" in classes(e)]
    assert int(line.get("data-epoch", 0)) == now
    assert abs(float(line.get("x1", 0)) - x_of(now)) < 0.2
    # one lane per key the events name; the made-up ones are the hatched ones
    lanes = {int(g.get("data-tag", 0)): g for g in root.iter(f"{NS}g") if "key" in classes(g)}
    events = doc["events"]
    assert isinstance(events, list)
    tags = {e["key"] for e in events if e["key"]}
    assert set(lanes) == tags
    future = {e["key"] for e in events if e["simulated_key"]}
    assert future and {t for t, g in lanes.items() if "future" in classes(g)} == future
    defs = {p.get("id") for p in root.iter(f"{NS}pattern")}
    assert "future" in defs
    bars: list[Box] = []
    for tag, g in lanes.items():
        rows = [t.text for t in g.iter(f"{NS}text") if "row-label" in classes(t)]
        assert rows == ["DNSKEY", "KRRSIG", "ZRRSIG", "DS"]
        rects = [r for r in g.iter(f"{NS}rect") if "bar" in classes(r)]
        hatches = [r for r in g.iter(f"{NS}rect") if "hatch" in classes(r)]
        assert rects
        # hatched exactly when the key is not yet created, every bar of it
        assert len(hatches) == (len(rects) if tag in future else 0)
        assert all(h.get("fill") == "url(#future)" for h in hatches)
        by_record: dict[str, list[ET.Element]] = {}
        for r in rects:
            rec, state = r.get("data-record", ""), r.get("data-state", "")
            title = r.find(f"{NS}title")
            assert title is not None and (title.text or "").startswith(f"{rec} {state} from ")
            by_record.setdefault(rec, []).append(r)
            bars.append(box(r))
        for rec, runs in by_record.items():
            # one bar per state run: consecutive bars of a record differ and do not overlap
            for a, b in itertools.pairwise(runs):
                assert a.get("data-state") != b.get("data-state"), (tag, rec)
                assert int(a.get("data-end", 0)) <= int(b.get("data-start", 0))
            for r in runs:  # each bar starts where the axis puts its date
                start = int(r.get("data-start", 0))
                if epochs[0] <= start <= epochs[-1]:
                    assert abs(float(r.get("x", 0)) - x_of(start)) < 0.3
        role = g.get("data-role")
        assert ("DS" in by_record) == (role in ("ksk", "csk")), tag
    # DS markers where the events say: submit when the CDS appears, seen when checkds saw it
    marks = {
        (kind, int(m.get("data-epoch", 0)))
        for g in lanes.values()
        for m in g
        if "marker" in classes(m)
        for kind in classes(m) - {"marker"}
    }
    when = {
        "ds-submit": "CDS/CDNSKEY published: the parent may add the DS",
        "ds-seen": "DS expected at the parent",
        "ds-withdraw": "CDS withdrawn: the parent may remove the DS",
    }
    for kind, what in when.items():
        want = {e["epoch"] for e in events if e["event"] == what}
        assert want and want == {t for k, t in marks if k == kind}, kind
    seen = min(t for k, t in marks if k == "ds-seen")
    assert seen == min(t for k, t in marks if k == "ds-submit") + 7200  # --assume-ds-after
    # the legend: in its box, below every lane, touching no bar
    legend = next(g for g in root.iter(f"{NS}g") if "legend" in classes(g))
    frame = next(r for r in legend if "legend-box" in classes(r))
    lb = box(frame)
    assert not any(overlap(lb, b) for b in bars)
    width, height = float(root.get("width", 0)), float(root.get("height", 0))
    assert lb[2] <= width and lb[3] <= height
    texts = [t.text for t in legend.iter(f"{NS}text")]
    assert {"hidden", "rumoured", "omnipresent", "unretentive", "now"} <= set(texts)
    assert "future key (simulated)" in texts and "submit the DS to the parent" in texts
    for t in legend.iter(f"{NS}text"):
        assert lb[0] < float(t.get("x", 0)) < lb[2] and lb[1] < float(t.get("y", 0)) < lb[3]


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


@pytest.mark.interop
def test_timeline_svg_renders_in_chromium(tmp_path: Path) -> None:
    root, _, svg, _ = drawn(tmp_path)
    width, height = int(root.get("width", 0)), int(root.get("height", 0))
    shot = tmp_path / "timeline.png"
    profile = tmp_path / "chromium-profile"
    proc = subprocess.run(
        [require_tool("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
         f"--screenshot={shot}", f"--window-size={width},{height}", svg.as_uri()],
        check=False, capture_output=True, text=True, timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert png_size(data) == (width, height)
    assert len(data) > 20_000  # a drawing, not a blank page
    keep = os.environ.get("DNSSEAL_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "keys-timeline.png")


def test_timeline_svg_marks_manual_mode_approvals(tmp_path: Path) -> None:
    """manual-mode: with --approve-after the operator's approvals are diamonds on the date
    axis, at the times the events list them; with 'never' nothing after now happens."""
    (tmp_path / "p.toml").write_text(
        POLICY.replace("[policy.kz]", "[policy.kz]\nmanual-mode = true")
    )
    keydir = tmp_path / "k"
    keydir.mkdir()
    common = ("example", "-K", keydir, "-p", "kz", "-c", tmp_path / "p.toml")
    dnsseal("keys", "step", *common, "--now", "20260101000000")
    svg = tmp_path / "m.svg"
    out = dnsseal("keys", "timeline", *common, "--now", "20260110000000", "--until", "P150D",
                  "--approve-after", "P2D", "--json", "--svg", svg)  # fmt: skip
    events = json.loads(out)["events"]
    approved = [e["epoch"] for e in events if "approves the pending step" in e["event"]]
    assert len(approved) >= 5
    root = ET.parse(svg).getroot()
    axis = next(g for g in root.iter(f"{NS}g") if "axis" in classes(g))
    marks = [int(m.get("data-epoch", 0)) for m in axis if "step-approved" in classes(m)]
    assert marks == approved
    # keys are only made when the operator approves
    created = [e["epoch"] for e in events if e["event"] == "key created"]
    assert created and set(created) <= set(approved)
    out = dnsseal("keys", "timeline", *common, "--now", "20260110000000", "--until", "P150D",
                  "--approve-after", "never", "--json")  # fmt: skip
    events = json.loads(out)["events"]
    assert not [e for e in events if e["event"] == "key created"]
    assert not [e for e in events if "approves" in e["event"]]


@settings(max_examples=300, deadline=None)
@given(st.integers(1_000_000_000, 2_500_000_000), st.integers(10, 30 * 365 * 86400))
def test_axis_ticks_are_round_dates_in_order(start: int, span: int) -> None:
    until = start + span
    got = tline.ticks(start, until)
    epochs = [t for t, _ in got]
    labels = [label for _, label in got]
    assert 2 <= len(got) <= 10, (span, labels)
    assert epochs == sorted(set(epochs)) and start <= epochs[0] and epochs[-1] <= until
    assert len(set(labels)) == len(labels)  # every label names its own date
