"""The command line: ``manyhands run``, ``status``, ``explain`` and ``bench``, over the public
API only.

Exit status: 0 when every item succeeded, 1 when some failed, 2 for bad arguments or input
(a target that does not import, an unreadable file, a malformed line, a journal of another
job), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import logging
import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import manyhands as mh

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A problem with what the command was given; the message says what and how to fix it."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _log_to_stderr()
    # SIGTERM ends a run as Ctrl-C does: workers stopped, the journal written and closed.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code: int = args.handler(args)
        return code
    except (UsageError, mh.ManyhandsError) as exc:
        print(f"manyhands {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"manyhands {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _log_to_stderr() -> None:
    """manyhands' own log lines (warnings; where a local Dask cluster runs) on stderr."""
    logger = logging.getLogger("manyhands")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


class _ItemFormatter(logging.Formatter):
    """``WARNING jobs: message``, with ``item 3:`` first for a record an item made."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        item = getattr(record, "manyhands_item", None)
        return text if item is None else f"item {item}: {text}"


def _records_to_stderr() -> None:
    """The function's log records (those made in workers too) on stderr, as logging's
    defaults would show them, with the item that made them; unless the target configured
    logging itself when it was imported."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ItemFormatter())
    root.addHandler(handler)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# -- run -------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    fn = load_target(args.target)
    _records_to_stderr()
    items = _inputs(args)
    journal = args.journal
    if (args.resume or args.retry_failed or args.rerun_changed) and journal is None:
        raise UsageError("--resume, --retry-failed and --rerun-changed need --journal FILE")
    if args.worker_output == "capture" and journal is None:
        raise UsageError(
            "--capture keeps what each item prints in the journal: add --journal FILE (or use "
            "--tag to see each line with its input's index)"
        )
    recalled = _journal_precheck(args)
    started = time.perf_counter()
    options: dict[str, Any] = {
        "backend": _backend(args),
        "workers": args.workers,
        "ordered": not args.unordered,
        "chunksize": args.chunksize,
        "timeout": args.timeout,
        "retries": args.retries,
        "errors": "return",  # --errors raise stops below, at the first failure delivered
        "progress": sys.stderr.isatty() if args.progress is None else args.progress,
        "journal": None
        if journal is None
        else mh.Journal(
            journal,
            retry_failed=args.retry_failed,
            mismatch="rerun" if args.rerun_changed else "raise",
        ),
        "indexed": True,
        "output": args.worker_output,
    }
    mapper = mh.istarmap if args.star else mh.imap
    done = 0
    failures: dict[str, int] = {}
    with _open_output(args.output) as out, _prints_to_stderr(out):
        results = mapper(fn, items, **options)
        try:
            flushed = time.monotonic()
            for index, result in results:
                if isinstance(result, mh.Failure):
                    failures[result.kind] = failures.get(result.kind, 0) + 1
                    out.write(_error_line(index, result))
                    if args.errors == "raise":
                        break
                else:
                    done += 1
                    out.write(_result_line(index, result))
                if time.monotonic() - flushed > 0.5:  # someone may be watching the file
                    out.flush()
                    flushed = time.monotonic()
        finally:
            results.close()  # type: ignore[attr-defined]
    failed = sum(failures.values())
    kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(failures.items()))
    summary = f"{done + failed} items: {done} done, {failed} failed"
    summary += f" ({kinds})" if failed else ""
    if recalled:
        summary += f"; {recalled} of them from journal {journal}"
    if failed and args.errors == "raise":
        summary += "; stopped at the first failure (--errors raise)"
    print(f"manyhands run: {summary}, in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _backend(args: argparse.Namespace) -> str | mh.Dask:
    """``--backend`` with ``--address``: a Dask cluster there."""
    if args.address is None:
        return str(args.backend)
    if args.backend != "dask":
        raise UsageError(
            f"--address {args.address} says which Dask cluster to run on, and applies only to "
            f"--backend dask (got --backend {args.backend}): add --backend dask"
        )
    return mh.Dask(address=args.address)


def _journal_precheck(args: argparse.Namespace) -> int:
    """Refuse to reuse a journal by accident; return how many outcomes it will give back."""
    path = args.journal
    if path is None or not os.path.exists(path):
        return 0
    status = mh.journal_status(path)
    held = status.done + status.failed
    if held and not (args.resume or args.retry_failed or args.rerun_changed):
        raise UsageError(
            f"journal {path} already holds {held} finished items ({status.done} done, "
            f"{status.failed} failed): add --resume to skip them (and --retry-failed to run "
            "the failed ones again), or delete the file to start over"
        )
    return status.done + (0 if args.retry_failed else status.failed)


def _result_line(index: int, result: Any) -> str:
    return json.dumps({"index": index, "result": result}, default=_jsonable) + "\n"


def _error_line(index: int, failure: mh.Failure) -> str:
    error = {
        "kind": failure.kind,
        "type": failure.error_type,
        "message": failure.message,
        "exitcode": failure.exitcode,
        "signal": failure.signal,
        "attempts": failure.attempts,
    }
    if failure.output:  # the last lines it printed
        error["output"] = failure.output
    return json.dumps({"index": index, "error": error}, default=_jsonable) + "\n"


def _jsonable(value: Any) -> Any:
    """What JSON cannot represent itself: sets as lists, dataclasses as objects, else repr."""
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return tolist()
    return repr(value)


def _prints_to_stderr(out: IO[str]) -> contextlib.AbstractContextManager[object]:
    """With the results on stdout, what the function prints goes to stderr: the results
    stay one JSON line each."""
    if out is sys.stdout:
        return contextlib.redirect_stdout(sys.stderr)
    return contextlib.nullcontext()


def _open_output(path: str | None) -> contextlib.AbstractContextManager[IO[str]]:
    if path is None or path == "-":
        return contextlib.nullcontext(sys.stdout)  # left open; flushed at exit
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write --output {path}: {exc.strerror}") from None


# -- inputs ----------------------------------------------------------------------------------


def _inputs(args: argparse.Namespace) -> Iterable[Any]:
    if args.star and not args.jsonl:
        raise UsageError("--star needs --jsonl: each line a JSON list of the function's arguments")
    if args.range is not None:
        if args.input is not None:
            raise UsageError("give --input FILE or --range N, not both")
        if args.range < 0:
            raise UsageError(f"--range must be >= 0, got {args.range}")
        return range(args.range)
    if args.input is None:
        raise UsageError("no inputs: give --input FILE (- for standard input) or --range N")
    if args.input == "-":
        return _parse(enumerate(sys.stdin, 1), args, "standard input")
    if not _regular_file(args.input):  # a pipe (bash's <(...)): it can be read only once
        return _Once(args.input, args)
    return _FileInput(args.input, args)


def _regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True  # _FileInput's read says what is wrong with it


class _Once:
    """The lines of a pipe or device as items: read once, lazily, as standard input is."""

    def __init__(self, path: str, args: argparse.Namespace) -> None:
        self._path = path
        self._args = args

    def __iter__(self) -> Iterator[Any]:
        return _read(self._path, self._args)


class _FileInput:
    """The lines of a file as items: checked and counted first (so that a malformed line stops
    the run before any work, and progress knows the total), then read again lazily."""

    def __init__(self, path: str, args: argparse.Namespace) -> None:
        self._path = path
        self._args = args
        self._count = sum(1 for _ in self._items())

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Any]:
        return self._items()

    def _items(self) -> Iterator[Any]:
        return _read(self._path, self._args)


def _read(path: str, args: argparse.Namespace) -> Iterator[Any]:
    """The items of the ``--input`` file ``path``, read lazily."""
    try:
        with open(path, encoding="utf-8", newline="") as lines:
            yield from _parse(enumerate(lines, 1), args, path)
    except OSError as exc:
        raise UsageError(f"cannot read --input {path}: {exc.strerror}") from None


def _parse(lines: Iterable[tuple[int, str]], args: argparse.Namespace, name: str) -> Iterator[Any]:
    try:
        for number, raw in lines:
            line = raw[:-1] if raw.endswith("\n") else raw
            line = line[:-1] if line.endswith("\r") else line
            if not args.jsonl:
                yield line
                continue
            if not line.strip():
                continue  # JSON lines: blank lines carry no item
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise UsageError(
                    f"{name}, line {number}: not valid JSON ({exc}): {line[:80]!r}"
                ) from None
            if args.star and not isinstance(value, list):
                raise UsageError(
                    f"{name}, line {number}: --star needs a JSON list of arguments, got "
                    f"{line[:80]!r}"
                )
            yield value
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


# -- loading the function --------------------------------------------------------------------


def load_target(target: str) -> Callable[..., Any]:
    """``module:function`` or ``path/to/file.py:function`` (a dotted name after the colon)."""
    where, colon, name = target.rpartition(":")
    if not colon or not where or not name:
        raise UsageError(
            f"TARGET must be module:function or path/to/file.py:function, got {target!r}"
        )
    if where.endswith(".py") or "/" in where or os.sep in where:
        module = _import_file(Path(where))
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` does: modules beside you import
        module = _import(where, hint=f"run from the folder that holds {where}.py, or give its path")
    value: Any = module
    for part in name.split("."):
        if not hasattr(value, part):
            available = sorted(
                n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
            )
            raise UsageError(
                f"{where} has no {name!r}; its functions: {', '.join(available) or 'none'}"
            )
        value = getattr(value, part)
    if not callable(value):
        raise UsageError(f"{target} is a {type(value).__name__}, not a function")
    fn: Callable[..., Any] = value
    return fn


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise UsageError(f"no file {str(path)!r} (from TARGET)")
    # Imported by name from its folder, so that worker processes import it the same way.
    sys.path.insert(0, str(path.resolve().parent))
    module = _import(path.stem, hint="")
    loaded = getattr(module, "__file__", None)
    if loaded is None or not os.path.samefile(loaded, path):
        raise UsageError(
            f"{path} is named like the module {path.stem!r} that Python already knows "
            f"({loaded or 'built in'}); rename the file"
        )
    return module


def _import(name: str, *, hint: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            message = f"cannot import {name!r}: no such module; {hint}".rstrip("; ")
            raise UsageError(message) from None
        raise UsageError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise UsageError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from exc


# -- status and explain ----------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    status = mh.journal_status(args.journal, limit=args.limit)
    if args.json:
        record = dataclasses.asdict(status)
        record.update(pending=status.pending, throughput=status.throughput)
        print(json.dumps(record, indent=2))
    else:
        print(status)
    return EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    fn = load_target(args.target)
    items = _inputs(args)
    probe = fn
    if args.star:

        def probe(arguments: Any) -> Any:  # explain probes here, in this process: no pickling
            return fn(*arguments)

    decision = mh.explain(
        probe, items, backend=args.backend, workers=args.workers, timeout=args.timeout
    )
    if args.json:
        record = {
            "backend": decision.backend,
            "workers": decision.workers,
            "chunksize": decision.chunksize,
            "reasons": list(decision.reasons),
            "evidence": dict(decision.evidence),
            "revised": decision.revised,
        }
        print(json.dumps(record, indent=2))
    else:
        print(decision)
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    # No journal to close here; and multiprocessing.Pool's forked workers would inherit the
    # handler, so that its terminate() (a SIGTERM) printed a KeyboardInterrupt in each.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    fn = load_target(args.target)
    items = _inputs(args)
    if args.star:
        fn = _starred(fn)
    strategies = None
    if args.strategies is not None:
        strategies = [name.strip() for name in args.strategies.split(",") if name.strip()]
    if args.chart is not None:
        _check_chart_path(args.chart)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    with _prints_to_stderr(sys.stdout):  # stdout holds the table or the JSON alone
        comparison = mh.bench(
            fn,
            items,
            sample=args.sample,
            strategies=strategies,
            budget=args.budget,
            progress=progress,
            repeats=args.repeats,
        )
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        print(comparison)
    if args.chart is not None:
        comparison.plot(args.chart)
        print(f"manyhands bench: chart written to {args.chart}", file=sys.stderr)
    return EXIT_OK


def _starred(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn(*arguments)`` for each item, an ``async def`` one if ``fn`` is one (bench runs
    coroutine functions on event loops only, in this process)."""
    import inspect

    if not inspect.iscoroutinefunction(fn):
        return _Starred(fn)

    async def starred(arguments: Any) -> Any:
        return await fn(*arguments)

    starred.__name__ = starred.__qualname__ = getattr(fn, "__name__", "fn")
    return starred


class _Starred:
    """``fn(*arguments)`` for each item: ``--star``, as a module-level class so that
    ``multiprocessing.Pool`` can pickle it as well as manyhands can."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "fn")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)

    def __call__(self, arguments: Any) -> Any:
        return self.fn(*arguments)


def _check_chart_path(path: str) -> None:
    """Before minutes of measuring: a chart that cannot be drawn or written fails now."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            "--chart draws with matplotlib, which is not installed here: "
            "pip install 'manyhands[plot]'"
        ) from None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--chart {path}: no folder {folder}")


# -- the parser ------------------------------------------------------------------------------

_RUN_EXAMPLES = """\
examples:
  manyhands run tasks:fetch --input urls.txt --output pages.jsonl --journal crawl.db
  manyhands run tasks:fetch --input urls.txt --output pages.jsonl --journal crawl.db --resume
  seq 100 | manyhands run sim.py:simulate --input - --jsonl --timeout 60 --retries 2
  manyhands run tasks:add --input pairs.jsonl --jsonl --star   # each line: [1, 2]
  manyhands run sim.py:simulate --range 1000 --backend dask --address tcp://10.0.0.5:8786
  manyhands run sim.py:simulate --range 8 --tag     # stderr: "3<TAB>what item 3 printed"

Each output line is {"index": N, "result": ...} or {"index": N, "error": {"kind", "type",
"message", "exitcode", "signal", "attempts", "output"}}, in input order unless --unordered;
"output" (when the item printed anything) holds its last lines. What the function prints and
logs goes to stderr when the results go to stdout. The exit status is 0 when every item
succeeded, 1 when some failed, 2 for bad arguments or input.
"""

_STATUS_EXAMPLES = """\
examples:
  manyhands status crawl.db            # counts, runs, throughput, slowest items, failures
  manyhands status crawl.db --json     # the same as JSON
"""

_BENCH_EXAMPLES = """\
examples:
  manyhands bench tasks:fetch --input urls.txt --chart bench.png
  manyhands bench sim.py:simulate --range 200 --sample 40 --json
  manyhands bench tasks:fetch --input urls.txt --strategies threads,auto --budget 5

It runs the function many times on each sampled input (once per run of each strategy):
mind its side effects. Strategies: loop (always), auto, threads (a sweep of widths) or
threads:N, processes or processes:N, lecture (thread-per-item, ThreadPoolExecutor,
multiprocessing.Pool); asyncio and asyncio.gather for async def functions.
"""

_EXPLAIN_EXAMPLES = """\
examples:
  manyhands explain tasks:fetch --input urls.txt
  manyhands explain sim.py:simulate --range 100 --json
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="manyhands",
        description="Run a Python function over many inputs, in parallel, safely.",
        epilog="example:\n  manyhands run tasks:fetch --input urls.txt --journal crawl.db\n"
        "Run 'manyhands COMMAND --help' for each command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"manyhands {mh.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run module:function over inputs, JSON lines out",
        description="Run a function over every input, in parallel; write one JSON line each.",
        epilog=_RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _target_and_inputs(run)
    run.add_argument("--output", "-o", metavar="FILE", help="where to write (default: stdout)")
    run.add_argument("--unordered", action="store_true", help="write results as they finish")
    _engine_options(run)
    run.add_argument(
        "--address",
        metavar="URL",
        help="with --backend dask: the scheduler, e.g. tcp://10.0.0.5:8786 (default: a local "
        "cluster started for the run)",
    )
    run.add_argument("--chunksize", type=int, help="items sent together (default: measured)")
    run.add_argument("--retries", type=int, default=0, help="more tries for a failed item")
    run.add_argument(
        "--errors",
        choices=("return", "raise"),
        default="return",
        help="return: every item runs, failures are written as errors (default); raise: stop "
        "at the first failure",
    )
    run.add_argument("--journal", metavar="FILE", help="record finished items in this SQLite file")
    run.add_argument("--resume", action="store_true", help="skip what --journal holds")
    run.add_argument(
        "--retry-failed", action="store_true", help="resume, and run the failed items again"
    )
    run.add_argument(
        "--rerun-changed",
        action="store_true",
        help="resume even if the journal records another function or other inputs: run those again",
    )
    _progress_options(run)
    said = run.add_mutually_exclusive_group()
    said.add_argument(
        "--tag",
        dest="worker_output",
        action="store_const",
        const="tag",
        default="forward",
        help="prefix each line the function prints with its input's index and a tab (what it "
        "prints goes to stderr when the results go to stdout)",
    )
    said.add_argument(
        "--capture",
        dest="worker_output",
        action="store_const",
        const="capture",
        help="keep what each item prints in the --journal, instead of printing it",
    )
    said.add_argument(
        "--raw-output",
        dest="worker_output",
        action="store_const",
        const="inherit",
        help="let worker processes write straight to this terminal (fastest; lines may mix)",
    )
    run.set_defaults(handler=_run)

    status = commands.add_parser(
        "status",
        help="what a journal holds",
        description="Show what a journal holds: done, failed and pending items, runs, "
        "throughput, the slowest items and the failures.",
        epilog=_STATUS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("journal", metavar="JOURNAL", help="the journal file")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument("--limit", type=int, default=10, help="slowest items and failures shown")
    status.set_defaults(handler=_status)

    explain = commands.add_parser(
        "explain",
        help="where auto would run the function, and why",
        description="Measure the first input as backend='auto' does; say where the job would "
        "run and why.",
        epilog=_EXPLAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _target_and_inputs(explain)
    _engine_options(explain)
    explain.add_argument("--json", action="store_true", help="print the decision as JSON")
    explain.set_defaults(handler=_explain)

    bench = commands.add_parser(
        "bench",
        help="time the function every way (loop, threads, processes, auto...) and compare",
        description="Run the function over a sample of the inputs as a loop, on threads of "
        "several widths, on processes, with auto and with the standard library's forms; "
        "print which is fastest here and why.",
        epilog=_BENCH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _target_and_inputs(bench)
    bench.add_argument(
        "--sample", type=int, metavar="N", help="run the first N inputs (default: ~3 s of loop)"
    )
    bench.add_argument(
        "--budget",
        type=float,
        metavar="S",
        help="seconds a run may take before it is stopped (default: 3x the best so far)",
    )
    bench.add_argument("--repeats", type=int, default=3, help="runs of each strategy (default: 3)")
    bench.add_argument(
        "--strategies", metavar="A,B", help="which to run, comma-separated (default: all)"
    )
    bench.add_argument("--chart", metavar="FILE.png", help="write the chart to this file")
    bench.add_argument("--json", action="store_true", help="print the numbers as JSON")
    _progress_options(bench)
    bench.set_defaults(handler=_bench)
    return parser


def _target_and_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="TARGET", help="module:function or path/to/file.py:function"
    )
    parser.add_argument("--input", "-i", metavar="FILE", help="one input per line; - for stdin")
    parser.add_argument("--range", type=int, metavar="N", help="the inputs 0, 1, ..., N-1")
    parser.add_argument("--jsonl", action="store_true", help="parse each line as JSON")
    parser.add_argument(
        "--star", action="store_true", help="with --jsonl: each line a list of arguments"
    )


def _progress_options(parser: argparse.ArgumentParser) -> None:
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        default="auto",
        help="auto (the default: measured), serial, thread, process, asyncio or dask",
    )
    parser.add_argument("--workers", type=int, help="how many at once (default: chosen)")
    parser.add_argument("--timeout", type=float, help="seconds an item may run")
