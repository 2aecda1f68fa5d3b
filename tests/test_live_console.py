"""What a person watching `ia-live` sees, rendered with rich's recording console from a real run's events
and messages: the start-up phases the stages report, progress through a file with an ETA, a short label
history, the gate bar's legend, and only prediction messages (heartbeats and end messages are ignored)."""
from __future__ import annotations


import pytest
from rich.console import Console as RichConsole

from conftest import movenet_path, read_messages
from realtime.console import (GATE_LEGEND, Console, LabelHistory, StartupStatus, format_plain, format_progress,
                              is_prediction, render_live, render_startup)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, random_checkpoint):
    """One real pipeline run (90 frames of a shared clip): every supervisor event, in order, and the
    published messages."""
    from conftest import shared_path
    from realtime.cli import build_parser, prepare
    from realtime.supervisor import run

    clip = shared_path("data", "videos", "stgcn_tai_chi.mp4")
    out = tmp_path_factory.mktemp("console") / "new" / "out.jsonl"   # a missing folder is made (README's runs/)
    args = build_parser().parse_args([
        "--video", str(clip), "--checkpoint", str(random_checkpoint), "--pose-model", str(movenet_path()),
        "--no-zmq", "--engine", "torch", "--max-frames", "90", "--dump-json", str(out), "--quiet"])
    settings = prepare(args)
    events: list[tuple[str, str, object]] = []
    result = run(settings, on_event=lambda kind, role, payload: events.append((kind, role, payload)))
    assert result.code == 0, result.message
    messages = read_messages(out)
    assert messages
    return events, messages, settings


def _text(renderable, width: int = 120) -> str:
    console = RichConsole(record=True, width=width, force_terminal=False, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_startup_reports_each_phase(real_run):
    events, _, _ = real_run
    recorder = RichConsole(record=True, width=120, force_terminal=False, color_system=None)
    status = StartupStatus(enabled=True, source="clip", console=recorder)
    for event in events:
        status.event(*event)
    text = recorder.export_text()
    order = [text.index(f"inference: {phase}") for phase in
             ("loading the model", "building the engine (export / compile)", "warming up", "ready")]
    assert order == sorted(order)
    assert "capture: ready" in text and "pose worker 0: ready" in text
    assert "capture: reading" not in text          # after `go` the start-up view is over


def test_startup_panel_mid_way(real_run):
    """The panel as it looks while the engine warms up: who is ready, who is still busy."""
    events, _, _ = real_run
    phases: dict[str, str] = {}
    for kind, role, payload in events:
        if kind == "phase":
            phases[role] = str(payload)
        elif kind == "ready":
            phases[role] = "ready"
        if phases.get("inference") == "warming up":
            break
    text = _text(render_startup(phases, "clip"))
    assert "ia-live: starting clip" in text
    assert "warming up ..." in text and "ready" in text


def test_live_view_shows_progress_history_and_legend(real_run):
    _, messages, settings = real_run
    history = LabelHistory()
    for message in messages:
        history.add(message)
    stats = {"in_fps": 30.0, "out_fps": 3.0, "frames_read": 60, "frame_count": 90, "source": settings.source.name}
    text = _text(render_live(stats, messages[-1], history))
    assert "frame 60 of 90 (67%), ETA 0:01" in text
    assert GATE_LEGEND in text
    assert "history" in text and messages[0]["action"] in text
    assert messages[-1]["topk"][0]["label"] in text


def test_progress_is_for_files_only():
    assert format_progress({"frames_read": 10, "frame_count": None}) is None
    assert format_progress({"frames_read": 90, "frame_count": 90, "in_fps": 30.0}) == "frame 90 of 90 (100%)"


def test_label_history_keeps_changes_only(real_run):
    _, messages, _ = real_run
    history = LabelHistory(size=3)
    labels = ["walk", "walk", "run", "run", "jump", "walk", "sit"]
    for i, label in enumerate(labels):
        history.add({**messages[0], "action": label, "timestamp": float(i)})
    assert [a for _, a in history.entries] == ["jump", "walk", "sit"]
    assert history.text() == "4.0s jump → 5.0s walk → 6.0s sit"


def test_console_ignores_heartbeat_and_end_messages(real_run, capsys):
    _, messages, _ = real_run
    prediction = messages[-1]
    heartbeat = {"type": "heartbeat", "seq": 7, "wall_time": 1.0}
    end = {"type": "end", "reason": "end_of_stream", "counts": {}}
    assert is_prediction(prediction) and not is_prediction(heartbeat) and not is_prediction(end)
    console = Console(enabled=True, live=False, interval_s=0.0)
    console.update({"frames_read": 90, "frame_count": 90}, prediction)
    console.update({"frames_read": 90, "frame_count": 90}, heartbeat)
    console.update({"frames_read": 90, "frame_count": 90}, end)
    console.close()
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"[ia-live] {GATE_LEGEND}"            # the legend, once, before the first line
    assert len([line for line in err if "gate G" in line]) == 1
    expected = format_plain({"frames_read": 90, "frame_count": 90}, prediction)
    assert err[1:] == [expected] * 3                      # the prediction stays on screen
    assert len(console.history.entries) == 1
