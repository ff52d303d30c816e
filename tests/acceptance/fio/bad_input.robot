*** Settings ***
Documentation    Bad input ends the test with a one-line, specific failure: no traceback, no hang.

Resource         common.resource

Suite Setup      Prepare Bad Input Tests

Test Tags        acceptance    fio    bad-input

                 [Documentation]    A scratch folder, and this suite's FioLibrary first in the search order.


*** Test Cases ***
Missing Job File
    Run Keyword And Expect Error    fio job file 'no_such_job' not found (looked for no_such_job, *
    ...    Run Fio Job    no_such_job

Fio Rejects An Option
    Run Keyword And Expect Error    fio exited with code 1 and wrote no results for 'tiny': *bogus_option*
    ...    Run Tiny Job    bogus_option=1

Fio Is Not Installed
    Import Library    FioLibrary    fio=no-such-fio    AS    NoFio
    Run Keyword And Expect Error
    ...    fio is not installed: no 'no-such-fio' on PATH (install the 'fio' package, e.g. apt-get install fio)
    ...    NoFio.Run Fio Job    ${CURDIR}/data/tiny.fio    directory=${TARGET}

Fio Killed Mid Run
    ${fio}    Start Fio Job    tiny    directory=${TARGET}    runtime=60
    Sleep    1 s
    Evaluate    os.killpg($fio.process.pid, signal.SIGKILL)    modules=os,signal
    Run Keyword And Expect Error    fio was killed by SIGKILL*
    ...    Wait For Fio Job    ${fio}    timeout=20 s

Fio Hangs Past Its Timeout
    ${fio}    Start Fio Job    tiny    directory=${TARGET}    runtime=60
    Run Keyword And Expect Error    fio job 'tiny' still ran after 2 s and was stopped (output in *)
    ...    Wait For Fio Job    ${fio}    timeout=2 s
    Should Not Be True    $fio.is_running()

Truncated Fio Output
    Run Keyword And Expect Error
    ...    *truncated.txt: fio's JSON is truncated (line *); fio may have been killed or crashed
    ...    Parse Fio Output    ${CURDIR}/../../fixtures/fio/truncated.txt

Empty Fio Output
    Run Keyword And Expect Error    *empty.txt: no JSON report found in fio's output; it is empty
    ...    Parse Fio Output    ${CURDIR}/../../fixtures/fio/empty.txt

Job Reports A Non Zero Error
    Run Keyword And Expect Error
    ...    fio reported errors in 'tiny': job 'tiny' error=1 (Operation not permitted)*
    ...    Run Tiny Job    filename=/proc/version    rw=write    directory=${NONE}

Unknown Profile
    Run Keyword And Expect Error    *thresholds.yaml: no profile 'nope' (profiles: datacenter, default, emulated)
    ...    Fio Result Should Meet Thresholds    ${NONE}    profile=nope

Unknown Metric In A Threshold File
    Import Library    FioLibrary    thresholds=${CURDIR}/data/bad_metric.yaml    AS    BadMetric
    Run Keyword And Expect Error
    ...    *bad_metric.yaml: profiles.default.limits.min_iopz: unknown metric 'min_iopz' (known: *
    ...    BadMetric.Fio Result Should Meet Thresholds    ${NONE}

Non Numeric Limit In A Threshold File
    Import Library    FioLibrary    thresholds=${CURDIR}/data/non_numeric.yaml    AS    NonNumeric
    Run Keyword And Expect Error    *non_numeric.yaml: profiles.default.limits.min_iops: limit 'fast' is not a number
    ...    NonNumeric.Fio Result Should Meet Thresholds    ${NONE}

Negative Limit In A Threshold File
    Import Library    FioLibrary    thresholds=${CURDIR}/data/negative.yaml    AS    Negative
    Run Keyword And Expect Error
    ...    *negative.yaml: profiles.default.jobs.mixed_randrw.read.max_latency_ms: limit -5 is negative
    ...    Negative.Fio Result Should Meet Thresholds    ${NONE}

Unknown Metric In An Override
    Run Keyword And Expect Error    override min_iopz: unknown metric 'min_iopz' (known: *
    ...    Fio Result Should Meet Thresholds    ${NONE}    min_iopz=5

Target Directory Does Not Exist
    Run Keyword And Expect Error
    ...    EQUALS:target directory '/nonexistent/nvmechaos' (option directory, [global]) does not exist
    ...    Run Tiny Job    directory=/nonexistent/nvmechaos

Target File In A Missing Directory
    VAR    ${expected}    EQUALS:target '/nonexistent/nvmechaos/t.dat' (option filename, [global]): directory
    ...    '/nonexistent/nvmechaos' does not exist    separator=${SPACE}
    Run Keyword And Expect Error    ${expected}
    ...    Run Tiny Job    filename=/nonexistent/nvmechaos/t.dat    directory=${NONE}


*** Keywords ***
Prepare Bad Input Tests
    [Documentation]    A scratch folder, and this suite's FioLibrary first in the search order.
    Create Target Directory
    # Tests import more FioLibrary instances under other names; unqualified keywords mean this one.
    Set Library Search Order    FioLibrary
