"""Keywords that read fio results, and the logging of results into log.html."""

from __future__ import annotations

from pathlib import Path

from robot.api import logger
from robot.api.deco import keyword

from FioLibrary.context import LibraryContext
from nvmechaos.fio.html import result_chart_html, run_folder_html
from nvmechaos.fio.model import RESULT_EXPECTED, FioResult
from nvmechaos.fio.parser import parse_fio_file
from nvmechaos.report import result_table_html
from nvmechaos.units import require
from nvmechaos.verdicts.thresholds import measure_metric


class ResultLogger:
    """Writes a run's table, chart and links into the log."""

    def __init__(self, context: LibraryContext) -> None:
        self.ctx = context

    def link_run_dir(self, run_dir: Path) -> None:
        links = run_folder_html(run_dir, self.ctx.link)
        if links:
            self.ctx.html(links)

    def log_result(self, result: FioResult) -> None:
        self.ctx.html(result_table_html(result))
        if result.artifacts is None:
            return
        self.link_run_dir(result.artifacts.directory)
        chart = result_chart_html(result)
        if chart:
            self.ctx.html(chart)
        for message in result.messages:
            logger.info(f"fio said: {message}")


class ResultKeywords:
    """Read fio output into the result model and look at single figures."""

    def __init__(self, results: ResultLogger) -> None:
        self.results = results

    @keyword
    def parse_fio_output(self, path: str) -> FioResult:
        """Parse fio's JSON output (``json`` or ``json+``) stored in ``path`` and return the result.

        Text before or after the JSON object (``Starting 4 processes``, ``fio: connected to NBD
        server``, error lines) is tolerated and logged. Fails with the file name and the problem when
        the output is empty, truncated (fio killed or crashed), not fio's JSON, or a report without
        jobs.

        Example:
        | ${result} =    Parse Fio Output    ${OUTPUT DIR}/saved/fio.json
        | Fio Result Should Meet Thresholds    ${result}    profile=default
        """
        result = parse_fio_file(path)
        self.results.log_result(result)
        return result

    @keyword
    def get_fio_metric(
        self, result: FioResult, metric: str, job: str | None = None, direction: str = "read"
    ) -> float:
        """Return one measured figure of one job and direction, in the unit its name says.

        ``metric`` is a performance metric name as in the threshold profiles, with or without its
        ``min_``/``max_`` prefix: ``iops``, ``bw_mbps``, ``mean_latency_ms``, ``latency_ms`` (worst I/O),
        ``p50_latency_ms`` ... ``p99_99_latency_ms``. ``job`` names the job; it may be left out when
        the result has only one. ``direction`` is ``read`` (default), ``write`` or ``trim``.

        Fails in one line, saying what the result has instead, for an unknown metric or direction, a
        job the result does not have, a result of several jobs without ``job``, a direction the job
        did no I/O in (a job that did no I/O at all has 0 IOPS and bandwidth, but no latency), and a
        figure fio did not report (e.g. a percentile left out of ``percentile_list``).

        Example:
        | ${iops} =    Get Fio Metric    ${result}    iops    direction=write
        | Should Be True    ${iops} > 1000
        | ${qd1} =    Get Fio Metric    ${result}    p99_latency_ms    job=qd1
        """
        return measure_metric(require(result, FioResult, "result", RESULT_EXPECTED), metric, job, direction)

    @keyword
    def log_fio_result(self, result: FioResult) -> None:
        """Log a result's table of figures, its files and its chart again (e.g. in a teardown).

        Example:
        | Log Fio Result    ${result}
        """
        self.results.log_result(require(result, FioResult, "result", RESULT_EXPECTED))
