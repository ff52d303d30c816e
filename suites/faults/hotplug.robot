*** Settings ***
Documentation    Hot-unplug of an NVMe controller while fio runs, then hot-plug: the workload behaves
...              like an application (it reopens the namespace when it is back and goes on), so the
...              chart shows the I/O before, the gap and after. The namespace is back within
...              ${PLUG_LIMIT} s (blktests nvme/032 allows 5 s), I/O resumes within ${PLUG_LIMIT} s
...              of the unplug with one error and one restart, data written and flushed before the
...              unplug reads back intact, and a new workload meets the ${VM_PROFILE} thresholds.
...              QEMU's device_del is a cooperative (ACPI) removal: the guest is asked to release
...              the controller, it is not a surprise removal of a link under load.
...              Repeated unplug/plug cycles too. Each verdict is also shown to fail, with a fault
...              of its own, for the reason it names: a replug limit no namespace can meet, a block
...              corrupted while the controller is out. Every test starts with the namespace plugged
...              in, whatever an earlier test left behind.

Library          Process
Resource         ../../resources/faults.resource

Suite Setup      Launch Hotplug VM
Test Setup       Namespace Should Be Plugged In

Test Tags        fault    hotplug    vm


*** Variables ***
${PLUG_LIMIT}    5
${CYCLES}        3
${VM}            ${None}


*** Test Cases ***
Hot Unplug During IO Recovers
    [Documentation]    Pattern written, a reopening workload running, controller pulled, put back:
    ...    one error and one restart, I/O back and namespace back in time, pattern intact, new
    ...    workload within thresholds.
    Write Pattern On Namespace
    ${fio}    Start Workload And Take A Baseline
    ${unplug}    Hot Unplug NVMe Device    ${VM}    nvme0
    ${plug}    Hot Plug NVMe Device    ${VM}    nvme0    timeout=${PLUG_LIMIT}
    Log    unplug ${unplug} s, plug to usable ${plug} s
    ${result}    Wait For Timed Fio Job On VM    ${fio}    allow_errors=True
    ${events}    Get VM Fault Timeline    ${VM}
    Fault Outage Should Be Within    ${result}    ${events}    max_resume_s=${PLUG_LIMIT}    max_io_errors=1
    ...    max_restarts=1
    Get Fault Impact    ${result}    ${events}    baseline=2s
    Namespace Should Be Healthy

Repeated Unplug Plug Cycles
    [Documentation]    ${CYCLES} unplug/plug cycles; each time the namespace is back within the
    ...    limit; afterwards the pattern is intact and a workload meets its thresholds.
    Write Pattern On Namespace
    VAR    @{plug_times}    @{EMPTY}
    FOR    ${_}    IN RANGE    ${CYCLES}
        Hot Unplug NVMe Device    ${VM}    nvme0
        ${plug}    Hot Plug NVMe Device    ${VM}    nvme0    timeout=${PLUG_LIMIT}
        Append To List    ${plug_times}    ${plug}
    END
    Log    plug to usable per cycle: ${plug_times} s
    Namespace Should Be Healthy

A Namespace Back Too Late Fails The Verdict
    [Documentation]    Negative proof: a limit the replug cannot meet (10 ms) fails `Hot Plug NVMe
    ...    Device` clearly, and the namespace still comes back afterwards.
    Hot Unplug NVMe Device    ${VM}    nvme0
    Run Keyword And Expect Error    *did not come back*within 0.01 s after device_add*
    ...    Hot Plug NVMe Device    ${VM}    nvme0    timeout=0.01
    Wait Until Keyword Succeeds    5s    0.2s    Namespace Should Be Back

Corrupted Data Fails The Integrity Verdict
    [Documentation]    Negative proof: a block of the pattern overwritten while the controller is
    ...    unplugged (in the backing file) fails `Pattern Should Be Intact On VM`.
    Write Pattern On Namespace
    Hot Unplug NVMe Device    ${VM}    nvme0
    Corrupt Backing Block    ${VM.controllers[0].namespaces[0].backing}    offset=${1048576}
    Hot Plug NVMe Device    ${VM}    nvme0    timeout=${PLUG_LIMIT}
    ${device}    Get Namespace Device    ${VM}
    Run Keyword And Expect Error    *verify: bad magic header*offset 1048576*
    ...    Pattern Should Be Intact On VM    ${VM}    device=${device}


*** Keywords ***
Launch Hotplug VM
    [Documentation]    One VM with one 256 MiB namespace for the whole suite.
    ${vm}    Launch NVMe VM    name=hotplug    size=256M
    VAR    ${VM}    ${vm}    scope=SUITE

Start Workload And Take A Baseline
    [Documentation]    Start the fault workload for 8 s (every I/O logged), reopening the namespace
    ...    after an error, and return its handle once fio has done I/O for 3 s: the baseline
    ...    before the fault.
    ${device}    Get Namespace Device    ${VM}
    ${fio}    Start Timed Fio Job On VM    ${VM}    faults/fault_workload    reopen=${True}    runtime=8
    ...    filename=${device}    &{EVERY_IO}
    Wait Until Fio Does IO On VM    ${VM}
    Sleep    3s
    RETURN    ${fio}

Namespace Should Be Healthy
    [Documentation]    After a replug: the pattern written before reads back intact, a new workload
    ...    meets the ${VM_PROFILE} thresholds, and the last timeline event says the device came back.
    ${device}    Get Namespace Device    ${VM}
    Pattern Should Be Intact On VM    ${VM}    device=${device}
    ${after}    Run Fio Job On VM    ${VM}    faults/fault_workload    runtime=3    filename=${device}
    Fio Result Should Meet Thresholds    ${after}    profile=${VM_PROFILE}
    ${events}    Get VM Fault Timeline    ${VM}
    Should Be Equal    ${events[-1].action}    clear

Write Pattern On Namespace
    [Documentation]    Write the integrity pattern on the namespace of nvme0, whatever the guest calls
    ...    it now.
    ${device}    Get Namespace Device    ${VM}
    Write Pattern On VM    ${VM}    device=${device}

Namespace Should Be Back
    [Documentation]    Fail unless the guest shows the namespace of nvme0 again.
    ${devices}    Get VM Guest Devices    ${VM}
    Should Not Be Empty    ${devices}    the namespace of nvme0 is not back

Namespace Should Be Plugged In
    [Documentation]    Plug nvme0 back in if an earlier test left it out (a test that failed between
    ...    its unplug and its plug), so that every test starts from a plugged-in namespace.
    ${devices}    Get VM Guest Devices    ${VM}
    IF    not $devices
        Hot Plug NVMe Device    ${VM}    nvme0    timeout=${PLUG_LIMIT}
    END

Corrupt Backing Block
    [Documentation]    Overwrite 4 KiB of ${path} at byte ${offset} with zeros (the controller must
    ...    be unplugged, so that no guest cache hides it).
    [Arguments]    ${path}    ${offset}
    ${dd}    Run Process    dd    if\=/dev/zero    of\=${path}    bs\=4096    count\=1    seek\=${offset}
    ...    oflag\=seek_bytes    conv\=notrunc
    Should Be Equal As Integers    ${dd.rc}    0    dd could not corrupt ${path}: ${dd.stderr}
