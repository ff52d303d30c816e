*** Settings ***
Documentation    Fault impact verdicts without a VM: fio's nbd engine straight at an injector on this
...              host (logs on the host's wall clock, log_unix_epoch=1), a spike in the middle of the
...              run. The verdict passes within its limits and fails, one line per broken limit,
...              outside them; recovery is judged against the run's own noise band, on exact windows
...              cut from a log of every I/O or on fio's own averages.

Resource         common.resource

Test Tags        acceptance    fault    impact


*** Variables ***
${BROKEN}          2 fault impact limit(s) broken:
${DROP}            fault 'read 30 ms' at *: max_iops_drop_pct is * %, above the limit 50 %
${LATENCY}         fault 'read 30 ms' at *: max_latency_ms is * ms, above the limit 10 ms
${TOO_SMALL}       1 fault(s) did not add the expected latency:\nfault 'read 30 ms' at *:
...                min_added_latency_ms is * ms, below the limit 200 ms
${TOO_LARGE}       1 fault(s) did not add the expected latency:\nfault 'read 30 ms' at *:
...                max_added_latency_ms is * ms, above the limit 12 ms
# A value Robot refuses before the keyword runs (the baseline is a timedelta).
${BAD_BASELINE}    ValueError: Argument 'baseline' got value 'soon' that cannot be converted to timedelta:
...                Invalid time string 'soon'.


*** Test Cases ***
Spike Impact On A Host Run
    [Documentation]    Every I/O logged, 500 ms windows, a 4 s baseline: the spike is out of the
    ...    baseline's noise band, adds what was injected, and the run recovers.
    ${result}    ${events}    Run Workload With Spike    nbdkit    30ms    runtime=12    lead=4.5s
    ...    log_avg_msec=0
    ${impacts}    Fault Impact Should Be Within    ${result}    ${events}
    ...    max_latency_ms=60    max_recovery_s=3    min_iops_drop_pct=80    baseline=4s
    Fault Should Add Latency    ${impacts}    30ms    tolerance_pct=20
    Should Be True    4.0 < ${impacts}[0][start_s] < 5.5
    Should Be True    ${impacts}[0][baseline_windows] >= 6
    Run Keyword And Expect Error    ${BROKEN}\n${DROP}\n${LATENCY}
    ...    Fault Impact Should Be Within    ${result}    ${events}    max_latency_ms=10    max_iops_drop_pct=50
    ...    baseline=4s
    Run Keyword And Expect Error    ${TOO_SMALL}    Fault Should Add Latency    ${impacts}    at_least=200ms
    Run Keyword And Expect Error    ${TOO_LARGE}    Fault Should Add Latency    ${impacts}    at_most=12ms

Spike Impact From Fio's Own Averages
    [Documentation]    The same verdicts on fio's 1 s window averages (log_avg_msec), as a run
    ...    without &{EVERY_IO} logs them. The run lasts long enough after the spike for recovery to be
    ...    judged on more windows than the 3 s limit needs (fio's last window is never one of them).
    ${result}    ${events}    Run Workload With Spike    nbdkit    30ms    runtime=14    lead=4.5s
    ${impacts}    Fault Impact Should Be Within    ${result}    ${events}
    ...    max_latency_ms=60    max_recovery_s=3    baseline=4s
    Fault Should Add Latency    ${impacts}    30ms    tolerance_pct=20
    Run Keyword And Expect Error    ${BAD_BASELINE}
    ...    Fault Impact Should Be Within    ${result}    ${events}    max_latency_ms=10    baseline=soon
    Run Keyword And Expect Error    no added latency to expect*
    ...    Fault Should Add Latency    ${impacts}
    Run Keyword And Expect Error    'start_s' is missing: not a fault impact*
    ...    Fault Should Add Latency    ${{ [{"fault": "x"}] }}    30ms

A Spike Never Cleared Never Recovers
    [Documentation]    A spike still on when fio ends: the recovery verdict fails and says why.
    ${injector}    Start Latency Injector    size=64M    engine=python
    ${fio}    Start Read Workload    ${injector}    6    log_avg_msec=0
    Sleep    3s
    Inject Latency Spike    ${injector}    read=20ms
    ${result}    Wait For Fio Job    ${fio}
    ${events}    Get Fault Timeline    ${injector}
    Run Keyword And Expect Error
    ...    *never recovered: the fault was still active when the run ended (limit max_recovery_s 3 s)
    ...    Fault Impact Should Be Within    ${result}    ${events}    max_recovery_s=3    baseline=2s
