*** Settings ***
Documentation    Running fio through FioLibrary: results, artifacts, overrides, background runs.

Resource         common.resource
Library          LogCapture.py

Suite Setup      Create Target Directory

Test Tags        acceptance    fio


*** Test Cases ***
Run Fio Job Returns The Result Model And Keeps Artifacts
    ${result}    Run Tiny Job
    Should Be Equal    ${result.jobs[0].name}    tiny
    Should Be True    ${result.jobs[0].directions['read'].iops} > 0
    Should Be True    ${result.jobs[0].directions['write'].total_ios} > 0
    VAR    ${folder}    ${result.artifacts.directory}
    Should Start With    ${folder}    ${OUTPUT DIR}${/}fio${/}
    FOR    ${name}    IN    fio.json    fio.stderr    job.fio    command.txt    fio_iops.1.log    fio_clat.1.log
    ...    fio_bw.1.log
        File Should Exist    ${folder}${/}${name}
    END

Overrides Reach Every Job And The Job File As Run
    ${result}    Run Tiny Job    runtime=1    bs=8k    rw=randread
    ${as_run}    Get File    ${result.artifacts.job_file}
    Should Contain    ${as_run}    bs=8k
    Should Contain    ${as_run}    runtime=1
    Should Not Contain    ${as_run}    bs=4k
    Should Be Equal As Integers    ${result.jobs[0].directions['write'].total_ios}    0
    Should Be Equal As Integers    ${result.jobs[0].directions['read'].io_bytes % 8192}    0

Job Scoped Override Changes One Job Only
    ${result}    Run Fio Job    multi_device    directory=${TARGET}    runtime=1    size=8m
    ...    dev1.rw=randread    ioengine=psync    direct=0
    Should Be True    ${result.job('dev0').directions['write'].total_ios} > 0
    Should Be Equal As Integers    ${result.job('dev1').directions['write'].total_ios}    0

Start And Wait Run In The Background
    ${fio}    Start Fio Job    tiny    directory=${TARGET}    runtime=2
    Should Be True    $fio.is_running()
    ${result}    Wait For Fio Job    ${fio}
    Should Not Be True    $fio.is_running()
    Should Be True    ${result.total_iops} > 0

Stop Fio Job Ends A Running Job
    ${fio}    Start Fio Job    tiny    directory=${TARGET}    runtime=60
    Sleep    1 s
    Stop Fio Job    ${fio}
    Should Not Be True    $fio.is_running()

Prepared Job Runs Anywhere And Is Collected
    [Documentation]    The path remote targets use: prepare, run fio by hand in a copy, collect.
    ${prepared}    Prepare Fio Job    tiny    directory=${TARGET}    runtime=1
    VAR    ${remote}    ${OUTPUT DIR}${/}pretend-remote
    Create Directory    ${remote}
    Copy File    ${prepared.run_dir}${/}job.fio    ${remote}
    ${argv}    Evaluate    $prepared.argv("fio")
    ${run}    Run Process    @{argv}    cwd=${remote}
    Copy Files    ${remote}${/}fio*    ${prepared.run_dir}
    ${result}    Collect Fio Result    ${prepared}    ${run.rc}
    Should Be True    ${result.total_iops} > 0
    Should Be Equal As Integers    ${result.exit_code}    0

Parse Fio Output Tolerates Text Around The JSON
    ${result}    Parse Fio Output    ${CURDIR}/../../fixtures/fio/nbd_connected.txt
    Should Not Be Empty    ${result.messages}
    Should Be True    ${result.total_iops} > 0

Log Fio Result Logs The Table, The Run Folder And The Chart Again
    [Documentation]    What a teardown shows of a result: its table of figures, links to its run
    ...    folder's files (not the interval logs) and its chart, as the run logged them.
    ${result}    Run Tiny Job    runtime=3
    ${messages}    Messages Logged By    Log Fio Result    ${result}
    Length Should Be    ${messages}    3
    Should Match    ${messages}[0]    <table*<th>IOPS</th>*<td>tiny</td><td>read</td>*<td>tiny</td><td>write</td>*
    Should Match    ${messages}[1]    Run folder <a href="*">01-tiny</a>: *<a href="*">fio.json</a>*
    Should Not Contain    ${messages}[1]    .log<
    Should Match    ${messages}[2]    <img src="data:image/png;base64,*" alt="IOPS and latency over time"*

Log Fio Result Of Saved Output Logs Its Table
    [Documentation]    A result read from saved JSON has no run folder and no interval logs.
    ${result}    Parse Fio Output    ${CURDIR}/../../fixtures/fio/multi_jobs.json
    ${messages}    Messages Logged By    Log Fio Result    ${result}
    Length Should Be    ${messages}    1
    Should Match    ${messages}[0]    <table*<td>seqread</td><td>read</td>*<td>seqwrite</td><td>write</td>*

A Background Job Left Running Is Stopped When Its Test Ends
    [Documentation]    The first half: start a long job and leave it running.
    ${fio}    Start Fio Job    tiny    directory=${TARGET}    runtime=600
    VAR    ${LEFT_RUNNING}    ${fio}    scope=SUITE

The Job Left Running Is Gone
    [Documentation]    The second half: the library's listener stopped it at the end of the last test.
    Should Not Be True    $LEFT_RUNNING.is_running()
