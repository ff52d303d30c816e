*** Settings ***
Documentation    Threshold and consistency verdicts on real fio results.

Library          OperatingSystem
Library          Process
# Its own FioLibrary: the verdicts here are judged against data/reachable.yaml.
Library          FioLibrary    thresholds=${CURDIR}/data/reachable.yaml    job_dir=${CURDIR}/data

Suite Setup      Run Reference Job

Test Tags        acceptance    fio    verdict


*** Test Cases ***
Reachable Limits Pass On The Host File
    Fio Result Should Meet Thresholds    ${RESULT}    profile=default

Impossible Minimum Fails Naming Job Direction Metric Limit And Value
    ${message}    Run Keyword And Expect Error    *
    ...    Fio Result Should Meet Thresholds    ${RESULT}    profile=default    min_iops=1000000000
    Should Match Regexp    ${message}
    ...    ^2 threshold violations \\(profile default\\):\\n- job 'mixed_randrw' read: IOPS \\(min_iops\\)
    Should Match Regexp    ${message}
    ...    must be at least 1e\\+09 IOPS, measured [\\d,.]+ IOPS\\n- job 'mixed_randrw' write: IOPS \\(min_iops\\)

All Violations Are Reported Together
    ${message}    Run Keyword And Expect Error    *
    ...    Fio Result Should Meet Thresholds    ${RESULT}    profile=default    min_iops=1e9
    ...    max_p99_latency_ms=0.000001
    ...    write.min_bw_mbps=1e6
    Should Start With    ${message}    5 threshold violations
    Should Contain    ${message}    p99 latency (max_p99_latency_ms) must be at most
    Should Contain
    ...    ${message}    job 'mixed_randrw' write: bandwidth (min_bw_mbps) must be at least 1,000,000 MB/s

A Job With An Error Never Passes
    ${result}    Run Fio Job    tiny    filename=/proc/version    rw=write    allow_errors=True
    Run Keyword And Expect Error    *job 'tiny': fio reported error 1 (Operation not permitted); it cannot pass*
    ...    Fio Result Should Meet Thresholds    ${result}    min_iops=0

A Job That Did No IO Never Passes
    ${result}    Parse Fio Output    ${CURDIR}/../../fixtures/fio/job_error.txt
    Run Keyword And Expect Error    *did no I/O; it cannot pass*
    ...    Fio Result Should Meet Thresholds    ${result}

Consistency Passes On A Steady Run And Fails Beyond Its Limit
    Fio Result Should Be Consistent    ${RESULT}    profile=default    ramp=1
    Run Keyword And Expect Error    *IOPS coefficient of variation (max_iops_cov_pct) must be at most 0 %*
    ...    Fio Result Should Be Consistent    ${RESULT}    profile=default    max_iops_cov_pct=0

Consistency Metric Given To The Threshold Keyword Is Refused
    Run Keyword And Expect Error
    ...    override max_iops_cov_pct: 'max_iops_cov_pct' is a consistency metric; check it with *
    ...    Fio Result Should Meet Thresholds
    ...    ${RESULT}
    ...    max_iops_cov_pct=10

Get Fio Metric Returns Figures In The Named Unit
    ${iops}    Get Fio Metric    ${RESULT}    iops
    ${p99}    Get Fio Metric    ${RESULT}    p99_latency_ms    direction=write
    Should Be True    ${iops} > 0
    Should Be True    0 < ${p99} < 1000

The Performance Suite Fails Against An Impossible Profile
    [Documentation]    The real suite, run as users run it, must fail and name the metric.
    ${run}    Run Process    ${PYTHON}    -m    robot    --include    smoke    --output    NONE    --report    NONE
    ...    --log    NONE    --outputdir    ${OUTPUT DIR}${/}impossible    --variable    HOST_PROFILE:impossible
    ...    --variable    THRESHOLDS:${CURDIR}/data/impossible.yaml    --variable    RUNTIME:1
    ...    ${CURDIR}/../../../suites/performance/host_workloads.robot
    ...    stdout=${OUTPUT DIR}${/}impossible.stdout    stderr=STDOUT
    Log    ${run.stdout}
    Should Not Be Equal As Integers    ${run.rc}    0
    Should Contain    ${run.stdout}    IOPS (min_iops) must be at least 1e+09 IOPS, measured
    Should Contain    ${run.stdout}    2 tests, 0 passed, 2 failed

The VM Suites Are Judged By VM_PROFILE Only
    [Documentation]    HOST_PROFILE (what Jenkins' parameter sets) leaves the VM suites on emulated;
    ...    VM_PROFILE reaches them (an unknown profile there fails naming it).
    [Tags]    vm
    ${run}    Run Process    ${PYTHON}    -m    robot    --output    NONE    --report    NONE    --log    NONE
    ...    --outputdir    ${OUTPUT DIR}${/}host-profile    --variable    HOST_PROFILE:impossible
    ...    --variable    RUNTIME:2    ${CURDIR}/../../../suites/smoke/vm_smoke.robot
    ...    stdout=${OUTPUT DIR}${/}host-profile.stdout    stderr=STDOUT
    Log    ${run.stdout}
    Should Contain    ${run.stdout}    1 test, 1 passed, 0 failed
    ${run}    Run Process    ${PYTHON}    -m    robot    --output    NONE    --report    NONE    --log    NONE
    ...    --outputdir    ${OUTPUT DIR}${/}vm-profile    --variable    VM_PROFILE:impossible
    ...    --variable    RUNTIME:2    ${CURDIR}/../../../suites/smoke/vm_smoke.robot
    ...    stdout=${OUTPUT DIR}${/}vm-profile.stdout    stderr=STDOUT
    Log    ${run.stdout}
    Should Contain    ${run.stdout}    no profile 'impossible'
    Should Contain    ${run.stdout}    1 test, 0 passed, 1 failed

The Depth Check Names A Job The Result Lacks
    Run Keyword And Expect Error    the result has no job 'qd1' (jobs: *)
    ...    IOPS Should Not Fall With Queue Depth    ${RESULT}    qd1    qd16
    Run Keyword And Expect Error    result 'nothing' is not a fio result*
    ...    IOPS Should Not Fall With Queue Depth    nothing    qd1    qd16

A Result Without Jobs Never Passes
    ${empty}    Evaluate    dataclasses.replace($RESULT, jobs=())    modules=dataclasses
    VAR    ${expected}    EQUALS:1 threshold violation (profile default):\n- the result has no jobs
    ...    (fio reported none); it cannot pass    separator=${SPACE}
    Run Keyword And Expect Error    ${expected}
    ...    Fio Result Should Meet Thresholds    ${empty}    min_iops=0
    VAR    ${expected}    EQUALS:1 consistency violation (profile default):\n- the result has no jobs
    ...    (fio reported none); it cannot pass    separator=${SPACE}
    Run Keyword And Expect Error    ${expected}
    ...    Fio Result Should Be Consistent    ${empty}
    Run Keyword And Expect Error    EQUALS:the result has no jobs (fio reported none)
    ...    Get Fio Metric    ${empty}    iops

Override For A Job The Result Lacks Fails Naming What It Has
    VAR    ${expected}    EQUALS:override latency_prob.max_p99_latency_ms: the result has no job 'latency_prob'
    ...    (jobs: mixed_randrw) and 'latency_prob' is not a direction (read, write, trim)    separator=${SPACE}
    Run Keyword And Expect Error    ${expected}
    ...    Fio Result Should Meet Thresholds    ${RESULT}    latency_prob.max_p99_latency_ms=5
    VAR    ${expected}    EQUALS:override sideways.min_iops: the result has no job 'sideways'
    ...    (jobs: mixed_randrw) and 'sideways' is not a direction (read, write, trim)    separator=${SPACE}
    Run Keyword And Expect Error    ${expected}
    ...    Fio Result Should Meet Thresholds    ${RESULT}    sideways.min_iops=5
    Run Keyword And Expect Error    override mixd_randrw.max_iops_cov_pct: the result has no job 'mixd_randrw' *
    ...    Fio Result Should Be Consistent    ${RESULT}    mixd_randrw.max_iops_cov_pct=50

Override For A Direction The Result Did No IO In Fails
    VAR    ${expected}    EQUALS:override trim.min_iops: no job of the result did trim I/O
    ...    (directions with I/O: read, write)    separator=${SPACE}
    Run Keyword And Expect Error    ${expected}
    ...    Fio Result Should Meet Thresholds    ${RESULT}    trim.min_iops=5
    VAR    ${expected}    EQUALS:override mixed_randrw.trim.max_iops_cov_pct: job 'mixed_randrw' did no trim I/O
    ...    (its directions with I/O: read, write)    separator=${SPACE}
    Run Keyword And Expect Error    ${expected}
    ...    Fio Result Should Be Consistent    ${RESULT}    mixed_randrw.trim.max_iops_cov_pct=50
    Run Keyword And Expect Error    override mixed_randrw.wrte.min_iops: use METRIC, DIRECTION.METRIC, *
    ...    Fio Result Should Meet Thresholds    ${RESULT}    mixed_randrw.wrte.min_iops=5

Override Scoped To What The Result Has Applies
    Run Keyword And Expect Error    1 threshold violation (profile default):\n- job 'mixed_randrw' write: IOPS *
    ...    Fio Result Should Meet Thresholds    ${RESULT}    mixed_randrw.write.min_iops=1e9    read.min_iops=0

Verdicts Read Another Threshold File When Given One
    [Documentation]    One import, two files: thresholds= wins for that check only.
    Run Keyword And Expect Error    *IOPS (min_iops) must be at least 1e+09 IOPS, measured *
    ...    Fio Result Should Meet Thresholds    ${RESULT}    profile=impossible
    ...    thresholds=${CURDIR}/data/impossible.yaml
    Run Keyword And Expect Error    *IOPS coefficient of variation (max_iops_cov_pct) must be at most 0 %*
    ...    Fio Result Should Be Consistent    ${RESULT}    profile=flat    ramp=1
    ...    thresholds=${CURDIR}/data/steady.yaml
    Fio Result Should Meet Thresholds    ${RESULT}    profile=flat    thresholds=${CURDIR}/data/steady.yaml
    # Without thresholds= the library's own file (reachable.yaml) is read again.
    Fio Result Should Meet Thresholds    ${RESULT}
    Run Keyword And Expect Error    *steady.yaml: no profile 'default' (profiles: flat)
    ...    Fio Result Should Meet Thresholds    ${RESULT}    thresholds=${CURDIR}/data/steady.yaml

Ramp Longer Than The Run Says So
    VAR    ${expected}    ramp=100 s leaves no interval samples of job 'mixed_randrw' read to judge
    ...    (at least 2 are needed): the run lasted * s (* intervals of 1 s); use a ramp shorter than the run
    ...    separator=${SPACE}
    ${message}    Run Keyword And Expect Error    ${expected}
    ...    Fio Result Should Be Consistent    ${RESULT}    ramp=100
    Should Not Contain    ${message}    fio reported no such value
    Run Keyword And Expect Error    ramp=240 s leaves no interval samples *
    ...    Fio Result Should Be Consistent    ${RESULT}    ramp=4 min


*** Keywords ***
Run Reference Job
    [Documentation]    One real mixed run that the verdict tests judge in different ways, by the
    ...    FioLibrary that reads data/reachable.yaml.
    VAR    ${target}    ${OUTPUT DIR}${/}verdicts-target
    Create Directory    ${target}
    ${result}    Run Fio Job    mixed_randrw    directory=${target}    runtime=4
    VAR    ${RESULT}    ${result}    scope=SUITE
    ${python}    Evaluate    sys.executable
    VAR    ${PYTHON}    ${python}    scope=SUITE
