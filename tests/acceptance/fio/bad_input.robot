*** Settings ***
Documentation    Bad input ends the test with a one-line, specific failure: no traceback, no hang.

Resource         common.resource

Suite Setup      Prepare Bad Input Tests

Test Tags        acceptance    fio    bad-input


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
    [Documentation]    Jobs run as threads: fio's job processes call setsid(), so a SIGKILL of fio's
    ...    process group would leave them writing until their runtime ends.
    ${fio}    Start Fio Job    tiny    directory=${TARGET}    runtime=60    thread=${EMPTY}
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

Timeout That Is Not A Time Fails Before Fio Starts
    Run Keyword And Expect Error
    ...    EQUALS:ValueError: Argument 'timeout' got value 'banana' that cannot be converted to timedelta or None.
    ...    Run Tiny Job    timeout=banana
    No Fio Ran In This Test

Negative Or Zero Timeout Is Refused
    Run Keyword And Expect Error    EQUALS:timeout '-5 s' is negative    Run Tiny Job    timeout=-5 s
    Run Keyword And Expect Error    EQUALS:timeout '0' is not positive    Run Tiny Job    timeout=0
    No Fio Ran In This Test

Allow Errors That Is Not A Flag Fails Before Fio Starts
    Run Keyword And Expect Error    EQUALS:allow_errors 'banana' is not true or false (use True or False)
    ...    Run Tiny Job    allow_errors=banana
    No Fio Ran In This Test

Start Fio Job Refuses The Arguments Of Wait For Fio Job
    VAR    ${expected}    EQUALS:Start Fio Job takes no timeout (got timeout=2 min): give it to Wait For Fio Job
    ...    (fio's own time limit is runtime=, e.g. runtime=30)    separator=${SPACE}
    Run Keyword And Expect Error    ${expected}
    ...    Start Fio Job    tiny    directory=${TARGET}    timeout=2 min
    Run Keyword And Expect Error
    ...    EQUALS:Start Fio Job takes no allow_errors (got allow_errors=True): give it to Wait For Fio Job
    ...    Start Fio Job    tiny    directory=${TARGET}    allow_errors=True
    No Fio Ran In This Test

Prepare Fio Job Refuses The Arguments Of Collect Fio Result
    Run Keyword And Expect Error
    ...    EQUALS:Prepare Fio Job takes no allow_errors (got allow_errors=True): give it to Collect Fio Result
    ...    Prepare Fio Job    tiny    directory=${TARGET}    allow_errors=True
    No Fio Ran In This Test

Wait For Fio Job Checks Its Arguments Before Waiting
    ${fio}    Start Fio Job    tiny    directory=${TARGET}    runtime=60
    Run Keyword And Expect Error
    ...    EQUALS:ValueError: Argument 'timeout' got value 'soon' that cannot be converted to timedelta or None.
    ...    Wait For Fio Job    ${fio}    timeout=soon
    Run Keyword And Expect Error    EQUALS:allow_errors 'maybe' is not true or false (use True or False)
    ...    Wait For Fio Job    ${fio}    allow_errors=maybe
    # The job is the caller's: it still runs, and stops when asked.
    Should Be True    $fio.is_running()
    Stop Fio Job    ${fio}

Handles Of The Wrong Kind Are Refused
    Run Keyword And Expect Error
    ...    EQUALS:handle 'abc' is not a background fio job (use the handle Start Fio Job returned)
    ...    Wait For Fio Job    abc
    Run Keyword And Expect Error
    ...    EQUALS:handle None is not a background fio job (use the handle Start Fio Job returned)
    ...    Stop Fio Job    ${NONE}
    Run Keyword And Expect Error
    ...    EQUALS:prepared of type dict is not a prepared fio job (use what Prepare Fio Job returned)
    ...    Collect Fio Result    ${{ {} }}    0
    VAR    ${not_a_result}    EQUALS:result 'tiny' is not a fio result
    ...    (use what Run Fio Job, Wait For Fio Job or Parse Fio Output returned)    separator=${SPACE}
    Run Keyword And Expect Error    ${not_a_result}    Get Fio Metric    tiny    iops
    Run Keyword And Expect Error    ${not_a_result}    Log Fio Result    tiny
    Run Keyword And Expect Error    ${not_a_result}    Fio Result Should Meet Thresholds    tiny
    Run Keyword And Expect Error    ${not_a_result}    Fio Result Should Be Consistent    tiny

Fio Output Without Jobs Is Refused Naming The File
    Run Keyword And Expect Error
    ...    *no_jobs.json: fio's report has no jobs ("jobs": []); there is nothing to judge
    ...    Parse Fio Output    ${CURDIR}/data/no_jobs.json
    Run Keyword And Expect Error    EQUALS:path is empty: give the path of a file holding fio's JSON output
    ...    Parse Fio Output    ${EMPTY}

Get Fio Metric Names What Is Missing
    ${result}    Parse Fio Output    ${CURDIR}/../../fixtures/fio/multi_jobs.json
    Run Keyword And Expect Error
    ...    EQUALS:the result has 3 jobs (seqread, seqwrite, mixed): name one with job=NAME
    ...    Get Fio Metric    ${result}    iops
    Run Keyword And Expect Error    EQUALS:the result has no job 'seqrd' (jobs: seqread, seqwrite, mixed)
    ...    Get Fio Metric    ${result}    iops    job=seqrd
    Run Keyword And Expect Error    EQUALS:unknown direction 'sideways' (use read, write, trim)
    ...    Get Fio Metric    ${result}    iops    job=seqread    direction=sideways
    Run Keyword And Expect Error
    ...    EQUALS:job 'seqwrite' did no read I/O (its directions with I/O: write); give direction=write
    ...    Get Fio Metric    ${result}    p99_latency_ms    job=seqwrite
    Run Keyword And Expect Error    unknown metric 'iopz' (known: bw_mbps, iops, *
    ...    Get Fio Metric    ${result}    iopz    job=seqread
    ${iops}    Get Fio Metric    ${result}    iops    job=seqwrite    direction=write
    Should Be True    ${iops} > 0

Bad Library Import Arguments Fail The Import In One Line
    [Documentation]    Robot puts the import failure after its own prefix; no traceback follows.
    ${expected}    One Line Import Failure    log_avg_msec 0 is not positive
    Run Keyword And Expect Error    ${expected}
    ...    Import Library    FioLibrary    log_avg_msec=0    AS    ZeroInterval
    ${expected}    One Line Import Failure    job_dir '${CURDIR}/no_such_jobs' does not exist
    Run Keyword And Expect Error    ${expected}
    ...    Import Library    FioLibrary    job_dir=${CURDIR}/no_such_jobs    AS    NoJobDir
    ${expected}    One Line Import Failure    thresholds '${CURDIR}/data/nope.yaml' does not exist
    Run Keyword And Expect Error    ${expected}
    ...    Import Library    FioLibrary    thresholds=${CURDIR}/data/nope.yaml    AS    NoThresholds
    ${expected}    One Line Import Failure    job_dir '${CURDIR}/data/tiny.fio' is not a folder
    Run Keyword And Expect Error    ${expected}
    ...    Import Library    FioLibrary    job_dir=${CURDIR}/data/tiny.fio    AS    FileJobDir

Unknown Metric In A Threshold File Given To The Keyword
    Run Keyword And Expect Error
    ...    *bad_metric.yaml: profiles.default.limits.min_iopz: unknown metric 'min_iopz' (known: *
    ...    Fio Result Should Meet Thresholds    ${NONE}    thresholds=${CURDIR}/data/bad_metric.yaml
    Run Keyword And Expect Error    *nope.yaml' does not exist
    ...    Fio Result Should Be Consistent    ${NONE}    thresholds=${CURDIR}/data/nope.yaml
    Run Keyword And Expect Error    EQUALS:thresholds is empty: give the path of a YAML threshold file
    ...    Fio Result Should Meet Thresholds    ${NONE}    thresholds=${EMPTY}

Ramp That Is Negative Or Not A Number Is Refused
    Run Keyword And Expect Error    EQUALS:ramp '-3' is negative
    ...    Fio Result Should Be Consistent    ${NONE}    ramp=-3
    VAR    ${not_a_time}    EQUALS:ValueError: Argument 'ramp' got value 'nan' that cannot be converted to
    ...    timedelta: cannot convert float NaN to integer    separator=${SPACE}
    Run Keyword And Expect Error    ${not_a_time}
    ...    Fio Result Should Be Consistent    ${NONE}    ramp=nan


*** Keywords ***
One Line Import Failure
    [Documentation]    The expected error of an import of FioLibrary that fails with ${message}
    ...    alone: Robot's prefix, the message, nothing after it but a line end.
    [Arguments]    ${message}
    ${pattern}    Evaluate    "REGEXP:.*failed: " + re.escape($message) + r"\\s*"    modules=re
    RETURN    ${pattern}

Prepare Bad Input Tests
    [Documentation]    A scratch folder, and this suite's FioLibrary first in the search order.
    Create Target Directory
    # Tests import more FioLibrary instances under other names; unqualified keywords mean this one.
    Set Library Search Order    FioLibrary
