"""Keywords: start an emulated drive, read and judge its health, see its events, stop it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from robot.api import logger
from robot.api.deco import keyword

from DriveLibrary.context import DriveContext, DriveKeywords, as_drive
from nvmechaos.analysis.charts import png_data_uri, render_panels_png, render_timeline_png
from nvmechaos.analysis.impact import fio_origin, windows_during_run
from nvmechaos.analysis.series import drive_sample_series, run_series
from nvmechaos.analysis.steady import write_cliff
from nvmechaos.drive import EmulatedDrive, next_drive_name, start_emulated_drive
from nvmechaos.fio.model import FioResult
from nvmechaos.report import key_value_table_html
from nvmechaos.timeline import Event
from nvmechaos.units import parse_size, require
from nvmechaos.verdicts.health import health_delta, health_problems
from nvmechaos_robot import fail, safe_name


class DriveKeywordsComponent(DriveKeywords):
    """The drive keywords."""

    def __init__(self, context: DriveContext) -> None:
        super().__init__(context)

    @keyword
    def start_emulated_drive(
        self,
        personality: str = "datacenter-tlc",
        size: str | None = None,
        backing: str | None = None,
        name: str | None = None,
        namespaces: int = 0,
        **overrides: str,
    ) -> EmulatedDrive:
        """Start an emulated SSD of ``personality`` and return its handle.

        ``personality`` is a shipped one (``datacenter-tlc``, ``client-qlc``, ``worn``, ``hot``,
        ``liar``, ``tearing``: files under ``variables/drives/``) or the path of your own YAML
        file. ``size`` (``256M``, ``1G``) overrides the personality's, and so does any other
        parameter given by name (``program_latency=2ms``, ``over_provisioning=28%``,
        ``plp=true``: the names are the leaf keys of the YAML file). ``backing`` is a raw image
        (created sparse when missing, kept afterwards); without it a scratch image in a private
        folder is used and deleted at the end. ``namespaces=N`` adds N equal namespace exports of
        the one drive (``${drive.uris}``) so that several VMs or fio jobs contend inside it.

        The handle has ``uri`` (the whole drive: ``Launch NVMe VM    nbd=${drive.uri}``, or fio's
        nbd engine ``uri=${drive.uri}``), ``uris``, ``name``, ``personality`` and ``backing``.
        A bad personality file, parameter or geometry fails in one line naming the file and key,
        before anything starts.

        Example:
        | ${drive} =    Start Emulated Drive    personality=client-qlc    size=256M
        | ${slow} =    Start Emulated Drive    client-qlc    program_latency=2ms    buffer_size=1M
        | ${shared} =    Start Emulated Drive    datacenter-tlc    size=512M    namespaces=2
        """
        drive_name = safe_name(name or next_drive_name(), 16)
        drive = start_emulated_drive(
            personality,
            parse_size(size, "drive size") if size not in (None, "") else None,
            Path(backing) if backing else None,
            overrides=overrides,
            namespaces=namespaces,
            name=drive_name,
            log_dir=self.ctx.test_dir("drives", drive_name),
            scope=self.ctx.scope,
            timeline=self.ctx.timeline,
        )
        self.ctx.own_drive(drive)
        logger.info(f"Drive {drive.name} ({drive.personality.name}) on {drive.backing}: {drive.uri}")
        self.ctx.html(
            key_value_table_html(f"Personality {drive.personality.name}", drive.personality.as_dict())
        )
        return drive

    @keyword
    def get_drive_health(self, drive: EmulatedDrive) -> dict[str, Any]:
        """Return the drive's health now as a dictionary, and log it as a table.

        The keys follow ``nvme smart-log -o json`` where one exists: ``critical_warning``,
        ``temperature`` (Kelvin, as the log page), ``avail_spare``, ``spare_thresh``,
        ``percent_used``, ``data_units_read``/``data_units_written`` (1000 x 512 bytes),
        ``host_read_commands``, ``host_write_commands``, ``media_errors``, ``num_err_log_entries``,
        ``power_cycles``, ``unsafe_shutdowns``, ``power_on_hours``, ``warning_temp_time``,
        ``critical_comp_time``; then the model's own: ``temperature_c``, ``write_amplification``,
        ``free_blocks_pct``, ``gc_active``, ``throttled``, ``buffer_full``, ``read_only``,
        ``host_pages_written``, ``nand_pages_written``, ``gc_pages_moved``, ``erase_count_mean``,
        ``erase_count_max``, ``retired_blocks``, ``trimmed_pages``. The figures are at most
        250 ms old when the keyword returns (it waits for a newer report).

        Example:
        | ${health} =    Get Drive Health    ${drive}
        | Should Be True    ${health}[write_amplification] < 3
        """
        handle = as_drive(drive)
        health = handle.health()
        self.ctx.html(key_value_table_html(f"Health of drive {handle.name}", health))
        return health

    @keyword
    def drive_health_should_be_ok(
        self,
        drive: EmulatedDrive,
        max_percent_used: int = 99,
        max_media_errors: int = 0,
        max_temperature_c: float | None = None,
    ) -> dict[str, Any]:
        """Fail, naming every bad field, unless the drive's health is OK; return the health.

        Bad: any ``critical_warning`` bit (decoded), ``avail_spare`` below ``spare_thresh``,
        ``percent_used`` above ``max_percent_used``, ``media_errors`` above
        ``max_media_errors``, ``temperature_c`` above ``max_temperature_c`` (default: the
        personality's ``throttle_at``), a read-only drive.

        Example:
        | Drive Health Should Be OK    ${drive}
        | Drive Health Should Be OK    ${drive}    max_percent_used=100    max_media_errors=10
        """
        handle = as_drive(drive)
        health = handle.health()
        self.ctx.html(key_value_table_html(f"Health of drive {handle.name}", health))
        limit = max_temperature_c if max_temperature_c is not None else handle.personality.throttle_at
        problems = health_problems(
            health,
            max_percent_used=max_percent_used,
            max_media_errors=max_media_errors,
            max_temperature_c=limit,
        )
        if problems:
            fail(f"Drive {handle.name} ({handle.personality.name}) health is not OK: {'; '.join(problems)}")
        return health

    @keyword
    def get_drive_events(self, drive: EmulatedDrive, kind: str | None = None) -> list[Event]:
        """Return the drive's events so far (power and model events), oldest first, and log them.

        Model events have ``kind`` ``gc``, ``buffer_full``, ``thermal_throttle`` or
        ``critical_warning`` and ``action`` ``begin`` or ``end`` (with ``duration_s``); power
        events have ``kind`` ``power``. ``kind`` keeps only those of one kind.

        Example:
        | ${gc} =    Get Drive Events    ${drive}    kind=gc
        | Should Not Be Empty    ${gc}
        """
        handle = as_drive(drive)
        handle.sync_events()
        events = [
            e for e in self.ctx.timeline.events if e.source == handle.name and (not kind or e.kind == kind)
        ]
        self.ctx.log_timeline(events)
        return events

    @keyword
    def log_drive_states_chart(
        self, result: FioResult, drive: EmulatedDrive
    ) -> list[tuple[float, float, str]]:
        """Log a chart of the fio run's IOPS and latency over time with the drive's states shaded
        (GC, buffer full, thermal throttle, critical warning), and under it the drive's wear (% of
        its rated endurance), temperature and free superblocks on the same time axis; return the
        spans as ``(start_s, end_s, label)`` in seconds from fio's start.

        fio's start must be known on the host clock: a host run with ``log_unix_epoch=1`` (the
        nbd jobs have it) or a VM run started with ``Start Timed Fio Job On VM``. ChaosLibrary's
        `Get Fault Impact` shades the same spans and also measures their impact against a
        baseline before them.

        Example:
        | ${result} =    Run Fio Job    drive/nbd_random_writes    uri=${drive.uri}
        | ${spans} =    Log Drive States Chart    ${result}    ${drive}
        """
        run = require(result, FioResult, "result", "a fio result (use what Run Fio Job returned)")
        handle = as_drive(drive)
        handle.sync_events()
        start, _ = fio_origin(run)
        series = run_series(run)
        events = [e for e in self.ctx.timeline.events if e.source == handle.name]
        windows = windows_during_run(events, start, series.total)
        png = render_timeline_png(
            series.iops,
            series.latency,
            fault_windows=windows,
            title=f"fio on drive {handle.name} ({handle.personality.name}) with its states shaded",
        )
        self.ctx.html(f'<img src="{png_data_uri(png)}" alt="IOPS and latency over time with drive states">')
        health = drive_sample_series(handle.samples(), start)
        png = render_panels_png(
            [
                ("wear (% of endurance)", {"wear": health["wear_pct"]}),
                ("temperature (°C)", {"temperature": health["temperature_c"]}),
                ("free superblocks (%)", {"free": health["free_blocks_pct"]}),
            ],
            fault_windows=windows,
            title=f"drive {handle.name}: wear, temperature and free blocks on fio's time axis",
        )
        self.ctx.html(
            f'<img src="{png_data_uri(png)}" alt="drive wear, temperature and free blocks over time">'
        )
        return windows

    @keyword
    def drive_event_should_have_happened(self, drive: EmulatedDrive, kind: str) -> list[Event]:
        """Fail unless the drive recorded an event of ``kind`` (``gc``, ``buffer_full``,
        ``thermal_throttle``, ``critical_warning``, ``power``); return those events.

        Example:
        | Drive Event Should Have Happened    ${drive}    gc
        """
        events = self.get_drive_events(drive, kind)
        if not events:
            handle = as_drive(drive)
            seen = sorted({e.kind for e in self.ctx.timeline.events if e.source == handle.name})
            fail(f"drive {handle.name} recorded no '{kind}' event (it recorded: {', '.join(seen) or 'none'})")
        return events

    @keyword
    def drive_wear_should_have_grown(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        """Fail unless the health ``after`` shows more wear than ``before`` (both from
        `Get Drive Health`): ``percent_used`` and ``data_units_written`` grew. Return the change of
        every number in the health (after - before), also logged as a table.

        Example:
        | ${before} =    Get Drive Health    ${drive}
        | Run Fio Job On VM    ${vm}    drive/random_writes
        | ${after} =    Get Drive Health    ${drive}
        | ${delta} =    Drive Wear Should Have Grown    ${before}    ${after}
        """
        delta = health_delta(before, after)
        self.ctx.html(key_value_table_html("Health change", delta))
        flat = [key for key in ("percent_used", "data_units_written") if delta.get(key, 0) <= 0]
        if flat:
            fail(
                "drive wear did not grow: "
                + "; ".join(f"{key} {before.get(key)} -> {after.get(key)}" for key in flat)
            )
        return delta

    @keyword
    def stop_emulated_drive(self, drive: EmulatedDrive) -> None:
        """Shut the drive down in order (its volatile cache written back, its state saved).

        Drives are also stopped when their test (or suite) ends; this is for a test that needs the
        drive gone earlier. A cut is IntegrityLibrary's `Cut Power`.

        Example:
        | Stop Emulated Drive    ${drive}
        """
        handle = as_drive(drive)
        handle.stop()
        logger.info(f"Drive {handle.name} stopped")

    @keyword
    def write_cliff_should_be_seen(
        self,
        result: FioResult,
        min_ratio: float = 3.0,
        head: timedelta = timedelta(seconds=5),
        tail: timedelta = timedelta(seconds=10),
    ) -> dict[str, Any]:
        """Fail unless a sustained write run fell off a write cliff: its fresh-out-of-box IOPS
        (mean of the windows in its first ``head``, after fio's start-up window) are at least
        ``min_ratio`` times its steady IOPS (mean of the windows in its last ``tail``). Return
        ``fob_iops``, ``steady_iops``, ``ratio`` and ``cliff_at_s`` (when IOPS first fell below the
        midpoint; None if never).

        A drive with enough over-provisioning and program bandwidth for the workload shows no
        cliff, and the keyword fails naming both figures.

        Example:
        | ${result} =    Run Fio Job On VM    ${vm}    drive/random_writes    runtime=45
        | ${cliff} =    Write Cliff Should Be Seen    ${result}    min_ratio=2
        """
        run = require(result, FioResult, "result", "a fio result (use what Run Fio Job returned)")
        total = run_series(run).total
        cliff = write_cliff(total, head.total_seconds(), tail.total_seconds())
        figures = {
            "fob_iops": round(cliff.fob_iops, 1),
            "steady_iops": round(cliff.steady_iops, 1),
            "ratio": round(cliff.ratio, 2),
            "cliff_at_s": cliff.cliff_at_s,
        }
        self.ctx.html(key_value_table_html("Write cliff", figures))
        if cliff.ratio < min_ratio:
            fail(
                f"no write cliff: fresh-out-of-box {cliff.fob_iops:,.0f} IOPS (s {cliff.fob_window[0]:.0f}-"
                f"{cliff.fob_window[1]:.0f}) vs steady {cliff.steady_iops:,.0f} IOPS (s "
                f"{cliff.steady_window[0]:.0f}-{cliff.steady_window[1]:.0f}): ratio {cliff.ratio:.2f} is "
                f"below {min_ratio:g}"
            )
        return figures
