"""The command line, run as a real subprocess: run, status, explain, bad input, kill -9 + resume.

The job's function lives in a module written into the test's folder; each call appends a line
to a log there, so "computed again" is counted, not assumed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest

TASKS = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    HERE = Path(__file__).parent

    def work(x):
        x = int(x)
        with open(HERE / "calls.log", "a") as log:
            log.write(f"{x} {os.getpid()}\\n")
        if x >= int(os.environ.get("BLOCK_FROM", "1000000000")):
            while not (HERE / "open").exists():  # held until the test opens the gate
                time.sleep(0.005)
        if x == int(os.environ.get("FAIL_AT", "-1")):
            raise ValueError(f"bad input {x}")
        return x * 2

    def add(a, b):
        return a + b

    async def later(a, b):
        return a + b

    def crash(x):
        if x == 2:
            os._exit(3)
        return x

    def chatty(x):
        import logging
        print(f"hello from {x}")
        logging.getLogger("tasks").warning("careful with %s", x)
        if int(x) == 1:
            raise ValueError("one")
        return x
    """
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "tasks.py").write_text(TASKS)
    return tmp_path


def manyhands(
    folder: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "manyhands", *args],
        cwd=folder,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def calls(folder: Path) -> Counter[int]:
    log = folder / "calls.log"
    text = log.read_text() if log.exists() else ""
    return Counter(int(line.split()[0]) for line in text.splitlines())


def test_run_writes_one_json_line_per_input_in_order(folder: Path) -> None:
    (folder / "in.txt").write_text("".join(f"{x}\n" for x in range(20)))
    out = manyhands(
        folder, "run", "tasks:work", "--input", "in.txt", "--output", "out.jsonl",
        "--backend", "process", "--workers", "2",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert lines(folder / "out.jsonl") == [{"index": x, "result": 2 * x} for x in range(20)]
    assert out.stderr.strip().splitlines()[-1].startswith("manyhands run: 20 items: 20 done")
    assert out.stdout == ""


def test_failures_are_error_lines_and_the_exit_status_says_so(folder: Path) -> None:
    out = manyhands(
        folder, "run", "tasks:work", "--range", "6", "--backend", "thread",
        env={"FAIL_AT": "4"},
    )  # fmt: skip
    assert out.returncode == 1
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["index"] for r in records] == list(range(6))
    error = records[4]["error"]
    assert (error["kind"], error["type"], error["message"]) == (
        "error",
        "ValueError",
        "bad input 4",
    )
    assert "5 done, 1 failed (1 error)" in out.stderr

    stopped = manyhands(
        folder, "run", "tasks:work", "--range", "6", "--backend", "serial", "--errors", "raise",
        env={"FAIL_AT": "2"},
    )  # fmt: skip
    assert stopped.returncode == 1
    assert [json.loads(line)["index"] for line in stopped.stdout.splitlines()] == [0, 1, 2]
    assert "stopped at the first failure" in stopped.stderr


def test_a_crashing_item_reports_its_exit_code(folder: Path) -> None:
    out = manyhands(folder, "run", "tasks:crash", "--range", "4", "--backend", "process")
    assert out.returncode == 1
    error = json.loads(out.stdout.splitlines()[2])["error"]
    assert (error["kind"], error["exitcode"]) == ("crash", 3)


def test_stdin_jsonl_star_and_a_file_target(folder: Path) -> None:
    out = manyhands(
        folder, "run", f"{folder / 'tasks.py'}:add", "--input", "-", "--jsonl", "--star",
        stdin='[1, 2]\n\n["a", "b"]\n',
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert lines_of(out.stdout) == [{"index": 0, "result": 3}, {"index": 1, "result": "ab"}]


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_unordered_output_holds_every_index_once(folder: Path) -> None:
    out = manyhands(
        folder, "run", "tasks:work", "--range", "200", "--unordered", "--backend", "thread"
    )
    assert out.returncode == 0, out.stderr
    records = lines_of(out.stdout)
    assert sorted(r["index"] for r in records) == list(range(200))
    assert all(r["result"] == 2 * r["index"] for r in records)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["run", "nosuchmodule:work", "--range", "3"], None, "cannot import 'nosuchmodule'"),
        (["run", "tasks:nosuch", "--range", "3"], None, "tasks has no 'nosuch'; its functions"),
        (["run", "tasks", "--range", "3"], None, "TARGET must be module:function"),
        (["run", "missing.py:work", "--range", "3"], None, "no file 'missing.py'"),
        (["run", "tasks:work", "--input", "absent.txt"], None, "cannot read --input absent.txt"),
        (["run", "tasks:work"], None, "no inputs: give --input FILE"),
        (["run", "tasks:add", "--input", "-", "--jsonl"], '[1]\n{"a": \n', "line 2: not valid"),
        (["run", "tasks:add", "--input", "-", "--jsonl", "--star"], "3\n", "line 1: --star"),
        (["run", "tasks:add", "--input", "-", "--star"], "3\n", "--star needs --jsonl"),
        (["run", "tasks:work", "--range", "3", "--workers", "0"], None, "workers must be >= 1"),
        (["run", "tasks:work", "--range", "3", "--backend", "gpu"], None, "'gpu' is not a backend"),
        (["run", "tasks:work", "--range", "3", "--resume"], None, "need --journal FILE"),
        (["status", "absent.db"], None, "there is no journal at 'absent.db'"),
    ],
)
def test_bad_input_gets_a_clear_message_and_exit_status_2(
    folder: Path, args: list[str], stdin: str | None, message: str
) -> None:
    out = manyhands(folder, *args, stdin=stdin)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_a_malformed_line_in_a_file_stops_the_run_before_any_work(folder: Path) -> None:
    (folder / "in.jsonl").write_text("1\n2\n[oops\n4\n")
    out = manyhands(folder, "run", "tasks:work", "--input", "in.jsonl", "--jsonl")
    assert out.returncode == 2
    assert "in.jsonl, line 3: not valid JSON" in out.stderr
    assert calls(folder) == Counter()


def test_a_journal_of_another_job_is_refused_and_left_intact(folder: Path) -> None:
    first = manyhands(folder, "run", "tasks:work", "--range", "5", "--journal", "j.db")
    assert first.returncode == 0, first.stderr
    before = (folder / "j.db").read_bytes()

    other = manyhands(
        folder, "run", "tasks:add", "--input", "-", "--jsonl", "--star", "--journal", "j.db",
        "--resume", stdin="[1, 2]\n",
    )  # fmt: skip
    assert other.returncode == 2
    assert "records map of tasks:work, not starmap of tasks:add" in other.stderr
    again = manyhands(folder, "run", "tasks:work", "--range", "5", "--journal", "j.db")
    assert again.returncode == 2
    assert "already holds 5 finished items" in again.stderr
    assert "--resume" in again.stderr
    assert (folder / "j.db").read_bytes() == before
    assert calls(folder) == Counter(range(5))


def test_status_reports_counts_runs_and_failures(folder: Path) -> None:
    out = manyhands(
        folder, "run", "tasks:work", "--range", "10", "--journal", "j.db", "--backend",
        "thread", "--retries", "1", env={"FAIL_AT": "7"},
    )  # fmt: skip
    assert out.returncode == 1
    text = manyhands(folder, "status", "j.db")
    assert text.returncode == 0, text.stderr
    assert "map of tasks:work" in text.stdout
    assert "10 items: 9 done, 1 failed, 0 pending" in text.stdout
    assert "1 run, the last one finished" in text.stdout
    assert "items/s" in text.stdout
    assert "ValueError: bad input 7  (2 attempts; input 7)" in text.stdout

    record = json.loads(manyhands(folder, "status", "j.db", "--json").stdout)
    assert (record["done"], record["failed"], record["pending"]) == (9, 1, 0)
    assert record["failures"][0]["index"] == 7
    assert len(record["slowest"]) == 9


def test_explain_says_where_and_why(folder: Path) -> None:
    out = manyhands(folder, "explain", "tasks:work", "--range", "50")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] in {"serial", "thread", "process"}
    assert "\n  - " in out.stdout  # the reasons, as sentences
    record = json.loads(
        manyhands(folder, "explain", "tasks:work", "--range", "50", "--json").stdout
    )
    assert record["backend"] == out.stdout.split()[0]
    assert record["evidence"]["items"] == 50
    star = manyhands(folder, "explain", "tasks:add", "--input", "-", "--jsonl", "--star",
                     stdin="[1, 2]\n[3, 4]\n")  # fmt: skip
    assert star.returncode == 0, star.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="a named pipe (FIFO) is POSIX")
def test_an_input_that_is_a_pipe_is_read_once(folder: Path) -> None:
    # bash's `--input <(seq 5)` is a pipe: a file read twice (checked, then run) would
    # give nothing the second time.
    fifo = folder / "in.fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(
        [sys.executable, "-c", f"open({str(fifo)!r}, 'w').write('1\\n2\\n3\\n')"]
    )
    try:
        out = manyhands(folder, "run", "tasks:work", "--input", str(fifo), "--jsonl")
    finally:
        writer.wait(timeout=60)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line) for line in out.stdout.splitlines()] == [
        {"index": i, "result": 2 * x} for i, x in enumerate([1, 2, 3])
    ]


def test_bench_prints_the_comparison_writes_the_chart_and_the_json(folder: Path) -> None:
    pytest.importorskip("matplotlib")
    out = manyhands(
        folder, "bench", "tasks:add", "--input", "-", "--jsonl", "--star", "--repeats", "1",
        "--strategies", "threads:2,multiprocessing.Pool", "--chart", "bench.png", "--json",
        stdin="".join(f"[{x}, {x}]\n" for x in range(6)),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)  # stdout holds the JSON alone
    assert [s["name"] for s in record["strategies"]] == [
        "loop",
        "threads:2",
        "multiprocessing.Pool",
    ]
    assert record["sample"] == 6
    # --star's wrapper is a module-level class: the standard library's pickle takes it too
    assert record["strategies"][2]["error"] is None
    assert (folder / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "chart written to bench.png" in out.stderr
    table = manyhands(folder, "bench", "tasks:work", "--range", "4", "--sample", "4",
                      "--repeats", "1", "--strategies", "auto")  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("manyhands.bench: work on 4 items, 1 run of each strategy")
    assert "fastest: " in table.stdout


def test_bench_star_awaits_an_async_target(folder: Path) -> None:
    out = manyhands(folder, "bench", "tasks:later", "--input", "-", "--jsonl", "--star",
                    "--repeats", "1", "--json", stdin="[1, 2]\n[3, 4]\n")  # fmt: skip
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert [s["name"] for s in record["strategies"]] == [
        "loop", "auto", "asyncio", "asyncio.gather"
    ]  # fmt: skip
    assert all(s["error"] is None for s in record["strategies"])
    assert "never awaited" not in out.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--range", "0"], "items is empty"),
        (["--range", "5", "--sample", "0"], "sample must be >= 1"),
        (["--range", "5", "--strategies", "threads,gpu"], "unknown strategy 'gpu'"),
        (["--range", "5", "--chart", "no/such/folder/c.png"], "--chart no/such/folder/c.png"),
    ],
)
def test_bench_refuses_bad_input(folder: Path, arguments: list[str], message: str) -> None:
    out = manyhands(folder, "bench", "tasks:work", *arguments)
    assert out.returncode == 2
    assert message in out.stderr


@pytest.mark.parametrize("command", [[], ["run"], ["status"], ["explain"], ["bench"]])
def test_every_command_has_help_with_an_example(folder: Path, command: list[str]) -> None:
    out = manyhands(folder, *command, "--help")
    assert out.returncode == 0
    assert "example" in out.stdout
    assert "manyhands" in out.stdout


def test_the_console_script_is_installed(folder: Path) -> None:
    script = Path(sys.executable).parent / "manyhands"
    out = subprocess.run(
        [str(script), "run", "tasks:work", "--range", "3"],
        cwd=folder, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 3


# -- kill -9, then --resume -------------------------------------------------------------------


def journal_done(path: Path) -> set[int]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return {row[0] for row in conn.execute("SELECT idx FROM items WHERE status='done'")}
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return set()


def start_run(folder: Path, total: int, *extra: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "manyhands", "run", "tasks:work", "--range", str(total),
            "--backend", "process", "--workers", "2", "--chunksize", "1", "--journal", "j.db",
            "--output", "out.jsonl", *extra,
        ],
        cwd=folder, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def wait_for(condition: Any, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.01)  # polling the files the run writes: they are the synchronisation


def kill_and_reap(folder: Path, proc: subprocess.Popen[str]) -> None:
    """SIGKILL the run; its workers, orphaned, must exit by themselves."""
    workers = {int(line.split()[1]) for line in (folder / "calls.log").read_text().splitlines()}
    proc.kill()
    proc.communicate(timeout=60)
    alive = [psutil.Process(pid) for pid in workers - {proc.pid} if psutil.pid_exists(pid)]
    _, left = psutil.wait_procs(alive, timeout=10)
    assert not left, left


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_then_resume_loses_nothing_and_recomputes_only_what_was_running(
    folder: Path,
) -> None:
    # Items from 12 on are held: when 0-11 are in the journal and 12 and 13 are running on
    # the two workers, the run is killed with SIGKILL, and resumed.
    proc = start_run(folder, 20, env={"BLOCK_FROM": "12"})

    def running() -> set[int]:
        return {x for x in calls(folder) if x >= 12}

    wait_for(lambda: journal_done(folder / "j.db") == set(range(12)) and len(running()) == 2,
             proc)  # fmt: skip
    in_flight = running()
    kill_and_reap(folder, proc)
    assert journal_done(folder / "j.db") == set(range(12))

    resumed = manyhands(folder, "run", "tasks:work", "--range", "20", "--backend", "process",
                        "--workers", "2", "--journal", "j.db", "--output", "out.jsonl",
                        "--resume")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "12 of them from journal j.db" in resumed.stderr
    assert lines(folder / "out.jsonl") == [{"index": x, "result": 2 * x} for x in range(20)]
    counts = calls(folder)
    assert all(counts[x] == 1 for x in range(12)), counts  # finished: never computed again
    assert all(counts[x] == 2 for x in in_flight), counts  # running at the kill: again
    assert all(counts[x] == 1 for x in set(range(12, 20)) - in_flight), counts
    status = manyhands(folder, "status", "j.db").stdout
    assert "20 items: 20 done, 0 failed, 0 pending" in status
    assert "2 runs, the last one finished" in status


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
@pytest.mark.parametrize("kill_after", [1, 17, 45])
def test_kill_9_at_any_moment_then_resume(folder: Path, kill_after: int) -> None:
    # Quick items; the run is killed once the journal holds ``kill_after`` of them, wherever
    # it then is. Every result the killed run wrote out must survive in the journal.
    total = 60
    proc = start_run(folder, total, env={})
    wait_for(lambda: len(journal_done(folder / "j.db")) >= kill_after, proc)
    kill_and_reap(folder, proc)
    written = {json.loads(line)["index"] for line in (folder / "out.jsonl").read_text().split(
        "\n")[:-1]}  # fmt: skip
    held = journal_done(folder / "j.db")
    started_before = set(calls(folder))
    assert written <= held  # a result the user saw is never lost
    resumed = manyhands(
        folder,
        "run",
        "tasks:work",
        "--range",
        str(total),
        "--backend",
        "process",
        "--journal",
        "j.db",
        "--output",
        "out.jsonl",
        "--resume",
    )
    assert resumed.returncode == 0, resumed.stderr
    assert lines(folder / "out.jsonl") == [{"index": x, "result": 2 * x} for x in range(total)]
    counts = calls(folder)
    recomputed = {x for x, n in counts.items() if n > 1}
    assert not recomputed & held  # recorded: never computed again
    assert recomputed <= started_before - held  # only what was under way at the kill
    assert all(n <= 2 for n in counts.values())


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sigterm_writes_the_journal_and_marks_the_run_stopped(folder: Path) -> None:
    proc = start_run(folder, 10, env={"BLOCK_FROM": "4"})
    wait_for(lambda: journal_done(folder / "j.db") == set(range(4)), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err
    with sqlite3.connect(folder / "j.db") as conn:
        assert conn.execute("SELECT state FROM runs").fetchall() == [("stopped",)]


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_what_the_function_prints_and_logs_goes_to_stderr_tagged(
    folder: Path, backend: str
) -> None:
    out = manyhands(folder, "run", "tasks:chatty", "--range", "3", "--backend", backend, "--tag")
    assert out.returncode == 1
    records = [json.loads(line) for line in out.stdout.splitlines()]  # only JSON on stdout
    assert [r.get("result") for r in records] == [0, None, 2]
    assert records[1]["error"]["output"] == "hello from 1\n"
    err = out.stderr.splitlines()
    assert sorted(line for line in err if "\thello" in line) == [
        f"{x}\thello from {x}" for x in range(3)
    ]
    assert sorted(line for line in err if "careful" in line) == [
        f"item {x}: WARNING tasks: careful with {x}" for x in range(3)
    ]


def test_capture_keeps_output_in_the_journal_and_needs_one(folder: Path) -> None:
    refused = manyhands(folder, "run", "tasks:chatty", "--range", "3", "--capture")
    assert refused.returncode == 2
    assert "--capture keeps what each item prints" in refused.stderr
    out = manyhands(
        folder, "run", "tasks:chatty", "--range", "3", "--backend", "process", "--capture",
        "--journal", "run.db",
    )  # fmt: skip
    assert out.returncode == 1
    assert "hello from" not in out.stderr
    with sqlite3.connect(folder / "run.db") as conn:
        kept = dict(conn.execute("SELECT idx, output FROM items"))
    assert kept == {x: f"hello from {x}\n" for x in range(3)}
    status = manyhands(folder, "status", "run.db")
    assert "| hello from 1" in status.stdout


def test_raw_output_leaves_worker_processes_writing_to_the_terminal(folder: Path) -> None:
    out = manyhands(
        folder, "run", "tasks:chatty", "--range", "3", "--backend", "process", "--raw-output"
    )
    seen = f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    assert out.returncode == 1, seen
    assert sorted(line for line in out.stdout.splitlines() if line.startswith("hello")) == [
        f"hello from {x}" for x in range(3)
    ], seen  # straight to the descriptor the run inherited: stdout here
    errors = [json.loads(line) for line in out.stdout.splitlines() if '"error"' in line]
    assert "output" not in errors[0]["error"], seen  # nothing was kept
