*** Settings ***
Documentation    Latency spikes and I/O errors injected under a VM's NVMe namespace (nbdkit fault
...              injector as the namespace's NBD export) while fio runs in the guest. A spike is
...              detected where the fault timeline puts it, adds what was injected, stays within its
...              limit and the workload recovers; injected errors reach fio as EIO and the namespace
...              works again after. Each verdict is also shown to fail, on a run of its own, for the
...              reason it names: a spike above the limit, a workload that never recovers.
...
...              Recovery is judged against the run's own noise (`Fault Impact Should Be Within`:
...              back within mean ± 3 SD of the baseline windows). The probe logs every I/O
...              (&{EVERY_IO}) so that the impact is measured on exact 500 ms windows: 16 in the
...              ${BASELINE} baseline.

Resource         ../../resources/faults.resource

Suite Setup      Launch VM On Injector

Test Tags        fault    vm


*** Variables ***
${SPIKE}              50ms
# Far above ${MAX_LATENCY_MS} ms: the negative proof's spike cannot pass for noise.
${BIG_SPIKE}          200ms
${MAX_LATENCY_MS}     120
${RECOVERY_S}         3
# The spike's added latency must be within this much of ${SPIKE} (injected delay + guest overhead).
${ADDED_TOLERANCE}    20
${BASELINE}           8s
# After fio does I/O, the time before the spike: the baseline plus fio's first window.
${LEAD}               9s
${RUNTIME}            19
# A throttle that keeps the namespace degraded after a spike, for the never-recovered proof.
${DEGRADED_IOPS}      50
${VM}                 ${None}
${INJECTOR}           ${None}


*** Test Cases ***
Latency Spike Detected And Recovered
    [Documentation]    A ${SPIKE} read spike for 3 s in a QD1 run: the worst window during it adds
    ...    ${SPIKE} (± ${ADDED_TOLERANCE} %), out of the baseline's noise, stays under
    ...    ${MAX_LATENCY_MS} ms, and the run is back within the baseline's noise band within
    ...    ${RECOVERY_S} s of the spike's end.
    [Tags]    latency
    ${result}    ${events}    Run Probe With Spike    ${SPIKE}
    ${impacts}    Fault Impact Should Be Within    ${result}    ${events}
    ...    max_latency_ms=${MAX_LATENCY_MS}    max_recovery_s=${RECOVERY_S}    baseline=${BASELINE}
    Fault Should Add Latency    ${impacts}    ${SPIKE}    tolerance_pct=${ADDED_TOLERANCE}

A Spike Above The Limit Fails The Verdict
    [Documentation]    Negative proof on its own run: a ${BIG_SPIKE} spike breaks
    ...    max_latency_ms=${MAX_LATENCY_MS}, and that is the one limit the verdict reports.
    [Tags]    latency
    ${result}    ${events}    Run Probe With Spike    ${BIG_SPIKE}
    VAR    ${expected}    1 fault impact limit(s) broken:\nfault 'read *' at *:
    ...    max_latency_ms is * ms, above the limit ${MAX_LATENCY_MS} ms
    Run Keyword And Expect Error    ${expected}
    ...    Fault Impact Should Be Within    ${result}    ${events}    max_latency_ms=${MAX_LATENCY_MS}
    ...    baseline=${BASELINE}

A Workload That Stays Degraded Never Recovers
    [Documentation]    Negative proof on its own run: during a ${SPIKE} spike the namespace is also
    ...    throttled to ${DEGRADED_IOPS} IOPS (a VM fault, not on the injector's timeline) and stays so
    ...    after the spike ends: judged on the spike, the workload never comes back within its
    ...    baseline's noise band in the seconds observed after it.
    [Tags]    latency
    ${result}    ${events}    Run Probe With Spike    ${SPIKE}    degrade=${True}
    VAR    ${expected}    1 fault impact limit(s) broken:\nfault 'read *' at *:
    ...    never recovered to within the baseline's noise band (IOPS ≥ *, latency ≤ * ms)
    ...    in the * s observed after it (limit max_recovery_s ${RECOVERY_S} s)
    Run Keyword And Expect Error    ${expected}
    ...    Fault Impact Should Be Within    ${result}    ${events}    max_recovery_s=${RECOVERY_S}
    ...    baseline=${BASELINE}
    [Teardown]    Clear IO Throttle    ${VM}    nvme0

IO Errors Surfaced
    [Documentation]    Every read of the backing store fails with EIO for 1 s: fio in the guest
    ...    reports an I/O error (QEMU turns a failed read into NVMe "Unrecovered Read Error", which
    ...    Linux returns as ENODATA, 61); afterwards the namespace serves a workload within the
    ...    ${VM_PROFILE} thresholds.
    [Tags]    errors
    ${fio}    Start Timed Fio Job On VM    ${VM}    faults/fault_workload    runtime=8
    Wait Until Fio Does IO On VM    ${VM}
    Sleep    2s
    Inject IO Errors    ${INJECTOR}    rate=1.0    operation=read    errno=EIO    duration=1s
    ${result}    Wait For Timed Fio Job On VM    ${fio}    allow_errors=True
    Fio Should Report IO Error    ${result}
    ${after}    Run Fio Job On VM    ${VM}    faults/fault_workload    runtime=2
    Fio Result Should Meet Thresholds    ${after}    profile=${VM_PROFILE}
    Run Keyword And Expect Error    fio reported no I/O error*
    ...    Fio Should Report IO Error    ${after}


*** Keywords ***
Launch VM On Injector
    [Documentation]    An nbdkit fault injector serving a 256 MiB image, as the namespace of one VM.
    ${injector}    Start Latency Injector    size=256M    engine=nbdkit
    ${vm}    Launch NVMe VM    name=latency    nbd=${injector.uri}
    VAR    ${INJECTOR}    ${injector}    scope=SUITE
    VAR    ${VM}    ${vm}    scope=SUITE

Run Probe With Spike
    [Documentation]    QD1 reads for ${RUNTIME} s, every I/O logged, with a ${delay} read spike for 3 s
    ...    ${LEAD} after fio starts doing I/O; with ${degrade}, the namespace is also throttled to
    ...    ${DEGRADED_IOPS} IOPS from the middle of the spike on (until the test clears it). Return
    ...    the result and the injector's fault timeline.
    [Arguments]    ${delay}    ${degrade}=${False}
    ${fio}    Start Timed Fio Job On VM    ${VM}    faults/probe_qd1    runtime=${RUNTIME}
    ...    &{EVERY_IO}
    Wait Until Fio Does IO On VM    ${VM}
    Sleep    ${LEAD}
    Inject Latency Spike    ${INJECTOR}    read=${delay}    duration=3s
    IF    ${degrade}
        Sleep    1.5s
        Set IO Throttle    ${VM}    nvme0    iops=${DEGRADED_IOPS}
    END
    ${result}    Wait For Timed Fio Job On VM    ${fio}
    ${events}    Get Fault Timeline    ${INJECTOR}
    RETURN    ${result}    ${events}

Fio Should Report IO Error
    [Documentation]    Fail unless the first job of ${result} ended with an I/O error: EIO (5),
    ...    ENODATA (61, a media error) or EREMOTEIO (121).
    [Arguments]    ${result}
    VAR    @{io_errors}    ${5}    ${61}    ${121}
    Should Contain    ${io_errors}    ${result.jobs[0].error}
    ...    fio reported no I/O error (job error ${result.jobs[0].error})    values=False
