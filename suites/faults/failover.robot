*** Settings ***
Documentation    A dual-port NVMe drive (two controllers of one NVMe subsystem, each on its own PCIe
...              root port; native multipath in the guest) keeps the same fio job going when a path
...              is unplugged, flaps, or comes back; a single-path drive does not, and is measured
...              as an application sees it: a workload that reopens the namespace when it returns.
...              Every verdict comes from fio's per-I/O log (`Fault Outage Should Be Within`): the
...              longest time without a completion, when I/O resumed, errors and restarts.
...
...              QEMU's device_del is a cooperative (ACPI) removal: the guest is asked and releases
...              the controller, draining or failing over its I/O; a surprise removal (the link
...              dropping under in-flight commands) is not what this emulates.

Resource         ../../resources/faults.resource

Suite Setup      Launch Dual Port And Single Path VMs

Test Tags        fault    vm


*** Variables ***
# The longest completion gap a failover may cause (measured: 10-25 ms under TCG).
${MAX_GAP_MS}      1000
# A single path out and back: unplug + plug + reopen + fio restart (measured: 0.6-1.2 s).
${MAX_RESUME_S}    3
# How long a path stays out before it is plugged back.
${OUT}             1s
${RUNTIME}         10
${DUAL}            ${None}
${SINGLE}          ${None}


*** Test Cases ***
Failover Keeps IO Going When A Path Is Unplugged
    [Documentation]    One path of the dual-port drive unplugged during I/O and plugged back: no I/O
    ...    error, no completion gap above ${MAX_GAP_MS} ms, and both paths carry I/O again.
    [Tags]    failover
    ${fio}    Start Workload    ${DUAL}
    Hot Unplug NVMe Device    ${DUAL}    nvme0
    Sleep    ${OUT}
    Hot Plug NVMe Device    ${DUAL}    nvme0
    All Paths Should Carry IO    ${DUAL}    nvme0
    ${result}    Wait For Timed Fio Job On VM    ${fio}
    ${events}    Get VM Fault Timeline    ${DUAL}
    Fault Outage Should Be Within    ${result}    ${events}    max_gap_ms=${MAX_GAP_MS}    max_io_errors=0

A Single Path Fails The Failover Verdict
    [Documentation]    Negative proof: the same unplug on a single-path drive ends fio with EIO, and
    ...    the failover verdict fails on both limits: I/O never resumed, and an error.
    [Tags]    failover
    ${fio}    Start Workload    ${SINGLE}
    Hot Unplug NVMe Device    ${SINGLE}    nvme0
    ${result}    Wait For Timed Fio Job On VM    ${fio}    allow_errors=True
    Hot Plug NVMe Device    ${SINGLE}    nvme0
    ${events}    Get VM Fault Timeline    ${SINGLE}
    Run Keyword And Expect Error
    ...    *max_gap_ms is * ms (I/O never resumed), above the limit ${MAX_GAP_MS} ms*max_io_errors is 1 errors*
    ...    Fault Outage Should Be Within    ${result}    ${events}    max_gap_ms=${MAX_GAP_MS}    max_io_errors=0

Single Path Unplug Recovers Within The Limit
    [Documentation]    The single path unplugged for ${OUT} and plugged back while a reopening
    ...    workload runs: one error, one restart, I/O back within ${MAX_RESUME_S} s of the unplug;
    ...    the chart shows the I/O before, the gap and after.
    [Tags]    hotplug
    ${result}    ${events}    Unplug Single Path For    ${OUT}
    Fault Outage Should Be Within    ${result}    ${events}    max_resume_s=${MAX_RESUME_S}    max_restarts=1
    ...    max_io_errors=1

A Longer Outage Fails The Recovery Verdict
    [Documentation]    Negative proof: the path kept out for 4 s breaks max_resume_s=${MAX_RESUME_S}.
    [Tags]    hotplug
    ${result}    ${events}    Unplug Single Path For    4s
    Run Keyword And Expect Error    *max_resume_s is * s, above the limit ${MAX_RESUME_S} s*
    ...    Fault Outage Should Be Within    ${result}    ${events}    max_resume_s=${MAX_RESUME_S}

Path Flaps Cause No IO Error
    [Documentation]    One path of the dual-port drive flaps 5 times 200 ms apart during I/O: no error,
    ...    no gap above ${MAX_GAP_MS} ms, the path stable again within 5 s of its last plug.
    [Tags]    flap
    ${fio}    Start Workload    ${DUAL}
    Flap NVMe Device    ${DUAL}    nvme0p1    cycles=5    interval=200ms    timeout=5s
    ${result}    Wait For Timed Fio Job On VM    ${fio}
    ${events}    Get VM Fault Timeline    ${DUAL}
    Fault Outage Should Be Within    ${result}    ${events}    max_gap_ms=${MAX_GAP_MS}    max_io_errors=0

Single Path Flaps Fail The No Error Verdict
    [Documentation]    Negative proof: the same flaps on the single path make the reopening workload
    ...    fail and restart; max_io_errors=0 fails naming the count. (Stable within 0.27-0.30 s
    ...    here; once, beside a busy core, not within 5 s: the wait is 10 s, this test judges errors.)
    [Tags]    flap
    ${fio}    Start Workload    ${SINGLE}    reopen=${True}
    Flap NVMe Device    ${SINGLE}    nvme0    cycles=5    interval=200ms    timeout=10s
    ${result}    Wait For Timed Fio Job On VM    ${fio}    allow_errors=True
    ${events}    Get VM Fault Timeline    ${SINGLE}
    Run Keyword And Expect Error    *max_io_errors is * errors, above the limit 0 errors*
    ...    Fault Outage Should Be Within    ${result}    ${events}    max_io_errors=0


*** Keywords ***
Launch Dual Port And Single Path VMs
    [Documentation]    A VM with a dual-port 256 MiB drive and one with a single-path one.
    ${dual}    Launch NVMe VM    name=dual-port    size=256M    paths=2
    ${single}    Launch NVMe VM    name=single-path    size=256M
    VAR    ${DUAL}    ${dual}    scope=SUITE
    VAR    ${SINGLE}    ${single}    scope=SUITE

Start Workload
    [Documentation]    Start the fault workload on the namespace of ${vm} for ${RUNTIME} s, every I/O
    ...    logged, and return its handle once it has done I/O for 2 s.
    [Arguments]    ${vm}    ${reopen}=${False}
    ${device}    Get Namespace Device    ${vm}
    ${fio}    Start Timed Fio Job On VM    ${vm}    faults/fault_workload    reopen=${reopen}
    ...    runtime=${RUNTIME}    filename=${device}    &{EVERY_IO}
    Wait Until Fio Does IO On VM    ${vm}
    Sleep    2s
    RETURN    ${fio}

Unplug Single Path For
    [Documentation]    The single path unplugged for ${out} during a reopening workload; returns the
    ...    result and the VM's fault timeline.
    [Arguments]    ${out}
    ${fio}    Start Workload    ${SINGLE}    reopen=${True}
    Hot Unplug NVMe Device    ${SINGLE}    nvme0
    Sleep    ${out}
    Hot Plug NVMe Device    ${SINGLE}    nvme0
    ${result}    Wait For Timed Fio Job On VM    ${fio}    allow_errors=True
    ${events}    Get VM Fault Timeline    ${SINGLE}
    RETURN    ${result}    ${events}
