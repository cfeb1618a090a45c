import io
import logging
import subprocess
import sys

from kafka.errors import Cancelled, KafkaConnectionError

from jobs.console import DriverMessagesFilter, KafkaClientInternals, Progress, pass_filtered
from tests.clock import ManualClock

RAY_NOISE = (
    b"[2026-12-01 09:07:46,925 E 2858 3415] core_worker.cc:2465: Actor with class name: "
    b"'MapWorker(MapBatches(ParseEvents))' and ID: '410f74ab' has constructor arguments in the "
    b"object store and max_restarts > 0. If the arguments in the object store go out of scope "
    b"or are lost, the actor restart will fail.\n"
)
RAY_ERROR = b"[2026-12-01 09:07:46,925 E 2858 3415] core_worker.cc:801: Failed to connect to GCS\n"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_line_redrawn_in_place() -> None:
    clock, out = ManualClock(), Terminal()
    progress = Progress("searchable", 200, out, clock=clock)
    for done in (0, 50, 200):
        clock.now += 1
        progress.update(done)
    progress.finish(200)
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    frames = text.rstrip("\n").split("\r")[1:]
    assert frames[1].rstrip() == f"  searchable [{'#' * 8}{'-' * 22}] 50/200  25%  2s"
    assert frames[-1].rstrip() == f"  searchable [{'#' * 30}] 200/200 100%  3s"


def test_a_shorter_line_covers_the_longer_one_before_it() -> None:
    out = Terminal()
    progress = Progress("done", None, out, clock=ManualClock())
    progress._show(123456)
    progress._show(7)
    last, previous = out.getvalue().split("\r")[-1], out.getvalue().split("\r")[-2]
    assert len(last) == len(previous)


def test_a_terminal_is_redrawn_at_most_ten_times_a_second() -> None:
    clock, out = ManualClock(), Terminal()
    progress = Progress("searchable", 10, out, clock=clock)
    for done in range(10):
        clock.now += 0.01
        progress.update(done)
    assert out.getvalue().count("\r") == 1


def test_a_log_or_pipe_gets_a_plain_line_every_few_seconds() -> None:
    clock, out = ManualClock(), io.StringIO()
    progress = Progress("searchable", 2000, out, every_s=5, clock=clock)
    for _ in range(12):  # 12 polls, one a second
        progress.update(640)
        clock.now += 1
    progress.finish(2000)
    lines = out.getvalue().splitlines()
    assert lines == [
        "  searchable: 640/2000 (32%)  0s",
        "  searchable: 640/2000 (32%)  5s",
        "  searchable: 640/2000 (32%)  10s",
    ]
    assert "\r" not in out.getvalue()


def test_without_a_total_it_counts() -> None:
    progress = Progress("embedded", None, io.StringIO(), clock=ManualClock())
    assert progress.render(1234) == "  embedded: 1234  0s"


def test_native_noise_is_dropped_and_everything_else_passes() -> None:
    sink = io.BytesIO()
    pass_filtered(io.BytesIO(b"first\n" + RAY_NOISE + RAY_ERROR + b"last, no newline"), sink)
    assert sink.getvalue() == b"first\n" + RAY_ERROR + b"last, no newline"


def test_the_filter_takes_fd_2_and_gives_it_back() -> None:
    # In a process of its own: what native code writes to fd 2, and a Python traceback.
    script = (
        "import os, sys\n"
        "from jobs.console import NativeStderrFilter\n"
        "with NativeStderrFilter():\n"
        f"    os.write(2, {RAY_NOISE!r})\n"
        f"    os.write(2, {RAY_ERROR!r})\n"
        "    print('from python', file=sys.stderr)\n"
        "os.write(2, b'after\\n')\n"
        "with NativeStderrFilter(enabled=False):\n"
        f"    os.write(2, {RAY_NOISE!r})\n"
        "raise SystemExit('a real error')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert result.stderr == (
        RAY_ERROR + b"from python\n" + b"after\n" + RAY_NOISE + b"a real error\n"
    )


def _record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_kafka_reports_about_its_own_client_are_dropped_and_faults_kept() -> None:
    keep = KafkaClientInternals().filter
    assert not keep(
        _record("kafka.cluster", logging.ERROR, "Metadata refresh: failed %s", Cancelled())
    )
    assert keep(
        _record(
            "kafka.cluster", logging.ERROR, "Metadata refresh: failed %s", KafkaConnectionError()
        )
    )
    slow = "Task <poll> ran for 0.250s (>0.100s threshold). It is blocking the event loop -- ..."
    assert not keep(_record("kafka.net.selector", logging.WARNING, slow))
    assert keep(_record("kafka.net.selector", logging.WARNING, "Task %s left RUNNING", "t"))


def test_driver_messages_filter_drops_only_the_worker_pool_notice() -> None:
    sink = io.StringIO()
    out = DriverMessagesFilter(sink)
    print("pinstream is up at http://127.0.0.1:8000", file=out)
    print(
        "\x1b[33m(raylet)\x1b[0m WARNING: 8 PYTHON worker processes have been started on node: "
        "abc with address: 10.0.0.1, which is 4x the maximum expected startup concurrency (2).",
        file=out,
    )
    print("\x1b[33m(raylet)\x1b[0m A worker died or was killed while executing a task", file=out)
    out.write("\r  demo [####------] 40/100")
    out.flush()
    assert sink.getvalue() == (
        "pinstream is up at http://127.0.0.1:8000\n"
        "\x1b[33m(raylet)\x1b[0m A worker died or was killed while executing a task\n"
        "\r  demo [####------] 40/100"
    )


def _failed_read(error: BaseException) -> logging.LogRecord:
    """kafka-python's report of a receive that raised, with its exception, as it logs it."""
    record = _record("kafka.net.transport", logging.ERROR, "%s: Error receiving network data", "t")
    record.exc_info = (type(error), error, None)
    return record


def test_a_read_on_a_transport_the_client_closed_is_dropped_and_real_read_errors_kept() -> None:
    keep = KafkaClientInternals().filter
    closed = AttributeError("'NoneType' object has no attribute 'recv'")
    assert not keep(_failed_read(closed))
    assert keep(_failed_read(ConnectionResetError(104, "Connection reset by peer")))
    assert keep(_record("kafka.net.transport", logging.ERROR, "%s: socket disconnected", "t"))
